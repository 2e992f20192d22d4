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

from tortoise.connection import get_connection
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from agentplane.core import db, observability
from agentplane.core.errors import ValidationFailed
from agentplane.core.ids import task_id as new_task_id
from agentplane.models import Step, StepKind, StepPayload, Task, TaskStatus, UsageRecord
from agentplane.resolvers import step_payloads
from agentplane.resolvers.auth import Actor
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
            elif self.task.status == TaskStatus.WAITING_FOR_APPROVAL:  # ends synchronous ones
                await broker.publish(
                    events.task_output_channel(self.task.id),
                    {"task_id": self.task.id, "parked": True},
                )


class LeaseLost(Exception):
    """The worker's claim on the task is gone (taken over, cancelled): it must stop writing."""


async def _append(
    task_id: str,
    kind: StepKind,
    payload: dict[str, Any],
    usage: Usage | None,
    fence: int | None = None,
) -> Step:
    # Must run inside a transaction: the row lock taken by this UPDATE serialises seq allocation.
    # With a fence (the claim's attempt number) only the worker holding the claim may write,
    # so a worker that lost its lease can never add a step after its successor's.
    sql = "UPDATE task SET last_seq = last_seq + 1"
    params: list[Any] = []
    if usage is not None:  # the task's running cost, in the same statement
        sql += ", cost_usd = CAST(cost_usd AS NUMERIC) + ?"
        params.append(usage.cost_usd)
    sql += " WHERE id = ?"
    params.append(task_id)
    if fence is not None:
        sql += " AND attempt = ? AND status = ?"
        params += [fence, TaskStatus.RUNNING.value]
    conn = get_connection("default")  # inside the caller's transaction
    rows = await conn.execute_query_dict(db.placeholders(conn, sql + " RETURNING last_seq"), params)
    if not rows:
        raise LeaseLost(task_id)
    return await _insert_step(task_id, int(rows[0]["last_seq"]), kind, payload, usage)


async def _insert_step(
    task_id: str, seq: int, kind: StepKind, payload: dict[str, Any], usage: Usage | None
) -> Step:
    """Insert a step whose seq the caller allocated (inside its transaction)."""
    inline, full, size = step_payloads.split(payload)  # a large payload is stored apart
    step = Step(task_id=task_id, seq=seq, kind=kind, payload=inline)
    if usage is not None:
        step.model = usage.model
        step.input_tokens = usage.input_tokens
        step.output_tokens = usage.output_tokens
        step.latency_ms = usage.latency_ms
        step.cost_usd = usage.cost_usd
    await step.save()
    if full is not None:
        await StepPayload.create(step_id=step.id, payload=full, size_bytes=size)
    return step


async def append_in(
    written: Written,
    task_id: str,
    kind: StepKind,
    payload: dict[str, Any],
    *,
    fence: int | None = None,
) -> Step:
    """Append a step inside the caller's own transaction; `written.publish()` after commit."""
    step = await _append(task_id, kind, payload, None, fence)
    written.steps.append(step)
    return step


async def append_step(
    task: Task,
    kind: StepKind,
    payload: dict[str, Any],
    usage: Usage | None = None,
    *,
    fence: int | None = None,
) -> Step:
    """Persist one step with the next gapless seq, meter its usage, then publish it.

    Workers pass `fence` (their claim's attempt); LeaseLost means the claim is gone.
    """
    written = Written()
    async with in_transaction():
        step = await _append(task.id, kind, payload, usage, fence)
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
    await written.publish()
    if usage is not None and usage.priced:
        observability.spent(usage.model, float(usage.cost_usd))
    return step


async def transition(
    task_id: str,
    from_statuses: Iterable[TaskStatus],
    to: TaskStatus,
    reason: str | None = None,
    *,
    fence: int | None = None,
    details: dict[str, Any] | None = None,
    **changes: Any,
) -> Task | None:
    """Atomically move a task between statuses and record the STATUS_CHANGE step.

    The conditional UPDATE is the compare-and-set: of many concurrent callers
    (workers claiming, a cancel racing a completion) exactly one wins; the others
    get None and change nothing. A worker passes `fence` so that it can only move
    a task it still holds.
    """
    now = datetime.now(UTC)
    if to.is_terminal:
        changes.setdefault("finished_at", now)
    sources = list(dict.fromkeys(from_statuses))
    written = Written()
    async with in_transaction():
        # The compare-and-set. With one possible source status and a fence, its WHERE
        # says everything; otherwise the current row tells which status it moves from
        # (and, unfenced, pins the attempt it read).
        conditions: dict[str, Any] = {"id": task_id}
        if len(sources) == 1 and fence is not None:
            conditions.update(status=sources[0], attempt=fence)
        else:
            current = await Task.filter(id=task_id).first().values("status", "attempt")
            if current is None or current["status"] not in sources:
                return None
            if fence is not None and current["attempt"] != fence:
                return None
            conditions.update(status=current["status"], attempt=current["attempt"])
        # The same UPDATE allocates the status step's seq and returns the row as it is now
        # (no second read).
        update = Task.filter(**conditions).update(
            status=to, updated_at=now, last_seq=F("last_seq") + 1, **changes
        )
        task = await _update_returning(update)
        if task is None:
            return None
        from_status = TaskStatus(conditions["status"])
        payload: dict[str, Any] = {"from": from_status.value, "to": to.value, **(details or {})}
        if reason:
            payload["reason"] = reason
        written.steps.append(
            await _insert_step(task_id, task.last_seq, StepKind.STATUS_CHANGE, payload, None)
        )
        written.task = task
    if to.is_terminal:  # counted once committed, so /metrics agrees with what readers see
        observability.task_finished(to.value, _run_seconds(written.task))
    await written.publish()
    return written.task


async def _update_returning(update: Any) -> Task | None:
    """Run a Tortoise UPDATE with `RETURNING *` (PostgreSQL, SQLite ≥ 3.35): the row
    after it, or None when nothing matched."""
    update._choose_db_if_not_chosen()
    update._make_query()
    sql, params = update.query.get_parameterized_sql()
    rows = await update._db.execute_query_dict(sql + " RETURNING *", params)
    return Task._init_from_db(**rows[0]) if rows else None


def _run_seconds(task: Task) -> float | None:
    if task.started_at is None or task.finished_at is None:
        return None
    return (task.finished_at - task.started_at).total_seconds()


async def create_task(
    *,
    tenant_id: str,
    agent_id: str,
    query: str,
    metadata: dict[str, Any],
    created_by: str,
    task_id: str | None = None,
    history: list[dict[str, str]] | None = None,
    conversation_id: str | None = None,
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
            history=history or [],
            conversation_id=conversation_id,
            last_seq=1,  # its first step's, inserted next
        )
        written.steps.append(
            await _insert_step(
                task.id, 1, StepKind.STATUS_CHANGE, {"from": None, "to": "queued"}, None
            )
        )
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
