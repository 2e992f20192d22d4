"""The trace: the one write path for steps and status changes, and its reads.

Every step goes through `append_step` (inside a transaction) and is published
only after that transaction commits, so a subscriber never sees a step that a
rollback later erases, and replaying from the database always agrees with what
was streamed.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from agentplane.auth import Actor
from agentplane.errors import ValidationFailed
from agentplane.ids import task_id as new_task_id
from agentplane.models import Step, StepKind, Task, TaskStatus, UsageRecord
from agentplane.resolvers.permissions import Perm, check_tenant, require
from agentplane.subscriptions import events
from agentplane.subscriptions.broker import get_broker

MAX_STEPS_PAGE = 1000  # a trace page; longer traces are read in pages via `afterSeq`


@dataclass
class Usage:
    model: str
    input_tokens: int
    output_tokens: int
    latency_ms: int
    cost_usd: Decimal
    priced: bool


@dataclass
class Written:
    """What a transaction wrote and must publish once it has committed."""

    steps: list[Step] = field(default_factory=list)
    task: Task | None = None

    async def publish(self) -> None:
        broker = get_broker()
        for step in self.steps:
            await broker.publish(events.task_channel(step.task_id), events.step_event(step))
        if self.task is not None:
            await broker.publish(
                events.tenant_tasks_channel(self.task.tenant_id), events.task_event(self.task)
            )
            if self.task.status.is_terminal:  # ends live-output streams
                await broker.publish(
                    events.task_output_channel(self.task.id), {"task_id": self.task.id, "end": True}
                )


async def _append(
    task_id: str, kind: StepKind, payload: dict[str, Any], usage: Usage | None
) -> Step:
    # Must run inside a transaction: the row lock taken by this UPDATE serialises seq allocation.
    await Task.filter(id=task_id).update(last_seq=F("last_seq") + 1)
    seq = await Task.filter(id=task_id).first().values_list("last_seq", flat=True)
    step = Step(task_id=task_id, seq=seq, kind=kind, payload=payload)
    if usage is not None:
        step.model = usage.model
        step.input_tokens = usage.input_tokens
        step.output_tokens = usage.output_tokens
        step.latency_ms = usage.latency_ms
        step.cost_usd = usage.cost_usd
    await step.save()
    return step


async def append_step(
    task: Task, kind: StepKind, payload: dict[str, Any], usage: Usage | None = None
) -> Step:
    """Persist one step with the next gapless seq, meter its usage, then publish it."""
    written = Written()
    async with in_transaction():
        step = await _append(task.id, kind, payload, usage)
        written.steps.append(step)
        if usage is not None:
            await UsageRecord.create(
                tenant_id=task.tenant_id,
                agent_id=task.agent_id,
                task_id=task.id,
                step_id=step.id,
                model=usage.model,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cost_usd=usage.cost_usd,
                priced=usage.priced,
            )
            await Task.filter(id=task.id).update(cost_usd=F("cost_usd") + usage.cost_usd)
    await written.publish()
    return step


async def transition(
    task_id: str,
    from_statuses: Iterable[TaskStatus],
    to: TaskStatus,
    reason: str | None = None,
    **changes: Any,
) -> Task | None:
    """Atomically move a task between statuses and record the STATUS_CHANGE step.

    The conditional UPDATE is the compare-and-set: of many concurrent callers
    (workers claiming, a cancel racing a completion) exactly one wins; the others
    get None and change nothing.
    """
    now = datetime.now(UTC)
    if to.is_terminal:
        changes.setdefault("finished_at", now)
    written = Written()
    async with in_transaction():
        task = await Task.get_or_none(id=task_id)
        if task is None or task.status not in set(from_statuses):
            return None
        won = await Task.filter(id=task_id, status=task.status).update(
            status=to, updated_at=now, **changes
        )
        if not won:
            return None
        payload: dict[str, Any] = {"from": task.status.value, "to": to.value}
        if reason:
            payload["reason"] = reason
        written.steps.append(await _append(task_id, StepKind.STATUS_CHANGE, payload, None))
        written.task = await Task.get(id=task_id)
    await written.publish()
    return written.task


async def create_task(
    *,
    tenant_id: str,
    agent_id: str,
    query: str,
    metadata: dict[str, Any],
    created_by: str,
    task_id: str | None = None,
) -> Task:
    """Insert a queued task with its first STATUS_CHANGE step (seq 1).

    `task_id` lets a caller listen on the task's channels before the task exists."""
    written = Written()
    async with in_transaction():
        task = await Task.create(
            id=task_id or new_task_id(),
            tenant_id=tenant_id,
            agent_id=agent_id,
            query=query,
            metadata=metadata,
            created_by=created_by,
        )
        written.steps.append(
            await _append(task.id, StepKind.STATUS_CHANGE, {"from": None, "to": "queued"}, None)
        )
        task.last_seq = 1
        written.task = task
    await written.publish()
    return task


async def list_steps(
    actor: Actor | None, task: Task, after_seq: int | None, first: int | None
) -> list[Step]:
    """The task's steps in seq order after `after_seq`. `task` was already authorised."""
    actor = require(actor, Perm.TASK_READ)
    check_tenant(actor, task.tenant_id, "Task")
    qs = Step.filter(task_id=task.id).order_by("seq")
    if after_seq is not None:
        qs = qs.filter(seq__gt=after_seq)
    if first is not None and first < 0:
        raise ValidationFailed("`first` must not be negative", field="first")
    return await qs.limit(min(first if first is not None else MAX_STEPS_PAGE, MAX_STEPS_PAGE))


async def steps_after(task_id: str, after_seq: int, limit: int = 500) -> list[Step]:
    """Internal read for streams: authorisation happened when the stream opened."""
    return await Step.filter(task_id=task_id, seq__gt=after_seq).order_by("seq").limit(limit)
