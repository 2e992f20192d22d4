"""Replay-then-tail streams over the broker.

`task_events` subscribes first, then replays persisted steps after the cursor,
then tails live events, dropping any `seq` already sent and reading a gap back
from the database, so a client resuming with its last `seq` misses nothing and
sees nothing twice.
"""

import asyncio
from collections.abc import AsyncIterator

from agentplane.core.errors import SlowConsumer, ValidationFailed
from agentplane.models import Step, StepKind, Task, TaskStatus
from agentplane.resolvers import traces
from agentplane.resolvers.agents import get_agent
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.permissions import Perm, require
from agentplane.resolvers.tasks import get_task
from agentplane.subscriptions import events
from agentplane.subscriptions.broker import SubscriberTooSlow, get_broker

# Re-check the database this often while idle, in case a publish was lost
# (e.g. Redis restarted) so a stream never hangs on a finished task.
IDLE_RECHECK_S = 5.0
BACKLOG_PAGE = 500
WAITING = TaskStatus.WAITING_FOR_APPROVAL


def ends_task(step: Step) -> bool:
    return step.kind == StepKind.STATUS_CHANGE and step.payload.get("to") in (
        "completed",
        "failed",
        "cancelled",
    )


async def task_events(
    actor: Actor | None, task_id: str, after_seq: int | None
) -> AsyncIterator[Step]:
    task = await get_task(actor, task_id)  # authorises: same answer as a missing task
    last = max(after_seq or 0, 0)
    try:
        async for step in _replay_then_tail(task, last):
            last = step.seq
            yield step
    except SubscriberTooSlow:
        raise SlowConsumer(
            f"Subscriber fell behind; resubscribe with afterSeq: {last}", lastSeq=last
        ) from None


async def _replay_then_tail(task: Task, last: int) -> AsyncIterator[Step]:
    async with get_broker().subscribe(events.task_channel(task.id)) as sub:
        while True:
            # Catch up from the database: the replay, and any gap the live feed skipped.
            backlog = await traces.steps_after(task.id, last, BACKLOG_PAGE)
            for step in backlog:
                last = step.seq
                yield step
                if ends_task(step):
                    return
            if len(backlog) == BACKLOG_PAGE:
                continue  # more to read
            if not backlog and (await Task.get(id=task.id)).status.is_terminal:
                return  # the terminal step was at or before the cursor
            while True:
                message = await sub.get(timeout=IDLE_RECHECK_S)
                if message is None:
                    break  # idle: go back to the database
                seq = message["seq"]
                if seq <= last:
                    continue  # already sent during replay
                if seq > last + 1:
                    break  # a gap: read it from the database
                step = events.shared_step(message)
                last = seq
                yield step
                if ends_task(step):
                    return


async def updates_scope(actor: Actor | None, agent_id: str | None) -> str:
    """The tenant whose task updates the caller may watch: its own, or the named agent's.

    Platform-scoped callers belong to no tenant, so they name the agent to watch.
    """
    actor = require(actor, Perm.TASK_READ)
    if agent_id is not None:
        return (await get_agent(actor, agent_id)).tenant_id
    if actor.tenant_id is not None:
        return actor.tenant_id
    raise ValidationFailed("Platform-scoped callers must pass `agentId`", field="agentId")


async def task_output(actor: Actor | None, task_id: str) -> AsyncIterator[str]:
    """Live text chunks until the task ends; not replayed (the trace holds the full text)."""
    task = await get_task(actor, task_id)
    async with get_broker().subscribe(events.task_output_channel(task.id)) as sub:
        if (await Task.get(id=task.id)).status.is_terminal:
            return
        while True:
            message = await sub.get(timeout=IDLE_RECHECK_S)
            if message is None:
                if (await Task.get(id=task.id)).status.is_terminal:
                    return
            elif message.get("end"):
                return
            elif "text" in message:  # not the notice that the run waits for an approval
                yield message["text"]


def parks_task(step: Step) -> bool:
    return step.kind == StepKind.STATUS_CHANGE and step.payload.get("to") == "waiting_for_approval"


async def run_to_end(actor: Actor | None, task: Task, timeout_s: float) -> Task:
    """Follow the task's trace until it ends, waits for an approval, or `timeout_s` passes;
    the task as it is then.

    For callers that answer with the result of a run (REST `run`, MCP tool calls): one
    that waits for a human would wait past any client's patience, so they stop there."""
    try:
        async with asyncio.timeout(timeout_s):
            async for step in task_events(actor, task.id, 0):
                # A replayed park may be over already (decided meanwhile): read the row.
                if parks_task(step) and (await Task.get(id=task.id)).status == WAITING:
                    break
    except TimeoutError:
        pass
    return await get_task(actor, task.id)
