"""The trace: the one write path for steps and status changes, and its reads.

Every step goes through `append_step` (inside a transaction) and is published
only after that transaction commits, so a subscriber never sees a step that a
rollback later erases, and replaying from the database always agrees with what
was streamed.
"""

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any

import orjson
from tortoise.connection import get_connection
from tortoise.expressions import CombinedExpression, Connector, Expression, F, Value
from tortoise.transactions import in_transaction

from agentplane.core import db, observability, sqlite_hop
from agentplane.core.errors import ValidationFailed
from agentplane.core.ids import step_id as new_step_id
from agentplane.core.ids import task_id as new_task_id
from agentplane.core.ids import usage_id as new_usage_id
from agentplane.core.pricing import PRICING_VERSION
from agentplane.models import Step, StepKind, StepPayload, Task, TaskStatus, UsageRecord
from agentplane.models.budget import current_window
from agentplane.resolvers import audit, step_payloads
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


def _seq_update(task_id: str, usage: Usage | None, fence: int | None) -> tuple[str, list[Any]]:
    """The UPDATE that allocates a step's seq (and adds its cost), `?` placeholders.

    Must run inside a transaction: the row lock it takes serialises seq allocation. With
    a fence (the claim's attempt number) only the worker holding the claim may write, so
    a worker that lost its lease can never add a step after its successor's."""
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
    return sql + " RETURNING last_seq", params


async def _append(
    task_id: str,
    kind: StepKind,
    payload: dict[str, Any],
    usage: Usage | None,
    fence: int | None = None,
) -> Step:
    sql, params = _seq_update(task_id, usage, fence)
    conn = get_connection("default")  # inside the caller's transaction
    rows = await conn.execute_query_dict(db.placeholders(conn, sql), params)
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
    conn = get_connection("default")  # the caller's transaction, if it has one
    inline, full, _ = step_payloads.split(payload)
    if _one_statement(conn) and full is None:
        step = await _append_one_statement(conn, task.id, kind, inline, usage, fence)
        written.steps.append(step)
    elif sqlite_hop.is_sqlite(conn):
        step = await _append_one_hop(conn, task, kind, payload, usage, fence)
        written.steps.append(step)
    else:
        async with in_transaction():
            step = await _append(task.id, kind, payload, usage, fence)
            written.steps.append(step)
            if usage is not None:
                await _usage_record(task, step.id, usage).save(force_create=True)
    await written.publish()
    if usage is not None and usage.priced:
        observability.spent(usage.model, float(usage.cost_usd))
    return step


def _usage_record(task: Task, step_id: str, usage: Usage) -> UsageRecord:
    return UsageRecord(
        tenant_id=task.tenant_id,
        agent_id=task.agent_id,
        task_id=task.id,
        step_id=step_id,
        model=usage.model,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost_usd=usage.cost_usd,
        priced=usage.priced,
    )


# ------------------------------------------------ PostgreSQL: a write in one statement
# On PostgreSQL a step's writes (the task's seq and cost, the step, its usage record) or a
# transition's (the compare-and-set and its status step) are one statement of
# data-modifying CTEs, atomic on its own: one round trip where BEGIN, two or three
# statements and COMMIT were four or five. Every round trip costs the worker a socket
# write and a wake-up, which was most of its CPU time per task (README, Performance).
# SQLite has no data-modifying CTEs; it keeps the transaction (its statements are
# in-process calls).


def _one_statement(conn: Any) -> bool:
    return bool(conn.capabilities.dialect == "postgres")


def _step_insert(n: int) -> str:
    """INSERT of the step whose seq the CTE `t` allocated; parameters $n..$n+8 as
    `_step_params` orders them."""
    p = [f"${n + i}" for i in range(9)]
    return (
        "INSERT INTO step (id, task_id, seq, kind, payload, model, input_tokens,"
        f" output_tokens, latency_ms, cost_usd, created_at) SELECT {p[0]}::varchar, t.id,"
        f" t.last_seq, {p[1]}::varchar, {p[2]}::jsonb, {p[3]}::varchar, {p[4]}::int,"
        f" {p[5]}::int, {p[6]}::int, {p[7]}::numeric, {p[8]}::timestamptz FROM t"
    )


def _new_step(
    task_id: str, seq: int, kind: StepKind, payload: dict[str, Any], usage: Usage | None
) -> Step:
    step = Step(
        id=new_step_id(),
        task_id=task_id,
        seq=seq,
        kind=kind,
        payload=payload,
        created_at=datetime.now(UTC),
    )
    if usage is not None:
        step.model = usage.model
        step.input_tokens = usage.input_tokens
        step.output_tokens = usage.output_tokens
        step.latency_ms = usage.latency_ms
        step.cost_usd = usage.cost_usd
    step._saved_in_db = True  # it is, once the statement that carries it commits
    return step


def _step_params(step: Step) -> list[Any]:
    return [
        step.id,
        step.kind.value,
        orjson.dumps(step.payload).decode(),
        step.model,
        step.input_tokens,
        step.output_tokens,
        step.latency_ms,
        step.cost_usd,
        step.created_at,
    ]


@cache
def _append_sql(usage: bool, fenced: bool) -> str:
    # $1 the task; $2..$10 the step (its cost, $9, is the usage's too); then the usage
    # record's own fields; then the fence.
    sets = "last_seq = last_seq + 1" + (", cost_usd = cost_usd + $9::numeric" if usage else "")
    where = "id = $1"
    n = 11
    parts = []
    if usage:
        parts.append(
            "u AS (INSERT INTO usage_record (id, tenant_id, agent_id, task_id, step_id, model,"
            " input_tokens, output_tokens, cost_usd, priced, period, pricing_version,"
            " created_at) SELECT $11::varchar, t.tenant_id, t.agent_id, t.id, $2::varchar,"
            " $5::varchar, $6::int, $7::int, $9::numeric, $12::bool, $13::varchar,"
            " $14::varchar, $10::timestamptz FROM t)"
        )
        n = 15
    if fenced:
        where += f" AND attempt = ${n} AND status = ${n + 1}"
    return (
        f"WITH t AS (UPDATE task SET {sets} WHERE {where}"
        " RETURNING id, tenant_id, agent_id, last_seq),"
        f" s AS ({_step_insert(2)}){''.join(', ' + part for part in parts)}"
        " SELECT last_seq FROM t"
    )


async def _append_one_statement(
    conn: Any,
    task_id: str,
    kind: StepKind,
    payload: dict[str, Any],
    usage: Usage | None,
    fence: int | None,
) -> Step:
    step = _new_step(task_id, 0, kind, payload, usage)
    params = [task_id, *_step_params(step)]
    if usage is not None:
        params += [new_usage_id(), usage.priced, current_window(), PRICING_VERSION]
    if fence is not None:
        params += [fence, TaskStatus.RUNNING.value]
    rows = await conn.execute_query_dict(_append_sql(usage is not None, fence is not None), params)
    if not rows:
        raise LeaseLost(task_id)
    step.seq = int(rows[0]["last_seq"])
    return step


# ------------------------------------------------ SQLite: a write in one hop
# SQLite has no data-modifying CTEs; a write's statements run instead as one function
# on the connection's thread, in a transaction (or a savepoint of the caller's): one
# hand-back to the event loop where BEGIN, two or three statements and COMMIT were four
# or five, each holding every other writer's turn (core/sqlite_hop.py).


def _step_insert_patched(conn: Any, step: Step) -> tuple[str, list[Any], int]:
    """The step's INSERT, and where its seq goes once the task's UPDATE allocated it."""
    sql, values = db.insert_statement(conn, step)
    return sql, values, conn.executor_class(model=Step, db=conn).regular_columns.index("seq")


async def _append_one_hop(
    conn: Any,
    task: Task,
    kind: StepKind,
    payload: dict[str, Any],
    usage: Usage | None,
    fence: int | None,
) -> Step:
    inline, full, size = step_payloads.split(payload)  # a large payload is stored apart
    step = _new_step(task.id, 0, kind, inline, usage)
    update, params = _seq_update(task.id, usage, fence)
    step_sql, step_values, seq_at = _step_insert_patched(conn, step)
    later = []
    if full is not None:
        later.append(
            db.insert_statement(conn, StepPayload(step_id=step.id, payload=full, size_bytes=size))
        )
    if usage is not None:
        later.append(db.insert_statement(conn, _usage_record(task, step.id, usage)))

    def work(connection: Any) -> int | None:  # all or nothing (sqlite_hop.run)
        row = connection.execute(update, params).fetchone()
        if row is None:
            return None
        step_values[seq_at] = row[0]
        connection.execute(step_sql, step_values)
        sqlite_hop.execute(connection, later)
        return int(row[0])

    seq = await sqlite_hop.run(conn, work)
    if seq is None:
        raise LeaseLost(task.id)
    step.seq = seq
    return step


async def _move_one_hop(
    conn: Any,
    task_id: str,
    conditions: dict[str, Any],
    changes: dict[str, Any],
    payload: dict[str, Any],
) -> tuple[Task, Step] | None:
    """SQLite: the compare-and-set UPDATE (returning the row) and its status step."""
    inline, full, size = step_payloads.split(payload)
    step = _new_step(task_id, 0, StepKind.STATUS_CHANGE, inline, None)
    update, params = _task_update(conn, conditions, changes)
    step_sql, step_values, seq_at = _step_insert_patched(conn, step)
    later = []
    if full is not None:
        later.append(
            db.insert_statement(conn, StepPayload(step_id=step.id, payload=full, size_bytes=size))
        )

    def work(connection: Any) -> dict[str, Any] | None:  # all or nothing
        row = connection.execute(update, params).fetchone()
        if row is None:
            return None
        step_values[seq_at] = row["last_seq"]
        connection.execute(step_sql, step_values)
        sqlite_hop.execute(connection, later)
        return dict(row)

    row = await sqlite_hop.run(conn, work)
    if row is None:
        return None
    task = Task._init_from_db(**row)
    step.seq = task.last_seq
    return task, step


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
    changes.update(status=to, updated_at=now, last_seq=F("last_seq") + 1)
    conditions = await _cas(task_id, sources, fence)
    if conditions is None:
        return None
    payload = _status_payload(conditions, to, reason, details)
    conn = get_connection("default")  # the caller's transaction, if it has one
    if sqlite_hop.is_sqlite(conn):
        moved = await _move_one_hop(conn, task_id, conditions, changes, payload)
    elif step_payloads.split(payload)[1] is None:
        moved = await _move_one_statement(task_id, conditions, changes, payload)
    else:  # PostgreSQL, a status payload too large to keep inline: rare
        async with in_transaction():
            moved = await _move_in(task_id, conditions, changes, payload)
    if moved is None:
        return None
    task, step = moved
    if to.is_terminal:  # counted once committed, so /metrics agrees with what readers see
        observability.task_finished(to.value, _run_seconds(task))
    await Written([step], task).publish()
    return task


async def _cas(task_id: str, sources: list[TaskStatus], fence: int | None) -> dict[str, Any] | None:
    """The compare-and-set's conditions. With one possible source status and a fence, its
    WHERE says everything; otherwise the current row tells which status it moves from
    (and, unfenced, pins the attempt it read). None: the task cannot move."""
    if len(sources) == 1 and fence is not None:
        return {"id": task_id, "status": sources[0], "attempt": fence}
    current = await Task.filter(id=task_id).first().values("status", "attempt")
    if current is None or current["status"] not in sources:
        return None
    if fence is not None and current["attempt"] != fence:
        return None
    return {"id": task_id, "status": current["status"], "attempt": current["attempt"]}


def _status_payload(
    conditions: dict[str, Any], to: TaskStatus, reason: str | None, details: dict[str, Any] | None
) -> dict[str, Any]:
    from_status = TaskStatus(conditions["status"])
    payload: dict[str, Any] = {"from": from_status.value, "to": to.value, **(details or {})}
    if reason:
        payload["reason"] = reason
    return payload


async def _move_in(
    task_id: str, conditions: dict[str, Any], changes: dict[str, Any], payload: dict[str, Any]
) -> tuple[Task, Step] | None:
    """Inside the caller's transaction: the UPDATE allocates the status step's seq and
    returns the row as it is now (no second read), then the step."""
    task = await _update_returning(conditions, changes)
    if task is None:
        return None
    step = await _insert_step(task_id, task.last_seq, StepKind.STATUS_CHANGE, payload, None)
    return task, step


async def _move_one_statement(
    task_id: str, conditions: dict[str, Any], changes: dict[str, Any], payload: dict[str, Any]
) -> tuple[Task, Step] | None:
    """PostgreSQL: the compare-and-set UPDATE and its status step as one statement."""
    step = _new_step(task_id, 0, StepKind.STATUS_CHANGE, payload, None)
    task = await _update_returning(conditions, changes, step)
    if task is None:
        return None
    step.seq = task.last_seq
    return task, step


def _is_increment(key: str, value: Any) -> bool:
    """`F(key) + 1`, as the claim's attempt and every transition's seq are written."""
    return (
        isinstance(value, CombinedExpression)
        and isinstance(value.left, F)
        and value.left.name == key
        and value.connector == Connector.add
        and isinstance(value.right, Value)
        and value.right.value == 1
    )


@cache
def _update_sql(postgres: bool, sets: tuple[tuple[str, bool], ...], where: tuple[str, ...]) -> str:
    """`UPDATE task … RETURNING *` for one shape of change: (column, is an increment)."""
    marks = (f"${i}" for i in itertools.count(1)) if postgres else itertools.repeat("?")
    assignments = [f'"{c}" = "{c}" + 1' if inc else f'"{c}" = {next(marks)}' for c, inc in sets]
    conditions = [f'"{c}" = {next(marks)}' for c in where]
    return f"UPDATE task SET {', '.join(assignments)} WHERE {' AND '.join(conditions)} RETURNING *"


def _task_update(
    conn: Any, conditions: dict[str, Any], changes: dict[str, Any]
) -> tuple[str, list[Any]]:
    """The compare-and-set `UPDATE … RETURNING *` (PostgreSQL, SQLite ≥ 3.35) and its
    parameters. Its SQL is cached per shape of change, where Tortoise would build it each
    time (pypika was a tenth of the worker's CPU per task); any change other than plain
    values and `F(field) + 1` takes Tortoise's query builder."""
    columns = Task._meta.fields_db_projection
    shape: list[tuple[str, bool]] = []
    params: list[Any] = []
    for key, value in changes.items():
        if _is_increment(key, value):
            shape.append((columns[key], True))
        elif key in columns and not isinstance(value, Expression):
            shape.append((columns[key], False))
            params.append(_db_value(key, value))
        else:
            update = Task.filter(**conditions).update(**changes)
            update._choose_db_if_not_chosen()
            update._make_query()
            sql, built = update.query.get_parameterized_sql()
            return sql + " RETURNING *", list(built)
    params += [_db_value(key, value) for key, value in conditions.items()]
    postgres = conn.capabilities.dialect == "postgres"
    return _update_sql(postgres, tuple(shape), tuple(columns[k] for k in conditions)), params


def _db_value(key: str, value: Any) -> Any:
    # No instance, as Tortoise's own UPDATE passes: an auto_now field is not refreshed.
    return Task._meta.fields_map[key].to_db_value(value, None)  # type: ignore[arg-type]


async def _update_returning(
    conditions: dict[str, Any], changes: dict[str, Any], step: Step | None = None
) -> Task | None:
    """Run the task's compare-and-set UPDATE: the row after it, or None when nothing
    matched. With `step` (PostgreSQL), the same statement inserts it with the seq the
    UPDATE allocated."""
    conn = get_connection("default")
    sql, params = _task_update(conn, conditions, changes)
    if step is not None:
        sql = f"WITH t AS ({sql}), s AS ({_step_insert(len(params) + 1)}) SELECT * FROM t"
        params = [*params, *_step_params(step)]
    rows = await conn.execute_query_dict(sql, params)
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
    task = Task(
        id=task_id or new_task_id(),
        tenant_id=tenant_id,
        agent_id=agent_id,
        query=query,
        metadata=metadata,
        created_by=created_by,
        history=history or [],
        conversation_id=conversation_id,
        last_seq=1,  # its first step's, inserted with it
    )
    first = {"from": None, "to": "queued"}
    conn = get_connection("default")  # the caller's transaction, if it has one
    step = _new_step(task.id, 1, StepKind.STATUS_CHANGE, first, None)
    insert, values = db.insert_statement(conn, task)
    # An audited submission's success record goes in the same write (audit.carried).
    event = audit.carried_record(task.id, tenant_id)
    if _one_statement(conn):
        sql = f"WITH t AS ({insert} RETURNING id, last_seq), s AS ({_step_insert(len(values) + 1)})"
        params = [*values, *_step_params(step)]
        if event is not None:
            audit_insert, audit_values = db.insert_statement(conn, event)
            sql += f", a AS ({db.shift_parameters(audit_insert, len(params))})"
            params += audit_values
        await conn.execute_query(sql + " SELECT id FROM t", params)
    else:  # SQLite: the inserts in one hop
        inserts = [(insert, values), db.insert_statement(conn, step)]
        if event is not None:
            inserts.append(db.insert_statement(conn, event))
        await sqlite_hop.write(conn, inserts)
    if event is not None:
        event._saved_in_db = True
    task._saved_in_db = True
    written.steps.append(step)
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
