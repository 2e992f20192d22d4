"""Live streams as their callers use them: authorised here, served by this process's live
feeds (feeds.py).

Each takes the subscriber's sink (its socket, which the feed writes rendered events to)
or None, and yields the events the sink cannot render, for the subscription's own
pipeline: without a sink, every event. `task_events` replays the trace after the cursor,
then follows it live, so a client resuming with its last `seq` misses nothing and sees
nothing twice.
"""

import asyncio
import contextlib
from collections.abc import AsyncGenerator

from agentplane.core.errors import ValidationFailed
from agentplane.models import Step, StepKind, Task, TaskStatus
from agentplane.resolvers.agents import get_agent
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.permissions import Perm, require
from agentplane.resolvers.tasks import get_task
from agentplane.subscriptions import feeds
from agentplane.subscriptions.feeds import Sink

WAITING = TaskStatus.WAITING_FOR_APPROVAL


async def task_events(
    actor: Actor | None, task_id: str, after_seq: int | None, sink: Sink | None = None
) -> AsyncGenerator[Step, None]:
    """The task's steps after `after_seq` until the step that ends it (SlowConsumer, with
    the cursor to resume from, if the subscriber falls behind)."""
    task = await get_task(actor, task_id)  # authorises: same answer as a missing task
    steps = feeds.follow_steps(task.id, max(after_seq or 0, 0), sink)
    async with contextlib.aclosing(steps):  # leaves the feed when the caller does
        async for step in steps:
            yield step


async def task_updates(
    actor: Actor | None, agent_id: str | None, sink: Sink | None = None
) -> AsyncGenerator[Task, None]:
    """Status changes of the caller's tenant's tasks (of one agent if `agent_id`)."""
    tenant_id = await updates_scope(actor, agent_id)  # authorises
    updates = feeds.follow_updates(tenant_id, agent_id, sink)
    async with contextlib.aclosing(updates):
        async for task in updates:
            yield task


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


async def task_output(
    actor: Actor | None, task_id: str, sink: Sink | None = None
) -> AsyncGenerator[str, None]:
    """Live text chunks until the task ends; not replayed (the trace holds the full text)."""
    task = await get_task(actor, task_id)
    chunks = feeds.follow_output(task.id, sink)
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            yield chunk


def parks_task(step: Step) -> bool:
    return step.kind == StepKind.STATUS_CHANGE and step.payload.get("to") == "waiting_for_approval"


async def run_to_end(actor: Actor | None, task: Task, timeout_s: float) -> Task:
    """Follow the task's trace until it ends, waits for an approval, or `timeout_s` passes;
    the task as it is then.

    For callers that answer with the result of a run (REST `run`, MCP tool calls): one
    that waits for a human would wait past any client's patience, so they stop there."""
    try:
        async with asyncio.timeout(timeout_s):
            steps = task_events(actor, task.id, 0)
            async with contextlib.aclosing(steps):
                async for step in steps:
                    # A replayed park may be over already (decided meanwhile): read the row.
                    if parks_task(step) and (await Task.get(id=task.id)).status == WAITING:
                        break
    except TimeoutError:
        pass
    return await get_task(actor, task.id)
