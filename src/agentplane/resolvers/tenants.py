import re
from datetime import UTC, datetime, timedelta

from tortoise.exceptions import IntegrityError

from agentplane.core.errors import Conflict, NotFound, TenantSuspended, ValidationFailed
from agentplane.models import Budget, Task, TaskStatus, Tenant, TenantPhase
from agentplane.resolvers import actor_cache, traces
from agentplane.resolvers.audit import audited
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.pagination import Page, paginate
from agentplane.resolvers.permissions import Perm, check_tenant, is_platform, require
from agentplane.subscriptions import events, live_sockets
from agentplane.subscriptions.broker import get_broker

# A DNS label, so tenant names can name namespaces, hosts and URL segments.
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
RESTORE_WINDOW = timedelta(days=30)
SUSPENDED_REASON = "tenant_suspended"


def _check_fields(display_name: str | None, email: str | None, team: str | None) -> None:
    if email and not EMAIL_RE.match(email):
        raise ValidationFailed("Invalid email address", field="email")
    if display_name is not None and len(display_name) > 200:
        raise ValidationFailed("`displayName` must be at most 200 characters", field="displayName")
    if team is not None and len(team) > 200:
        raise ValidationFailed("`team` must be at most 200 characters", field="team")


@audited("tenant.create")
async def create_tenant(
    actor: Actor | None, *, name: str, display_name: str = "", email: str = "", team: str = ""
) -> Tenant:
    require(actor, Perm.TENANT_WRITE)
    if not NAME_RE.match(name):
        raise ValidationFailed(
            "Tenant name must be a DNS label: lowercase letters, digits and '-', 1-63 chars",
            field="name",
        )
    _check_fields(display_name, email, team)
    try:
        return await Tenant.create(name=name, display_name=display_name, email=email, team=team)
    except IntegrityError:
        raise Conflict(f"Tenant {name!r} already exists", field="name") from None


async def get_tenant(actor: Actor | None, name: str) -> Tenant:
    actor = require(actor, Perm.TENANT_READ)
    tenant = await Tenant.get_or_none(name=name)
    if tenant is None:
        raise NotFound(f"Tenant {name!r} not found")
    check_tenant(actor, tenant.id, f"Tenant {name!r}")
    return tenant


async def get_tenant_by_id(actor: Actor | None, tenant_id: str) -> Tenant:
    actor = require(actor, Perm.TENANT_READ)
    check_tenant(actor, tenant_id, "Tenant")
    tenant = await Tenant.get_or_none(id=tenant_id)
    if tenant is None:
        raise NotFound("Tenant not found")
    return tenant


async def list_tenants(
    actor: Actor | None,
    first: int | None,
    after: str | None,
    include_deleted: bool = False,
) -> Page[Tenant]:
    actor = require(actor, Perm.TENANT_READ)
    qs = Tenant.all() if is_platform(actor) else Tenant.filter(id=actor.tenant_id)
    if not include_deleted:
        qs = qs.exclude(phase=TenantPhase.DELETED)
    return await paginate(qs, first, after)


async def load_tenants(actor: Actor | None, ids: list[str]) -> list[Tenant | None]:
    """Batch lookup for DataLoaders: foreign or missing IDs come back as None."""
    actor = require(actor, Perm.TENANT_READ)
    allowed = ids if is_platform(actor) else [i for i in ids if i == actor.tenant_id]
    by_id = {t.id: t for t in await Tenant.filter(id__in=allowed)}
    return [by_id.get(i) for i in ids]


async def resolve_tenant_name(actor: Actor, name: str | None) -> str:
    """The tenant a write goes to: platform callers must name one, others get their own.

    Writes into a suspended or deleted tenant are refused here, whoever the caller is.
    """
    if name is None:
        if actor.tenant_id is None:
            raise ValidationFailed(
                "`tenant` is required for platform-scoped callers", field="tenant"
            )
        await check_writable(actor.tenant_id)
        return actor.tenant_id
    tenant = await Tenant.get_or_none(name=name)
    if tenant is None or not (is_platform(actor) or tenant.id == actor.tenant_id):
        raise NotFound(f"Tenant {name!r} not found")
    await check_writable(tenant.id)
    return tenant.id


async def check_writable(tenant_id: str) -> None:
    check_phase(await Tenant.filter(id=tenant_id).first().values_list("phase", flat=True))


def check_phase(phase: object) -> None:
    """A tenant in `phase` (None: no such tenant) takes writes and new tasks, or this raises."""
    if phase == TenantPhase.SUSPENDED:
        raise TenantSuspended("Tenant is suspended: reads work, writes and new tasks do not")
    if phase is None or phase == TenantPhase.DELETED:
        raise NotFound("Tenant not found")


async def _platform_tenant(actor: Actor | None, name: str) -> Tenant:
    require(actor, Perm.TENANT_WRITE)
    tenant = await Tenant.get_or_none(name=name)
    if tenant is None:
        raise NotFound(f"Tenant {name!r} not found")
    return tenant


@audited("tenant.update")
async def update_tenant(
    actor: Actor | None,
    name: str,
    *,
    display_name: str | None = None,
    email: str | None = None,
    team: str | None = None,
) -> Tenant:
    tenant = await _platform_tenant(actor, name)
    if tenant.phase == TenantPhase.DELETED:
        raise Conflict(f"Tenant {name!r} is deleted; restore it first")
    _check_fields(display_name, email, team)
    changes = {
        k: v
        for k, v in (("display_name", display_name), ("email", email), ("team", team))
        if v is not None
    }
    if changes:
        await Tenant.filter(id=tenant.id).update(updated_at=datetime.now(UTC), **changes)
    return await Tenant.get(id=tenant.id)


async def _pause_tenant_tasks(tenant_id: str, reason: str) -> None:
    """Queued tasks pause at once; running ones at their next provider call (the runtime
    checks the tenant's phase there, see budgets.reserve_call)."""
    waiting = (TaskStatus.QUEUED, TaskStatus.RETRYING)
    queued = await Task.filter(tenant_id=tenant_id, status__in=waiting).values_list("id", flat=True)
    for task_id in queued:
        await traces.transition(
            str(task_id),
            waiting,
            TaskStatus.PAUSED,
            reason=reason,
            status_reason=reason,
        )


async def _resume_tenant_tasks(tenant_id: str, reason: str) -> None:
    paused = await Task.filter(
        tenant_id=tenant_id, status=TaskStatus.PAUSED, status_reason=reason
    ).values_list("id", flat=True)
    for task_id in paused:
        await traces.transition(
            str(task_id),
            [TaskStatus.PAUSED],
            TaskStatus.QUEUED,
            reason="tenant resumed",
            status_reason=None,
            pause_requested=False,
        )
    if paused:
        await get_broker().publish(events.QUEUE_CHANNEL, {"tenant_id": tenant_id})


@audited("tenant.suspend")
async def suspend_tenant(actor: Actor | None, name: str) -> Tenant:
    tenant = await _platform_tenant(actor, name)
    now = datetime.now(UTC)
    won = await Tenant.filter(id=tenant.id, phase=TenantPhase.ACTIVE).update(
        phase=TenantPhase.SUSPENDED, suspended_at=now, updated_at=now
    )
    if not won and tenant.phase != TenantPhase.SUSPENDED:
        raise Conflict(f"Tenant {name!r} is {tenant.phase.value}, not active")
    await actor_cache.invalidate("tenant", tenant.id)  # cached actors carry the phase
    await _pause_tenant_tasks(tenant.id, SUSPENDED_REASON)
    return await Tenant.get(id=tenant.id)


@audited("tenant.resume")
async def resume_tenant(actor: Actor | None, name: str) -> Tenant:
    tenant = await _platform_tenant(actor, name)
    won = await Tenant.filter(id=tenant.id, phase=TenantPhase.SUSPENDED).update(
        phase=TenantPhase.ACTIVE, suspended_at=None, updated_at=datetime.now(UTC)
    )
    if not won and tenant.phase != TenantPhase.ACTIVE:
        raise Conflict(f"Tenant {name!r} is {tenant.phase.value}, not suspended")
    await actor_cache.invalidate("tenant", tenant.id)
    await _resume_tenant_tasks(tenant.id, SUSPENDED_REASON)
    return await Tenant.get(id=tenant.id)


@audited("tenant.delete")
async def delete_tenant(actor: Actor | None, name: str) -> Tenant:
    """A tombstone: the tenant's tokens stop at once; restorable for 30 days."""
    tenant = await _platform_tenant(actor, name)
    now = datetime.now(UTC)
    await (
        Tenant.filter(id=tenant.id)
        .exclude(phase=TenantPhase.DELETED)
        .update(phase=TenantPhase.DELETED, deleted_at=now, updated_at=now)
    )
    await _pause_tenant_tasks(tenant.id, "tenant_deleted")
    await live_sockets.revoked("tenant", tenant.id)
    return await Tenant.get(id=tenant.id)


@audited("tenant.restore")
async def restore_tenant(actor: Actor | None, name: str) -> Tenant:
    tenant = await _platform_tenant(actor, name)
    if tenant.phase != TenantPhase.DELETED:
        raise Conflict(f"Tenant {name!r} is not deleted")
    cutoff = datetime.now(UTC) - RESTORE_WINDOW
    won = await Tenant.filter(
        id=tenant.id, phase=TenantPhase.DELETED, deleted_at__gt=cutoff
    ).update(phase=TenantPhase.ACTIVE, deleted_at=None, updated_at=datetime.now(UTC))
    if not won:
        raise Conflict(f"Tenant {name!r} was deleted more than 30 days ago and cannot be restored")
    await actor_cache.invalidate("tenant", tenant.id)
    await _resume_tenant_tasks(tenant.id, "tenant_deleted")
    return await Tenant.get(id=tenant.id)


async def purge_deleted_tenants(now: datetime | None = None) -> list[str]:
    """The periodic job: remove tenants deleted more than 30 days ago, with everything
    they own (the audit trail stays). Returns the purged tenants' names."""
    cutoff = (now or datetime.now(UTC)) - RESTORE_WINDOW
    doomed = await Tenant.filter(phase=TenantPhase.DELETED, deleted_at__lte=cutoff)
    purged = []
    for tenant in doomed:
        await Budget.filter(tenant_id=tenant.id).delete()
        await Tenant.filter(id=tenant.id, phase=TenantPhase.DELETED).delete()
        purged.append(tenant.name)
    return purged
