"""Live feeds: one per watched task (`taskEvents`) or tenant (`taskUpdates`) per
process, writing each live event to every local subscriber (a websocket or an SSE
response) in one pass.

A task-per-subscriber design wakes a coroutine per socket per event; at a thousand
subscribers that alone costs more than the socket writes. A feed instead holds the
task's broker subscription and, for each step, writes each subscriber's frame straight
to its socket. A socket that cannot take a frame at once (its transport paused
because the peer reads slowly) gets a bounded backlog, drained by that subscriber's
own task; one whose backlog overflows (in frames or in bytes) is cut off as a slow
consumer with its cursor.
The others never wait for it.

A subscriber replays the trace after its cursor from the database itself, then joins
the feed at a point where nothing can fall between the two (see `follow`). The feed
reads a gap back from the database, so a lost publish never loses a step.

Task updates have no cursor and no replay (as on the stock path, a subscriber gets what
is published once it has subscribed): a tenant's feed hands each update to the members
whose agent filter it matches. A member whose selection cannot be rendered here gets
the updates as objects, which its own subscription renders (the stock pipeline), from
that update on: no update falls between the two.
"""

import asyncio
import enum
import itertools
import logging
from collections import deque
from collections.abc import AsyncGenerator, Callable, Hashable
from typing import Any, Protocol

from agentplane.core.errors import SlowConsumer
from agentplane.models import Step, Task
from agentplane.resolvers import traces
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.tasks import get_task
from agentplane.subscriptions import events
from agentplane.subscriptions.broker import QUEUE_SIZE, get_broker
from agentplane.subscriptions.streams import (
    BACKLOG_PAGE,
    IDLE_RECHECK_S,
    ends_task,
    updates_scope,
)

log = logging.getLogger(__name__)
# A slow subscriber's backlog is bounded in frames (QUEUE_SIZE) and in bytes: a few
# large steps (a long prompt, a big tool output) must not pin megabytes per socket.
MAX_BACKLOG_BYTES = 4 * 1024 * 1024


class Sink(Protocol):
    """One subscriber's socket, as a feed writes to it."""

    async def payload(self, event: Hashable, value: Any) -> str | None:
        """The event rendered for this subscriber; None if it must take the stock path.
        `event` names the event process-wide (renders are shared by it)."""

    async def send(self, payload: str) -> None:
        """Write, waiting for the socket if need be (this subscriber's own task)."""

    def send_now(self, payload: str) -> bool:
        """Write without waiting; False if the socket cannot take it now."""


class Outcome(enum.Enum):
    ENDED = "ended"  # the task's terminal step is the last one handed over
    STOCK = "stock"  # carry on from `written` on the stock per-subscriber path (or, for
    # task updates, with the objects the feed queues from then on)
    SLOW = "slow"  # the backlog overflowed


class _Member:
    def __init__(self, sink: Sink, last: int) -> None:
        self.sink = sink
        self.last = last  # the highest seq handed over: written or in the backlog
        self.written = last  # the highest seq written to the socket
        self.backlog: deque[tuple[int, str]] = deque()
        self.backlog_bytes = 0  # characters, as queued: one per byte for ASCII JSON
        self.draining = False  # its own task is writing the backlog: append, keep order
        self.outcome: Outcome | None = None
        self.wake = asyncio.Event()

    def take(self, seq: int, payload: str) -> None:
        if not self.draining:
            try:
                sent = self.sink.send_now(payload)
            except Exception:  # the socket is gone: its handler cancels the subscription
                self.stop(Outcome.STOCK)
                return
            if sent:
                self.last = self.written = seq
                return
        if len(self.backlog) >= QUEUE_SIZE or self.backlog_bytes + len(payload) > MAX_BACKLOG_BYTES:
            self.stop(Outcome.SLOW)
            return
        self.backlog.append((seq, payload))
        self.backlog_bytes += len(payload)
        self.last = seq
        self.draining = True
        self.wake.set()

    def stop(self, outcome: Outcome) -> None:
        if self.outcome is None:
            self.outcome = outcome
            self.wake.set()

    async def run(self) -> Outcome:
        """Drain the backlog whenever the feed fills it, until the member is stopped."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.backlog and self.outcome is not Outcome.SLOW:
                seq, payload = self.backlog.popleft()
                self.backlog_bytes -= len(payload)
                await self.sink.send(payload)
                self.written = seq
            self.draining = False
            if self.outcome is Outcome.SLOW or (self.outcome is not None and not self.backlog):
                return self.outcome


class _Feed:
    def __init__(self, task_id: str, on_done: Callable[["_Feed"], None]) -> None:
        self.task_id = task_id
        self.members: set[_Member] = set()
        self.last = 0  # the highest seq this feed has handed to anyone
        self.users = 0  # members plus subscribers still replaying
        self.ready = asyncio.Event()
        self._on_done = on_done  # unregisters the feed
        self._runner = asyncio.create_task(self._run(), name=f"feed-{task_id}")

    @property
    def failed(self) -> bool:
        return self._runner.done()

    async def _run(self) -> None:
        try:
            async with get_broker().subscribe(events.task_channel(self.task_id)) as sub:
                self.ready.set()
                while True:
                    message = await sub.get(timeout=IDLE_RECHECK_S)
                    if message is None:
                        await self._idle()
                    else:
                        step = events.shared_step(message)
                        await self._catch_up(step.seq)
                        await self._send(step, list(self.members))
        except asyncio.CancelledError:
            raise
        except Exception:  # e.g. the feed fell behind its broker queue, or a database error
            log.exception("live feed of %s failed; its subscribers go on alone", self.task_id)
            self._on_done(self)  # new subscribers start a new feed
        finally:
            # Whoever is still here resumes on the stock path from its own cursor.
            for member in self.members:
                member.stop(Outcome.STOCK)
            self.ready.set()

    async def _idle(self) -> None:
        """Nothing published for a while: read back anything whose publish was lost, and
        end members already past the end of a finished task (a cursor beyond it)."""
        await self._catch_up(None)
        task = await Task.get(id=self.task_id)
        if task.status.is_terminal:
            for member in self.members:
                if member.last >= task.last_seq:
                    member.stop(Outcome.ENDED)

    async def _catch_up(self, before: int | None) -> None:
        """Hand members the stored steps they lack, up to (excluding) seq `before`."""
        lagging = [m for m in self.members if before is None or m.last < before - 1]
        if not lagging:
            return
        start = min(m.last for m in lagging)
        limit = BACKLOG_PAGE if before is None else before - 1 - start
        for step in await traces.steps_after(self.task_id, start, limit):
            await self._send(step, lagging)

    async def _send(self, step: Step, members: list[_Member]) -> None:
        ends = ends_task(step)
        for member in members:
            if member.outcome is not None:
                continue
            if step.seq <= member.last:
                if ends:  # its cursor was beyond the end
                    member.stop(Outcome.ENDED)
                continue
            payload = await member.sink.payload(("step", step.id), step)
            if payload is None:
                member.stop(Outcome.STOCK)
                continue
            member.take(step.seq, payload)
            if ends:
                member.stop(Outcome.ENDED)
        self.last = max(self.last, step.seq)

    def leave(self) -> None:
        self.users -= 1
        if self.users == 0:
            self._runner.cancel()
            self._on_done(self)


_feeds: dict[str, _Feed] = {}


def _forget(feed: _Feed) -> None:
    if _feeds.get(feed.task_id) is feed:
        del _feeds[feed.task_id]


def _feed_of(task_id: str) -> _Feed:
    feed = _feeds.get(task_id)
    if feed is None:
        feed = _feeds[task_id] = _Feed(task_id, _forget)
    feed.users += 1
    return feed


async def follow(
    actor: Actor | None, task_id: str, after_seq: int | None, sink: Sink
) -> int | None:
    """Send the task's steps after `after_seq` to `sink` until the task ends.

    Returns None when the stream is complete, or the cursor to carry on from on the
    stock path (streams.task_events) when a step could not be rendered here.
    """
    task = await get_task(actor, task_id)  # authorises: same answer as a missing task
    last = max(after_seq or 0, 0)
    feed = _feed_of(task.id)
    member: _Member | None = None
    try:
        await feed.ready.wait()  # subscribed: every later publish reaches the feed
        while member is None:
            # Replay from the database; this subscriber alone waits for its socket.
            backlog = await traces.steps_after(task.id, last, BACKLOG_PAGE)
            for step in backlog:
                payload = await sink.payload(("step", step.id), step)
                if payload is None:
                    return last
                await sink.send(payload)
                last = step.seq
                if ends_task(step):
                    return None
            if len(backlog) == BACKLOG_PAGE:
                continue
            if not backlog and (await Task.get(id=task.id)).status.is_terminal:
                return None  # the terminal step was at or before the cursor
            if feed.failed:
                return last
            # Join only once the feed has handed out nothing this subscriber has not
            # read: every later step then reaches it through the feed (or the feed's
            # gap reads), and anything older the feed still holds is skipped.
            if feed.last <= last:
                member = _Member(sink, last)
                feed.members.add(member)
        outcome = await member.run()
        if outcome is Outcome.SLOW:
            raise SlowConsumer(
                f"Subscriber fell behind; resubscribe with afterSeq: {member.written}",
                lastSeq=member.written,
            )
        return None if outcome is Outcome.ENDED else member.written
    finally:
        if member is not None:
            member.stop(Outcome.STOCK)  # a cancelled subscriber gets nothing more
            feed.members.discard(member)
        feed.leave()


class _UpdateMember(_Member):
    """A `taskUpdates` subscriber: frames while its selection renders here (`sink`), then
    (or from the start, without a sink) the updates themselves, for its own pipeline."""

    def __init__(self, sink: Sink | None, agent_id: str | None) -> None:
        super().__init__(sink, 0)  # type: ignore[arg-type]
        self.agent_id = agent_id
        self.objects: deque[Task] | None = None if sink is not None else deque()
        if sink is None:
            self.outcome = Outcome.STOCK

    def fail(self) -> None:
        self.outcome = Outcome.SLOW
        self.wake.set()

    def give(self, task: Task) -> None:
        assert self.objects is not None
        if len(self.objects) >= QUEUE_SIZE:
            self.outcome = Outcome.SLOW
        else:
            self.objects.append(task)
        self.wake.set()

    async def next_object(self) -> Task:
        assert self.objects is not None
        while not self.objects or self.outcome is Outcome.SLOW:
            if self.outcome is Outcome.SLOW:
                raise SlowConsumer("Subscriber fell behind; subscribe again")
            await self.wake.wait()
            self.wake.clear()
        return self.objects.popleft()


_update_numbers = itertools.count(1)  # names each update for shared renders


class _UpdatesFeed:
    """A tenant's task updates, for every local `taskUpdates` subscriber."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.members: set[_UpdateMember] = set()
        self.users = 0
        self.ready = asyncio.Event()
        self._runner = asyncio.create_task(self._run(), name=f"updates-{tenant_id}")

    @property
    def failed(self) -> bool:
        return self._runner.done()

    async def _run(self) -> None:
        try:
            async with get_broker().subscribe(events.tenant_tasks_channel(self.tenant_id)) as sub:
                self.ready.set()
                async for message in sub:
                    await self._send(message)
        except asyncio.CancelledError:
            raise
        except Exception:  # the feed fell behind its broker queue: updates were lost
            log.exception("task updates feed of %s failed", self.tenant_id)
        finally:
            if _update_feeds.get(self.tenant_id) is self:
                del _update_feeds[self.tenant_id]
            for member in self.members:  # told to subscribe again, as a slow consumer is
                member.fail()
            self.ready.set()

    async def _send(self, message: dict[str, Any]) -> None:
        task = events.task_from_event(message)
        number = ("update", next(_update_numbers))
        n = number[1]
        for member in list(self.members):
            if member.agent_id is not None and message["agent_id"] != member.agent_id:
                continue
            if member.outcome is Outcome.STOCK and member.objects is not None:
                member.give(task)
                continue
            if member.outcome is not None:
                continue
            payload = await member.sink.payload(number, task)
            if payload is None:  # its own pipeline renders this update and the next ones
                member.objects = deque()
                member.stop(Outcome.STOCK)
                member.give(task)
            else:
                member.take(n, payload)

    def leave(self) -> None:
        self.users -= 1
        if self.users == 0:
            self._runner.cancel()
            if _update_feeds.get(self.tenant_id) is self:
                del _update_feeds[self.tenant_id]


_update_feeds: dict[str, _UpdatesFeed] = {}


async def follow_updates(
    actor: Actor | None, agent_id: str | None, sink: Sink | None
) -> AsyncGenerator[Task, None]:
    """The caller's tenant's task updates (of one agent if `agent_id`): written to `sink`
    while it can render them, the rest yielded for the subscription's own pipeline."""
    tenant_id = await updates_scope(actor, agent_id)  # authorises
    feed = _update_feeds.get(tenant_id)
    if feed is None:
        feed = _update_feeds[tenant_id] = _UpdatesFeed(tenant_id)
    feed.users += 1
    member = _UpdateMember(sink, agent_id)
    try:
        await feed.ready.wait()  # subscribed: every later publish reaches the feed
        if feed.failed:
            raise SlowConsumer("Subscriber fell behind; subscribe again")
        feed.members.add(member)
        if member.objects is None:
            if await member.run() is Outcome.SLOW:
                raise SlowConsumer("Subscriber fell behind; subscribe again")
            if member.objects is None:
                return  # its socket is gone
        while True:
            yield await member.next_object()
    finally:
        member.fail()  # a cancelled subscriber gets nothing more
        feed.members.discard(member)
        feed.leave()


def live_feeds() -> int:
    return len(_feeds) + len(_update_feeds)
