"""Live feeds of each kind, over channel_feed.py: one broker subscription per watched
channel per process, each event rendered once per distinct rendering and written to
every local subscriber (a websocket operation, a GraphQL or REST event stream) in one
pass, with a bounded backlog for a slow one.

- Task events (`follow_steps`, a feed per task): durable, with a cursor (`seq`). A
  subscriber joins the feed, then replays the trace after its cursor from the database
  while the feed queues live steps for it, then takes those (reading back any gap and
  skipping what it has): nothing falls between the two, nothing comes twice. The feed
  reads gaps and quiet spells back from the database, so a lost publish never loses a
  step; if the feed itself fails, its subscribers go on from their cursors on a new one.
  A subscriber that falls behind is cut off with the cursor to resume from.
- Broadcasts (`follow_updates`: a tenant's task updates; `follow_channel`: approval
  requests, documents, budget alerts): no cursor and no replay, as before feeds: a
  subscriber gets what is published once it has joined, filtered to what concerns it,
  and is told to subscribe again if it falls behind.
- Task output (`follow_output`, `output_listener`, a feed per task): best-effort live
  text, not replayed (the trace holds it), until the run ends.

Authorisation is the callers' (streams.py, resolvers/): a feed serves what it is asked.
"""

import contextlib
import itertools
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from agentplane.core.errors import SlowConsumer
from agentplane.models import Step, StepKind, Task, TaskStatus
from agentplane.resolvers import traces
from agentplane.subscriptions import events
from agentplane.subscriptions.channel_feed import (
    MAX_BACKLOG_BYTES,
    ChannelFeed,
    F,
    FeedTable,
    Member,
    Outcome,
    Sink,
)

__all__ = ["MAX_BACKLOG_BYTES", "Member", "Outcome", "Sink"]

# Re-read the database this often while a task's feed is quiet, in case a publish was
# lost (e.g. Redis restarted), so that a stream never hangs on a finished task.
IDLE_RECHECK_S = 5.0
BACKLOG_PAGE = 500


def ends_task(step: Step) -> bool:
    return step.kind == StepKind.STATUS_CHANGE and step.payload.get("to") in (
        "completed",
        "failed",
        "cancelled",
    )


@contextlib.asynccontextmanager
async def _joined(
    table: FeedTable[F], key: str, make: Callable[[], F], member: Member
) -> AsyncIterator[F]:
    """`member` on the feed of `key` for the block (FAILED at once if it cannot subscribe)."""
    feed = table.join(key, make)
    try:
        await feed.ready.wait()
        if feed.failed:
            member.stop(Outcome.FAILED)
        else:
            feed.members.add(member)
        yield feed
    finally:
        member.stop(Outcome.GONE)  # a subscriber that left gets nothing more
        feed.members.discard(member)
        feed.leave()


# ---------------------------------------------------------------- task events
class TaskEventsFeed(ChannelFeed):
    def __init__(self, task_id: str) -> None:
        super().__init__(events.task_channel(task_id))
        self.task_id = task_id

    def idle_timeout(self) -> float:
        return IDLE_RECHECK_S

    def _live(self) -> list[Member]:
        return [m for m in self.members if m.outcome is None and not m.replaying]

    async def on_message(self, message: dict[str, Any]) -> None:
        step = events.shared_step(message)
        await self._catch_up(step.seq)
        await self._send(step, list(self.members))

    async def on_idle(self) -> None:
        """Read back anything whose publish was lost, and end members already past the
        end of a finished task (a cursor beyond it)."""
        await self._catch_up(None)
        task = await Task.get(id=self.task_id)
        if task.status.is_terminal:
            for member in self._live():
                if member.last >= task.last_seq:
                    member.stop(Outcome.ENDED)

    async def _catch_up(self, before: int | None) -> None:
        """Hand live members the stored steps they lack, up to (excluding) seq `before`."""
        lagging = [m for m in self._live() if before is None or m.last < before - 1]
        if not lagging:
            return
        start = min(m.last for m in lagging)
        limit = BACKLOG_PAGE if before is None else before - 1 - start
        for step in await traces.steps_after(self.task_id, start, limit):
            await self._send(step, lagging)

    async def _send(self, step: Step, members: list[Member]) -> None:
        ends = ends_task(step)
        for member in members:
            if member.outcome is not None:
                continue
            # A replaying member takes everything: it skips what it has read itself.
            if step.seq <= member.last and not member.replaying:
                if ends:  # its cursor was beyond the end
                    member.stop(Outcome.ENDED)
                continue
            await member.hand(("step", step.id), step.seq, step)
            if ends:
                member.stop(Outcome.ENDED)


_feeds: FeedTable[TaskEventsFeed] = FeedTable()


async def follow_steps(
    task_id: str, after_seq: int, sink: Sink | None
) -> AsyncGenerator[Step, None]:
    """The task's steps after `after_seq`, until the step that ends it: written to `sink`
    while it renders them, the others yielded (its subscription's pipeline renders them)."""
    cursor = after_seq
    while True:
        member = Member(sink, cursor)
        member.queued = member.replaying = True  # the feed queues for it while it replays
        async with _joined(_feeds, task_id, lambda: TaskEventsFeed(task_id), member):
            joined = member.outcome is None
            if joined:
                async for step in _replay(member, task_id):
                    yield step
                async for step in member.stream():
                    yield step
        if member.outcome in (Outcome.ENDED, Outcome.GONE):
            return
        if member.outcome is Outcome.FAILED and joined:
            cursor = member.written  # a new feed takes over from here
            continue
        raise SlowConsumer(
            f"Subscriber fell behind; resubscribe with afterSeq: {member.written}",
            lastSeq=member.written,
        )


async def _replay(member: Member, task_id: str) -> AsyncIterator[Step]:
    """The member's own reading of the stored steps after its cursor; then of any gap
    before the first step the feed queued for it meanwhile. It is then a live member."""
    finished = (await Task.get(id=task_id)).status.is_terminal  # so every step is stored
    start = member.written
    while True:
        page = await traces.steps_after(task_id, member.written, BACKLOG_PAGE)
        for step in page:
            async for unrendered in _deliver(member, step):
                yield unrendered
            if ends_task(step):
                member.drop_backlog()  # the feed's copies of steps it has delivered
                member.stop(Outcome.ENDED)
                return
            if member.outcome is Outcome.SLOW:
                return
        if len(page) < BACKLOG_PAGE:
            break
    if finished and member.written == start:
        member.drop_backlog()
        member.stop(Outcome.ENDED)  # the terminal step was at or before the cursor
        return
    # The steps the feed queued come after what was read, but for a gap (a lost publish,
    # or steps stored between the read and their publish): read it. What was read twice
    # is skipped as the backlog is delivered (Member.stream).
    if member.backlog and (first := member.backlog[0][0]) > member.written + 1:
        for step in await traces.steps_after(task_id, member.written, first - 1 - member.written):
            if step.seq < first:
                async for unrendered in _deliver(member, step):
                    yield unrendered
    member.replaying = False
    member.last = max(member.last, member.written)


async def _deliver(member: Member, step: Step) -> AsyncIterator[Step]:
    """One step from the subscriber's own task: its frame written, or the step yielded."""
    frame = await member.render(("step", step.id), step)
    if frame is None:
        yield step
    else:
        await member.write(frame)
    member.written = step.seq


# ---------------------------------------------------------------- broadcasts
_numbers = itertools.count(1)  # names each broadcast event for shared renders


class BroadcastFeed(ChannelFeed):
    """Each message, decoded once, to the members it concerns."""

    def __init__(self, channel: str, decode: Callable[[dict[str, Any]], Any]) -> None:
        super().__init__(channel)
        self.decode = decode

    async def on_message(self, message: dict[str, Any]) -> None:
        value = self.decode(message)
        number = next(_numbers)
        for member in list(self.members):
            if member.outcome is None and (member.accepts is None or member.accepts(message)):
                await member.hand(("event", number), number, value)


_update_feeds: FeedTable[BroadcastFeed] = FeedTable()  # by tenant
_channel_feeds: FeedTable[BroadcastFeed] = FeedTable()  # by channel


async def _broadcast(
    table: FeedTable[BroadcastFeed], key: str, make: Callable[[], BroadcastFeed], member: Member
) -> AsyncGenerator[Any, None]:
    async with _joined(table, key, make, member):
        async for value in member.stream():
            yield value
    if member.outcome in (Outcome.SLOW, Outcome.FAILED):
        raise SlowConsumer("Subscriber fell behind; subscribe again")


def follow_updates(
    tenant_id: str, agent_id: str | None, sink: Sink | None
) -> AsyncGenerator[Task, None]:
    """The tenant's task updates (of one agent if `agent_id`): written to `sink` while it
    renders them, the others yielded."""
    channel = events.tenant_tasks_channel(tenant_id)
    member = Member(sink, accepts=None if agent_id is None else _agent_is(agent_id))
    return _broadcast(
        _update_feeds, tenant_id, lambda: BroadcastFeed(channel, events.task_from_event), member
    )


def _agent_is(agent_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda message: message.get("agent_id") == agent_id


def follow_channel(
    channel: str,
    decode: Callable[[dict[str, Any]], Any],
    accepts: Callable[[dict[str, Any]], bool],
    sink: Sink | None,
) -> AsyncGenerator[Any, None]:
    """The channel's messages that `accepts`, decoded (every caller of a channel passes the
    same `decode`): written to `sink` while it renders them, the others yielded."""
    member = Member(sink, accepts=accepts)
    return _broadcast(_channel_feeds, channel, lambda: BroadcastFeed(channel, decode), member)


# ---------------------------------------------------------------- task output
class OutputFeed(ChannelFeed):
    """A task's live text, until the run ends (or, for `until_parked` members, waits for
    an approval)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(events.task_output_channel(task_id))
        self.task_id = task_id
        self.until_parked: set[Member] = set()

    def idle_timeout(self) -> float:
        return IDLE_RECHECK_S

    async def on_message(self, message: dict[str, Any]) -> None:
        if message.get("end"):
            _end(self.members)
        elif message.get("parked"):
            _end(self.until_parked)
        elif "text" in message:
            number = next(_numbers)
            for member in list(self.members):
                if member.outcome is None:
                    await member.hand(("event", number), number, message["text"])

    async def on_idle(self) -> None:
        task = await Task.get_or_none(id=self.task_id)  # None: listening before it exists
        if task is None:
            return
        if task.status.is_terminal:
            _end(self.members)
        elif task.status == TaskStatus.WAITING_FOR_APPROVAL:
            _end(self.until_parked)


def _end(members: set[Member]) -> None:
    for member in list(members):
        member.stop(Outcome.ENDED)


_output_feeds: FeedTable[OutputFeed] = FeedTable()


@contextlib.asynccontextmanager
async def output_listener(
    task_id: str, sink: Sink | None = None, until_parked: bool = False
) -> AsyncIterator[Member]:
    """A member of the task's output feed for the block (the task need not exist yet):
    its `stream()` gives the text; its `outcome` says why that ended."""
    member = Member(sink)
    async with _joined(_output_feeds, task_id, lambda: OutputFeed(task_id), member) as feed:
        if until_parked:
            feed.until_parked.add(member)
        try:
            yield member
        finally:
            feed.until_parked.discard(member)


async def follow_output(task_id: str, sink: Sink | None) -> AsyncGenerator[str, None]:
    """The task's live text until the run ends (at once if it has)."""
    async with output_listener(task_id, sink) as member:
        if member.outcome is None and (await Task.get(id=task_id)).status.is_terminal:
            return
        async for text in member.stream():
            yield text
    if member.outcome in (Outcome.SLOW, Outcome.FAILED):
        raise SlowConsumer("Subscriber fell behind; subscribe again")


# ---------------------------------------------------------------- introspection
_TABLES: tuple[FeedTable[Any], ...] = (_feeds, _update_feeds, _channel_feeds, _output_feeds)


def live_feeds() -> int:
    return sum(len(table) for table in _TABLES)


def live_members() -> int:
    return sum(len(feed.members) for table in _TABLES for feed in table.values())
