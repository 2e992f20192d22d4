"""A REST dialect's Server-Sent Events response, fed by the live feeds.

The stream's producer writes whole events through a `Writer`, which is also how a live
feed's sink writes to this socket: at once from the feed's pass when the socket can
take them, else through the subscriber's bounded backlog (subscriptions/channel_feed.py),
as for a websocket. An event stream is a long-lived connection like a websocket: it
takes one of its credential's slots (live_sockets.ConnectionSlots: websockets and
GraphQL event streams share them; 429 `RATE_LIMITED` beyond), and it ends, with an
`error` event, when its credential is revoked. A domain error the producer raises
(e.g. SLOW_CONSUMER) becomes an `error` event in the dialect's envelope, ending the
stream; a comment heartbeat goes out every 15 s.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from agentplane.core.errors import DomainError, RateLimited, Unauthenticated
from agentplane.resolvers.auth import Actor, credential_key
from agentplane.rest_compat import common
from agentplane.rest_compat.common import Call, Dialect
from agentplane.subscriptions import live_sockets
from agentplane.subscriptions.channel_feed import complete_now
from agentplane.subscriptions.live_sockets import ConnectionSlots

log = logging.getLogger(__name__)


class Writer:
    """The stream's socket: whole events (SSE text), written now or awaited."""

    def __init__(self, send: Callable[[str], Coroutine[Any, Any, None]]) -> None:
        self._send = send

    async def send(self, text: str) -> None:
        await self._send(text)

    def send_now(self, text: str) -> bool:
        return complete_now(self._send(text))


Producer = Callable[[Writer], Awaitable[None]]


def error_event(dialect: Dialect, exc: DomainError) -> str:
    """`exc` as an `error` event carrying the dialect's error envelope."""
    body = bytes(dialect.render(exc).body).decode()
    return f"event: error\r\ndata: {body}\r\n\r\n"


def hold_slot(call: Call, held: contextlib.AsyncExitStack) -> None:
    """One of the caller's long-lived connection slots, given back when `held` closes."""
    slots: ConnectionSlots = call.request.app.state.connection_slots
    key = credential_key(call.request.scope)
    if not slots.hold(key):
        raise RateLimited(
            f"Too many open streams and websockets for this credential (at most {slots.limit})"
        )
    held.callback(slots.drop, key)


class EventStream(Response):
    media_type = "text/event-stream"

    def __init__(
        self,
        produce: Producer,
        *,
        actor: Actor | None,
        dialect: Dialect,
        on_end: Callable[[], Awaitable[None]],
    ) -> None:
        # As a StreamingResponse: no body, so no Content-Length.
        self.status_code = 200
        self.background = None
        self.init_headers(
            {"Cache-Control": "no-cache", "Connection": "keep-alive", "X-Accel-Buffering": "no"}
        )
        self.produce = produce
        self.actor = actor
        self.dialect = dialect
        self._on_end = on_end
        self._revoked: str | None = None
        self._revocation = asyncio.Event()

    async def close(self, code: int, reason: str) -> None:
        """Called by live_sockets when the credential stops working: end the stream."""
        self._revoked = reason
        self._revocation.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if scope.get("method") == "HEAD":  # headers only: the stream would never end
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            if not await self._stream(receive, send):
                return  # the client has gone
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await self._on_end()

    async def _stream(self, receive: Receive, send: Send) -> bool:
        """Run the producer until it ends, the client leaves (False) or the credential is
        revoked; then write the stream's last event, if any."""
        ended = False

        async def send_text(text: str) -> None:
            if ended:  # a feed's write raced the end of the stream
                raise ConnectionError("the event stream has ended")
            await send({"type": "http.response.body", "body": text.encode(), "more_body": True})

        writer = Writer(send_text)
        live_sockets.register(self.actor, self)
        producer = asyncio.ensure_future(self._produce(writer))
        left = asyncio.ensure_future(_disconnect(receive))
        others = (
            asyncio.ensure_future(self._revocation.wait()),
            asyncio.ensure_future(_beat(writer)),
        )
        try:
            await asyncio.wait((producer, left, *others), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for running in (producer, left, *others):
                running.cancel()
            # The producer leaves its feed before anything else is written.
            await asyncio.gather(producer, left, *others, return_exceptions=True)
            ended = True
        if left.done() and not left.cancelled():
            return False
        last = producer.result() if producer.done() and not producer.cancelled() else None
        if self._revoked is not None:
            last = error_event(self.dialect, Unauthenticated(self._revoked))
        if last:
            await send({"type": "http.response.body", "body": last.encode(), "more_body": True})
        return True

    async def _produce(self, writer: Writer) -> str | None:
        """The producer's events; the stream's closing event (an error), if any."""
        try:
            await self.produce(writer)
        except DomainError as exc:
            return error_event(self.dialect, exc)
        except (ConnectionError, OSError):  # the client went away mid-write
            return None
        except Exception:
            log.exception("event stream failed")
            return error_event(self.dialect, DomainError("Internal server error"))
        return None


async def _disconnect(receive: Receive) -> None:
    message: Message = {}
    while message.get("type") != "http.disconnect":
        message = await receive()


async def _beat(writer: Writer) -> None:
    """A comment every SSE_HEARTBEAT_S, as sse-starlette sends it."""
    while True:
        await asyncio.sleep(common.SSE_HEARTBEAT_S)
        await writer.send(f": ping - {datetime.now(UTC)}\r\n\r\n")


def event_stream(
    call: Call, dialect: Dialect, produce: Producer, held: contextlib.AsyncExitStack | None = None
) -> EventStream:
    """The caller's event stream, holding one of its slots (`held`: already holding it,
    and whatever else the stream keeps until it ends)."""
    if held is None:
        held = contextlib.AsyncExitStack()
        hold_slot(call, held)
    return EventStream(produce, actor=call.actor, dialect=dialect, on_end=held.aclose)
