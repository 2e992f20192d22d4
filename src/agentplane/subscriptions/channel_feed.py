"""A channel feed: this process's one broker subscription to a channel, handing each event
to every local subscriber of it (a `Member`) in one pass. feeds.py holds the kinds.

A task-per-subscriber design wakes a coroutine per socket per event; at a thousand
subscribers that alone costs more than the socket writes. A feed instead writes each
member's frame straight to its socket (its `Sink`), rendered once per distinct rendering
(a sink names the event process-wide when it renders it, so renders are shared). A
socket that cannot take a frame at once (its transport paused because the peer reads
slowly) gets a bounded backlog, drained by that subscriber's own task; one whose backlog
overflows, in frames or in bytes, is cut off as a slow consumer. The others never wait
for it.

A member without a sink, or from an event its sink cannot render on, gets the events
themselves (its subscription's own pipeline renders them), in order behind any frames
still queued, through the same bounded backlog.
"""

import asyncio
import enum
import logging
from collections import deque
from collections.abc import AsyncGenerator, Callable, Coroutine, Hashable
from typing import Any, Generic, Protocol, TypeVar

from agentplane.subscriptions.broker import QUEUE_SIZE, get_broker

log = logging.getLogger(__name__)
# A slow subscriber's backlog is bounded in frames (QUEUE_SIZE) and in bytes: a few
# large events (a long prompt, a big tool output) must not pin megabytes per socket.
MAX_BACKLOG_BYTES = 4 * 1024 * 1024
# A feed's own broker queue is deeper than a member's backlog, so that a member that
# stops reading is cut off before the feed, which all its members share, falls behind.
FEED_QUEUE_SIZE = 16 * QUEUE_SIZE


class Sink(Protocol):
    """One subscriber's socket, as a feed writes to it."""

    async def payload(self, event: Hashable, value: Any) -> str | None:
        """The event rendered for this subscriber; None if its own pipeline must render it.
        `event` names the event process-wide (renders are shared by it)."""

    async def send(self, payload: str) -> None:
        """Write, waiting for the socket if need be (this subscriber's own task)."""

    def send_now(self, payload: str) -> bool:
        """Write without waiting; False if the socket cannot take it now."""


def complete_now(send: Coroutine[Any, Any, None]) -> bool:
    """Run a socket write to its end at once; False, with nothing written, if it would
    have to wait.

    An ASGI send (websocket or HTTP body) only waits while the socket's transport has
    paused writing, i.e. while the peer reads slowly; a feed serving many sockets must not
    wait for one (the frame goes to that subscriber's backlog instead).
    """
    try:
        send.send(None)
    except StopIteration:
        return True
    send.close()  # nothing was written: the wait comes before the write
    return False


class Outcome(enum.Enum):
    ENDED = "ended"  # complete once what was handed over is delivered
    SLOW = "slow"  # the backlog overflowed
    FAILED = "failed"  # the feed stopped (its broker queue overflowed, a database error)
    GONE = "gone"  # the socket failed a write, or the subscriber left


class Member:
    """One subscriber of a feed."""

    def __init__(
        self,
        sink: Sink | None,
        position: int = 0,
        accepts: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        self.sink = sink
        self.rendering = sink is not None  # False from the first event it cannot render
        self.accepts = accepts  # which of the channel's messages concern it (None: all)
        self.last = position  # the highest position handed over: delivered or queued
        self.written = position  # the highest position delivered
        # (position, event, frame or None: the event goes to the subscription's pipeline)
        self.backlog: deque[tuple[int, Any, str | None]] = deque()
        self.backlog_bytes = 0  # characters, as queued: one per byte for ASCII JSON
        self.queued = False  # its own task delivers the backlog: append, keep the order
        self.replaying = False  # (cursor feeds) still reading stored events on its own
        self.outcome: Outcome | None = None
        self.wake = asyncio.Event()

    async def render(self, event: Hashable, value: Any) -> str | None:
        if not self.rendering:
            return None
        assert self.sink is not None
        frame = await self.sink.payload(event, value)
        if frame is None:
            self.rendering = False  # this one and every later event: the stock pipeline
        return frame

    async def hand(self, event: Hashable, position: int, value: Any) -> None:
        """The feed's delivery of one event."""
        frame = await self.render(event, value)
        if self.outcome is not None:  # stopped while it rendered
            return
        if frame is not None and not self.queued:
            assert self.sink is not None
            try:
                sent = self.sink.send_now(frame)
            except Exception:  # the socket is gone: its handler cancels the subscription
                self.stop(Outcome.GONE)
                return
            if sent:
                self.last = self.written = position
                return
        size = len(frame) if frame is not None else 0
        if len(self.backlog) >= QUEUE_SIZE or self.backlog_bytes + size > MAX_BACKLOG_BYTES:
            self.stop(Outcome.SLOW)
            return
        self.backlog.append((position, value, frame))
        self.backlog_bytes += size
        self.last = position
        self.queued = True
        self.wake.set()

    def pop(self) -> tuple[int, Any, str | None]:
        entry = self.backlog.popleft()
        if entry[2] is not None:
            self.backlog_bytes -= len(entry[2])
        return entry

    def drop_backlog(self) -> None:
        self.backlog.clear()
        self.backlog_bytes = 0

    async def write(self, frame: str) -> None:
        assert self.sink is not None
        await self.sink.send(frame)

    def stop(self, outcome: Outcome) -> None:
        if self.outcome is None:
            self.outcome = outcome
            self.wake.set()

    async def stream(self) -> AsyncGenerator[Any, None]:
        """This subscriber's own task: deliver the backlog whenever the feed fills it,
        yielding the events it has no frame for, until the member is stopped."""
        while True:
            while self.backlog and self.outcome is not Outcome.SLOW:
                position, value, frame = self.pop()
                if position <= self.written:  # (cursor feeds) delivered while it replayed
                    continue
                if frame is None:
                    yield value
                else:
                    await self.write(frame)
                self.written = position
            self.queued = False
            if self.outcome is not None:
                return
            await self.wake.wait()
            self.wake.clear()


class ChannelFeed:
    """One broker subscription to `channel`, for every member; a kind of feed says what
    a message (`on_message`) and a quiet spell (`on_idle`, if `idle_timeout`) mean."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.members: set[Member] = set()
        self.users = 0  # members, and subscribers about to join
        self.ready = asyncio.Event()  # subscribed: every later publish reaches the feed
        self._forget: Callable[[], None] = lambda: None
        self._runner: asyncio.Task[None] | None = None

    def start(self, forget: Callable[[], None]) -> None:
        self._forget = forget  # unregisters the feed: new subscribers start a new one
        self._runner = asyncio.create_task(self._run(), name=f"feed {self.channel}")

    @property
    def failed(self) -> bool:
        return self._runner is not None and self._runner.done()

    def idle_timeout(self) -> float | None:
        return None

    async def on_message(self, message: dict[str, Any]) -> None:
        raise NotImplementedError

    async def on_idle(self) -> None:
        pass

    async def _run(self) -> None:
        try:
            async with get_broker().subscribe(self.channel, FEED_QUEUE_SIZE) as sub:
                self.ready.set()
                while True:
                    message = await sub.get(timeout=self.idle_timeout())
                    if message is None:
                        await self.on_idle()
                    else:
                        await self.on_message(message)
        except asyncio.CancelledError:
            raise
        except Exception:  # e.g. the feed fell behind its broker queue, or a database error
            log.exception("live feed of %s failed; its subscribers are told", self.channel)
        finally:
            self._forget()
            for member in self.members:
                member.stop(Outcome.FAILED)
            self.ready.set()

    def leave(self) -> None:
        self.users -= 1
        if self.users == 0:
            self._forget()
            if self._runner is not None:
                self._runner.cancel()


F = TypeVar("F", bound=ChannelFeed)


class FeedTable(dict[str, F], Generic[F]):
    """This process's feeds of one kind, by what they watch."""

    def join(self, key: str, make: Callable[[], F]) -> F:
        feed = self.get(key)
        if feed is None:
            feed = self._start(key, make())
        feed.users += 1
        return feed

    def _start(self, key: str, feed: F) -> F:
        self[key] = feed
        feed.start(lambda: self._forget(key, feed))
        return feed

    def _forget(self, key: str, feed: F) -> None:
        if self.get(key) is feed:
            del self[key]
