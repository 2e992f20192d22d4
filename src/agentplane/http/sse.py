"""GraphQL over SSE (distinct connections: `Accept: text/event-stream` on /graphql).

Strawberry's SSE transport frames each result as an event and we serve its stream
through this response, which (a) lets live feeds (subscriptions/feeds.py) write a
subscription's rendered events straight to it in one pass (schema/live.py), as they do
to a websocket, with the same bounded backlog for a slow reader, and (b) ends the
stream when its credential is revoked, as a websocket is closed (live_sockets).
"""

import asyncio
from collections.abc import AsyncIterable, Callable, Mapping

import orjson
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from agentplane.core.observability import error_extensions
from agentplane.resolvers.auth import Actor
from agentplane.schema import live
from agentplane.subscriptions import live_sockets

EVENT_STREAM = "text/event-stream"


class LiveEventStream(StreamingResponse):
    def __init__(
        self,
        content: AsyncIterable[str],
        actor: Actor | None,
        headers: Mapping[str, str],
        status_code: int = 200,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(content, status_code=status_code, headers=headers)
        self.actor = actor
        self._on_end = on_end
        self._revoked = asyncio.Event()
        self._reason = ""
        self._ended = False

    async def close(self, code: int, reason: str) -> None:
        """Called by live_sockets when the credential stops working: end the stream."""
        self._reason = reason
        self._revoked.set()

    async def listen_for_disconnect(self, receive: Receive) -> None:
        disconnect = asyncio.ensure_future(super().listen_for_disconnect(receive))
        revoked = asyncio.ensure_future(self._revoked.wait())
        try:
            await asyncio.wait((disconnect, revoked), return_when=asyncio.FIRST_COMPLETED)
        finally:
            disconnect.cancel()
            revoked.cancel()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_text(text: str) -> None:
            if self._ended:  # a feed's last write raced the end of the response
                raise ConnectionError("the event stream has ended")
            await send({"type": "http.response.body", "body": text.encode(), "more_body": True})

        live.bind_sse(send_text)  # inherited by the task that runs the subscription
        live_sockets.register(self.actor, self)
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._ended = True
            if self._on_end is not None:
                self._on_end()
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:  # stop the subscription now: it leaves its live feed
                await aclose()
        if self._revoked.is_set():
            extensions = {"code": "UNAUTHENTICATED", **error_extensions()}
            error = {"message": self._reason, "extensions": extensions}
            data = orjson.dumps({"errors": [error]}).decode()
            body = f"event: next\r\ndata: {data}\r\n\r\nevent: complete\r\ndata: \r\n\r\n"
            await send({"type": "http.response.body", "body": body.encode(), "more_body": False})
