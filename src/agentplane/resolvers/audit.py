"""The audit trail: every mutation and security event, and its keyset-paginated reads.

Records made while a task runs (e.g. a budget crossed by its provider call) are
also appended to that task's trace as AUDIT steps.
"""

import asyncio
import contextvars
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from agentplane.core.errors import DomainError, Forbidden, TenantSuspended, Unauthenticated
from agentplane.core.post_commit import atomic
from agentplane.core.request_context import request_id
from agentplane.models import AuditEvent, StepKind, Task, Tenant
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.pagination import Page, paginate
from agentplane.resolvers.permissions import (
    Perm,
    in_audited_call,
    require,
    scoped_to_tenant,
)

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
SYSTEM = Actor(kind="system", role="", tenant_id=None)
_pending: set[asyncio.Task[Any]] = set()
# Set for the length of one GraphQL mutation: the IDs of the records it produced.
recorded_in_operation: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "agentplane_audit_recorded", default=None
)


def _event(
    actor: Actor | None,
    action: str,
    resource: str,
    outcome: str,
    tenant_id: str | None,
    task_id: str | None,
    details: dict[str, Any] | None,
) -> AuditEvent:
    actor = actor or Actor(kind="anonymous", role="", tenant_id=None)
    return AuditEvent(
        actor=actor.subject,
        actor_kind=actor.kind,
        role=actor.role or None,
        tenant_id=tenant_id if tenant_id is not None else actor.tenant_id,
        action=action,
        resource=resource[:200],
        outcome=outcome,
        request_id=request_id(),
        task_id=task_id,
        details=details or {},
    )


async def record(
    actor: Actor | None,
    action: str,
    *,
    resource: str = "",
    outcome: str = "success",
    tenant_id: str | None = None,
    task_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    event = _event(actor, action, resource, outcome, tenant_id, task_id, details)
    await event.save(force_create=True)
    _collect(event)
    if task_id is not None:
        task = await Task.get_or_none(id=task_id)
        if task is not None:
            from agentplane.resolvers.traces import append_step  # late: traces is heavier

            await append_step(
                task,
                StepKind.AUDIT,
                {
                    "auditId": event.id,
                    "action": action,
                    "actor": event.actor,
                    "resource": event.resource,
                    "outcome": outcome,
                    **({"details": details} if details else {}),
                },
            )
    return event


def _collect(event: AuditEvent) -> None:
    collected = recorded_in_operation.get()
    if collected is not None:
        collected.append(event.id)


@dataclass
class _Carried:
    """An audited call whose one write carries its success record."""

    actor: Actor | None
    action: str
    details: dict[str, Any]
    event: AuditEvent | None = None  # the record, once the write took it


_carried: contextvars.ContextVar[_Carried | None] = contextvars.ContextVar(
    "agentplane_audit_carried", default=None
)


def carried_record(resource: str, tenant_id: str) -> AuditEvent | None:
    """The success record of the audited call in progress, for its one write to insert
    with what it writes (so that write is the call's whole transaction); None outside
    a call declared `carried`, or once taken."""
    carried = _carried.get()
    if carried is None or carried.event is not None:
        return None
    carried.event = _event(
        carried.actor, carried.action, resource, "success", tenant_id, None, carried.details
    )
    return carried.event


def record_soon(actor: Actor | None, action: str, **kwargs: Any) -> None:
    """Record from synchronous code (a permission check): written in the background."""

    async def write() -> None:
        try:
            await record(actor, action, **kwargs)
        except Exception:  # an audit write must never turn a 403 into a 500
            log.exception("audit record %s failed", action)

    try:
        task = asyncio.get_running_loop().create_task(write())
    except RuntimeError:
        return
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def flush() -> None:
    """Wait for background audit writes (tests, shutdown)."""
    while _pending:
        await asyncio.gather(*list(_pending), return_exceptions=True)


def _resource_of(result: Any) -> tuple[str, str | None]:
    if isinstance(result, tuple) and result:
        result = result[0]
    if isinstance(result, Tenant):
        return result.name, result.id
    rid = getattr(result, "id", None)
    return (str(rid) if rid is not None else ""), getattr(result, "tenant_id", None)


_RESOURCE_ARGS = ("name", "agent_id", "task_id", "token_id", "user_id", "scope", "provider")


def _named_resource(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """What a failed call was about: its first string argument, or a well-known one."""
    if args and isinstance(args[0], str):
        return args[0]
    for name in _RESOURCE_ARGS:
        if isinstance(kwargs.get(name), str):
            return str(kwargs[name])
    return ""


def audited(action: str, *, carried: bool = False) -> Callable[[F], F]:
    """Record a resolver's every call as `action`, with its outcome; the first
    argument is the Actor. The call and its success record share one transaction
    (`post_commit.atomic`): both commit or neither does, and what the call publishes
    goes out after the commit. A refused call is rolled back, then recorded.

    `carried`: the call reads, then makes one atomic write that inserts the success
    record with it (`carried_record`), so it needs no transaction around its reads: on
    the hot path of task submission that saved BEGIN, an INSERT and COMMIT, and on
    SQLite the connection's lock for the length of the call."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        async def wrapper(actor: Actor | None, *args: Any, **kwargs: Any) -> Any:
            token = in_audited_call.set(True)
            # An operator's stated reason (run control) belongs in the record, whatever the outcome.
            reason = kwargs.get("reason")
            why = {"reason": reason} if isinstance(reason, str) and reason else {}
            try:
                if carried:
                    result = await _carrying(action, why, fn, actor, *args, **kwargs)
                else:
                    async with atomic():
                        result = await fn(actor, *args, **kwargs)
                        resource, tenant_id = _resource_of(result)
                        await record(
                            actor, action, resource=resource, tenant_id=tenant_id, details=why
                        )
            except DomainError as exc:
                if actor is not None:
                    denied = isinstance(exc, Forbidden | TenantSuspended | Unauthenticated)
                    await record(
                        actor,
                        action,
                        resource=_named_resource(args, kwargs),
                        outcome="denied" if denied else "failure",
                        details={"code": exc.code, "message": exc.message, **why},
                    )
                raise
            finally:
                in_audited_call.reset(token)
            return result

        return cast(F, wrapper)

    return decorate


async def _carrying(
    action: str, why: dict[str, Any], fn: F, actor: Actor | None, *args: Any, **kwargs: Any
) -> Any:
    carried = _Carried(actor, action, why)
    token = _carried.set(carried)
    try:
        result = await fn(actor, *args, **kwargs)
    finally:
        _carried.reset(token)
    if carried.event is None:  # its write did not take the record: the call wrote nothing
        raise RuntimeError(f"{action}: the call's write did not carry its audit record")
    _collect(carried.event)
    return result


async def list_audit_events(
    actor: Actor | None,
    first: int | None,
    after: str | None,
    tenant: str | None = None,
    action: str | None = None,
) -> Page[AuditEvent]:
    """Newest first, keyset-paginated on the time-sortable ID."""
    actor = require(actor, Perm.AUDIT_READ)
    qs = await scoped_to_tenant(actor, AuditEvent.all(), tenant)
    if action is not None:
        qs = qs.filter(action=action)
    return await paginate(qs, first, after, newest_first=True)
