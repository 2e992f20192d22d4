"""Approval requests: tool calls held for a human's decision, durable in the database.

Every change of a request is a compare-and-set on its `pending` status, made in one
transaction with the task's move (`waiting_for_approval` -> `queued`, or `failed` on an
expiry whose policy says so) and an audit record that is also a step of the task's trace;
events are published after the commit.
"""

import contextlib
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from agentplane.core import observability, request_context
from agentplane.core.errors import ApprovalRequired, Conflict, DomainError, ValidationFailed
from agentplane.core.ids import MAX_LEN as MAX_ID_LEN
from agentplane.models import (
    ApprovalRequest,
    ApprovalStatus,
    AuditEvent,
    OnExpiry,
    Step,
    StepKind,
    Task,
    TaskStatus,
)
from agentplane.resolvers import audit, traces
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.pagination import Page, paginate
from agentplane.resolvers.permissions import (
    Perm,
    get_owned,
    in_audited_call,
    is_platform,
    require,
)
from agentplane.resolvers.traces import Written
from agentplane.subscriptions import events, feeds
from agentplane.subscriptions.broker import get_broker
from agentplane.subscriptions.feeds import Sink

MAX_REASON = 2000
WAITING = TaskStatus.WAITING_FOR_APPROVAL


def _now() -> datetime:
    return datetime.now(UTC)


async def _publish(written: Written, request: ApprovalRequest, wake: bool = False) -> None:
    await written.publish()
    broker = get_broker()
    await broker.publish(events.APPROVALS_CHANNEL, events.approval_event(request))
    if wake:
        await broker.publish(events.QUEUE_CHANNEL, {"task_id": request.task_id})


async def _audit_in(
    written: Written,
    actor: Actor,
    action: str,
    request: ApprovalRequest,
    details: dict[str, Any],
    *,
    fence: int | None = None,
) -> None:
    """An audit record and its AUDIT step in the task's trace, in the caller's transaction."""
    event = await AuditEvent.create(
        actor=actor.subject,
        actor_kind=actor.kind,
        role=actor.role or None,
        tenant_id=request.tenant_id,
        action=action,
        resource=request.id,
        outcome="success",
        request_id=request_context.request_id(),
        task_id=request.task_id,
        details=details,
    )
    collected = audit.recorded_in_operation.get()
    if collected is not None:
        collected.append(event.id)
    await traces.append_in(
        written,
        request.task_id,
        StepKind.AUDIT,
        {
            "auditId": event.id,
            "action": action,
            "actor": event.actor,
            "resource": request.id,
            "outcome": "success",
            "details": details,
        },
        fence=fence,
    )


async def _move_task(
    written: Written, task_id: str, to: TaskStatus, reason: str, **changes: Any
) -> bool:
    """`waiting_for_approval` -> `to` inside the caller's transaction (a compare-and-set)."""
    now = _now()
    if to.is_terminal:
        changes["finished_at"] = now
    moved = await Task.filter(id=task_id, status=WAITING).update(
        status=to, updated_at=now, status_reason=None, **changes
    )
    if not moved:
        return False
    payload = {"from": WAITING.value, "to": to.value, "reason": reason}
    await traces.append_in(written, task_id, StepKind.STATUS_CHANGE, payload)
    written.task = await Task.get(id=task_id)
    return True


async def _lock_task(conn: BaseDBAsyncClient, task_id: str) -> None:
    """Serialise with the worker parking the task (see `park`); SQLite has one writer."""
    if conn.capabilities.dialect == "postgres":
        await conn.execute_query("SELECT id FROM task WHERE id = $1 FOR UPDATE", [task_id])


# ---------------------------------------------------------------- the runtime's side


async def asking_step(task_id: str) -> int:
    """The seq of the task's latest model call: the one whose tool calls are being run."""
    row = (
        await Step.filter(task_id=task_id, kind=StepKind.PROVIDER_CALL)
        .order_by("-seq")
        .first()
        .values("seq")
    )
    return int(row["seq"]) if row else 0


async def find_request(task_id: str, step_seq: int, call_id: str) -> ApprovalRequest | None:
    return await ApprovalRequest.get_or_none(task_id=task_id, step_seq=step_seq, call_id=call_id)


async def open_request(
    task: Task,
    *,
    step_seq: int,
    call_id: str,
    tool: str,
    arguments: dict[str, Any],
    schema: dict[str, Any],
    risk: str,
    preview: str,
    expires_in_s: int | None,
    on_expiry: OnExpiry,
    fence: int,
) -> ApprovalRequest:
    """Create the request with its audit record and AUDIT step (fenced: only the worker
    holding the task may ask)."""
    now = _now()
    written = Written()
    async with in_transaction():
        request = await ApprovalRequest.create(
            tenant_id=task.tenant_id,
            task_id=task.id,
            agent_id=task.agent_id,
            step_seq=step_seq,
            call_id=call_id,
            tool=tool,
            arguments=arguments,
            arguments_schema=schema,
            risk=risk,
            preview=preview,
            on_expiry=on_expiry,
            expires_at=now + timedelta(seconds=expires_in_s) if expires_in_s else None,
        )
        await _audit_in(
            written,
            audit.SYSTEM,
            "approval.request",
            request,
            {"tool": tool, "arguments": arguments, "risk": risk, "callId": call_id},
            fence=fence,  # a worker that lost the task writes nothing (LeaseLost)
        )
    await _publish(written, request)
    return request


async def park(task: Task, request: ApprovalRequest) -> None:
    """The worker lets go of a task whose call waits for a decision: `running` ->
    `waiting_for_approval`, holding no worker and no lease."""
    parked = await traces.transition(
        task.id,
        [TaskStatus.RUNNING],
        WAITING,
        reason=f"waiting for approval {request.id} ({request.tool})",
        fence=task.attempt,
        details={"approvalId": request.id},
        status_reason=f"approval of {request.tool}"[:200],
        worker_id=None,
        lease_expires_at=None,
    )
    if parked is None:
        return
    # A decision or a cancel that came before the task was parked found it running;
    # the decision's transaction locks the task row, so one of us sees the other.
    current = await ApprovalRequest.get(id=request.id)
    if parked.cancel_requested:
        await cancel_for_task(task.id, audit.SYSTEM)
        await traces.transition(
            task.id, [WAITING], TaskStatus.CANCELLED, reason="cancelled", status_reason="cancelled"
        )
    elif current.status != ApprovalStatus.PENDING:
        resumed = await traces.transition(
            task.id, [WAITING], TaskStatus.QUEUED, reason=f"approval {current.status.value}"
        )
        if resumed is not None:
            await get_broker().publish(events.QUEUE_CHANNEL, {"task_id": task.id})


async def record_refusal(task: Task, request: ApprovalRequest, fence: int) -> str:
    """The refused call's step: the model reads the refusal as the tool's output."""
    if request.status == ApprovalStatus.EXPIRED:
        output = f"error: approval request {request.id} expired before anyone decided"
    else:
        why = f": {request.reason}" if request.reason else ""
        output = f"error: the call was {request.status.value} by {request.decided_by}{why}"
    payload = {
        "tool": request.tool,
        "callId": request.call_id,
        "arguments": request.arguments,
        "output": output,
        "approvalId": request.id,
        "approval": request.status.value,
    }
    await traces.append_step(task, StepKind.TOOL_CALL, payload, fence=fence)
    return output


# ---------------------------------------------------------------- expiry and cancel


def _due(request: ApprovalRequest, now: datetime) -> bool:
    return request.expires_at is not None and request.expires_at <= now


async def expire(request: ApprovalRequest) -> ApprovalRequest:
    """Expire a pending request that is due, audited; a waiting task fails or goes back to
    the queue (where the gate refuses the call) per the request's policy."""
    written = Written()
    now = _now()
    async with in_transaction() as conn:
        await _lock_task(conn, request.task_id)
        won = await ApprovalRequest.filter(
            id=request.id, status=ApprovalStatus.PENDING, expires_at__lte=now
        ).update(status=ApprovalStatus.EXPIRED, decided_at=now)
        if won:
            fail = request.on_expiry == OnExpiry.FAIL
            await _audit_in(
                written,
                audit.SYSTEM,
                "approval.expire",
                request,
                {"tool": request.tool, "onExpiry": request.on_expiry.value},
            )
            reason = f"approval {request.id} expired"
            if fail:
                await _move_task(written, request.task_id, TaskStatus.FAILED, reason, error=reason)
            else:
                await _move_task(written, request.task_id, TaskStatus.QUEUED, reason)
    request = await ApprovalRequest.get(id=request.id)
    if written.task is not None and written.task.status.is_terminal:
        observability.task_finished(written.task.status.value, None)  # counted once committed
    if won:
        await _publish(written, request, wake=written.task is not None)
    return request


async def expire_if_due(request: ApprovalRequest) -> ApprovalRequest:
    return await expire(request) if _due(request, _now()) else request


async def expire_due(now: datetime | None = None) -> int:
    """The sweep each worker runs every few seconds next to its lease reaper (not the hourly
    maintenance job: an expiry should act within seconds): expire every due request."""
    due = await ApprovalRequest.filter(
        status=ApprovalStatus.PENDING, expires_at__lte=now or _now()
    ).order_by("id")
    expired = 0
    for request in due:
        if (await expire(request)).status == ApprovalStatus.EXPIRED:
            expired += 1
    return expired


async def cancel_for_task(task_id: str, actor: Actor) -> None:
    """The task was cancelled: its pending requests will never be decided."""
    for request in await ApprovalRequest.filter(task_id=task_id, status=ApprovalStatus.PENDING):
        written = Written()
        async with in_transaction():
            won = await ApprovalRequest.filter(id=request.id, status=ApprovalStatus.PENDING).update(
                status=ApprovalStatus.CANCELLED, decided_at=_now(), decided_by=actor.subject
            )
            if won:
                await _audit_in(written, actor, "approval.cancel", request, {"tool": request.tool})
        if won:
            await _publish(written, await ApprovalRequest.get(id=request.id))


# ---------------------------------------------------------------- the API's side


async def get_request(actor: Actor | None, request_id: str) -> ApprovalRequest:
    actor = require(actor, Perm.TASK_READ)
    return await get_owned(actor, ApprovalRequest, request_id, "Approval request")


async def list_requests(
    actor: Actor | None,
    first: int | None,
    after: str | None,
    status: ApprovalStatus | None = None,
    task_id: str | None = None,
) -> Page[ApprovalRequest]:
    """Newest first, in the caller's tenant (every tenant for platform callers)."""
    actor = require(actor, Perm.TASK_READ)
    qs = (
        ApprovalRequest.all()
        if is_platform(actor)
        else ApprovalRequest.filter(tenant_id=actor.tenant_id)
    )
    if task_id is not None:
        qs = qs.filter(task_id=(await get_owned(actor, Task, task_id, "Task")).id)
    if status is not None:
        qs = qs.filter(status=status)
    return await paginate(qs, first, after, newest_first=True)


async def load_pending(actor: Actor | None, task_ids: list[str]) -> list[ApprovalRequest | None]:
    """The pending request of each task (DataLoader batch), within the caller's tenant."""
    actor = require(actor, Perm.TASK_READ)
    qs = ApprovalRequest.filter(task_id__in=task_ids, status=ApprovalStatus.PENDING)
    if not is_platform(actor):
        qs = qs.filter(tenant_id=actor.tenant_id)
    found = {r.task_id: r for r in await qs.order_by("id")}
    return [found.get(task_id) for task_id in task_ids]


async def approval_required(actor: Actor | None, task: Task) -> ApprovalRequired:
    """What a synchronous caller answers when its run parked for a decision."""
    [request] = await load_pending(actor, [task.id])
    if request is None:  # decided meanwhile: the run goes on
        what, how = "a decision", "read the run again"
    else:
        what = f"approval {request.id} of {request.tool}"
        how = (
            "decide it (decideApproval, or POST "
            f"/api/control-plane/approvals/{request.id}/approve or /reject), then read the run"
        )
    return ApprovalRequired(
        f"Run {task.id} waits for {what}: {how}",
        taskId=task.id,
        approvalId=request.id if request else None,
    )


async def load_tasks(actor: Actor | None, ids: list[str]) -> list[Task | None]:
    """Batch lookup for DataLoaders: foreign or missing IDs come back as None."""
    actor = require(actor, Perm.TASK_READ)
    qs = Task.filter(id__in=[i for i in ids if len(i) <= MAX_ID_LEN])
    if not is_platform(actor):
        qs = qs.filter(tenant_id=actor.tenant_id)
    by_id = {t.id: t for t in await qs}
    return [by_id.get(i) for i in ids]


async def approval_updates(
    actor: Actor | None, task_id: str | None = None, sink: Sink | None = None
) -> AsyncGenerator[ApprovalRequest, None]:
    """Requests of the caller's tenant (every tenant's for platform callers) as they are
    opened and decided, optionally of one task only: written to `sink` (a socket) by the
    approvals feed while it renders them, the others yielded."""
    actor = require(actor, Perm.TASK_READ)
    if task_id is not None:
        task_id = (await get_owned(actor, Task, task_id, "Task")).id
    tenant_id = None if is_platform(actor) else actor.tenant_id

    def concerns(message: dict[str, Any]) -> bool:
        return (tenant_id is None or message.get("tenant_id") == tenant_id) and (
            task_id is None or message.get("task_id") == task_id
        )

    updates = feeds.follow_channel(
        events.APPROVALS_CHANNEL, events.approval_from_event, concerns, sink
    )
    async with contextlib.aclosing(updates):  # leaves the feed when the caller does
        async for request in updates:
            yield request


def _check_arguments(request: ApprovalRequest, arguments: Any) -> None:
    if not isinstance(arguments, dict):
        raise ValidationFailed("`arguments` must be a JSON object", field="arguments")
    schema = request.arguments_schema or {}
    try:
        validator_class = jsonschema.validators.validator_for(schema)
        validator_class.check_schema(schema)
        errors = sorted(validator_class(schema).iter_errors(arguments), key=lambda e: e.path)
    except jsonschema.SchemaError:
        raise ValidationFailed(
            f"Tool {request.tool!r} has an invalid JSON Schema", field="arguments"
        ) from None
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
        raise ValidationFailed(
            f"`arguments` do not match the schema of {request.tool!r} at {where}: "
            f"{errors[0].message}",
            field="arguments",
        )


async def decide(
    actor: Actor | None,
    request_id: str,
    *,
    approve: bool,
    arguments: Any = None,
    reason: str | None = None,
) -> ApprovalRequest:
    """Approve (optionally with edited arguments, validated against the tool's schema) or
    reject (with a reason the model sees). Exactly one decision wins; another answers
    CONFLICT. The waiting task goes back to the queue in the same transaction."""
    action = "approval.approve" if approve else "approval.reject"
    token = in_audited_call.set(True)  # a denial is recorded below, once
    try:
        return await _decide(actor, request_id, approve, arguments, reason, action)
    except DomainError as exc:
        if actor is not None:
            await audit.record(
                actor,
                action,
                resource=request_id[:200],
                outcome="denied" if exc.code in ("FORBIDDEN", "TENANT_SUSPENDED") else "failure",
                details={"code": exc.code, "message": exc.message},
            )
        raise
    finally:
        in_audited_call.reset(token)


async def _decide(
    actor: Actor | None,
    request_id: str,
    approve: bool,
    arguments: Any,
    reason: str | None,
    action: str,
) -> ApprovalRequest:
    actor = require(actor, Perm.APPROVAL_DECIDE)
    request = await get_owned(actor, ApprovalRequest, request_id, "Approval request")
    if reason is not None and len(reason) > MAX_REASON:
        raise ValidationFailed(f"`reason` exceeds {MAX_REASON} characters", field="reason")
    if arguments is not None:
        if not approve:
            raise ValidationFailed("Edited `arguments` go with APPROVE only", field="arguments")
        _check_arguments(request, arguments)
    if request.status == ApprovalStatus.PENDING:
        request = await expire_if_due(request)
    if request.status != ApprovalStatus.PENDING:
        raise Conflict(f"Approval request {request.id} is already {request.status.value}")
    status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
    now = _now()
    written = Written()
    async with in_transaction() as conn:
        await _lock_task(conn, request.task_id)
        won = await ApprovalRequest.filter(id=request.id, status=ApprovalStatus.PENDING).update(
            status=status,
            decided_by=actor.subject,
            decided_at=now,
            reason=reason,
            edited_arguments=arguments,
        )
        if not won:
            raise Conflict(f"Approval request {request.id} was decided by someone else")
        details: dict[str, Any] = {"tool": request.tool, "decision": status.value}
        if reason:
            details["reason"] = reason
        if arguments is not None:
            details["editedArguments"] = arguments
        await _audit_in(written, actor, action, request, details)
        # Still running (the worker has not parked it yet): `park` sees the decision.
        await _move_task(written, request.task_id, TaskStatus.QUEUED, f"approval {status.value}")
    request = await ApprovalRequest.get(id=request.id)
    await _publish(written, request, wake=written.task is not None)
    return request
