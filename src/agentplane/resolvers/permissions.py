"""Roles and what they may do: the one place permissions are decided.

Roles are data (`role_definition` rows, seeded from `ROLE_DEFINITIONS` at start-up);
every resolver asks `require(actor, perm)` and, for an object of a tenant,
`check_tenant(actor, tenant_id)`. A denial is an audit record.
"""

import contextvars
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from tortoise.models import Model
from tortoise.queryset import QuerySet

from agentplane.core import ids
from agentplane.core.errors import Forbidden, NotFound, TenantSuspended, Unauthenticated
from agentplane.models import Tenant
from agentplane.resolvers.auth import Actor


class Perm(StrEnum):
    TENANT_READ = "tenant:read"
    TENANT_WRITE = "tenant:write"  # create/update/suspend/delete tenants: platform scope only
    TOKEN_READ = "token:read"
    TOKEN_WRITE = "token:write"
    AGENT_READ = "agent:read"
    AGENT_WRITE = "agent:write"
    TASK_READ = "task:read"
    TASK_WRITE = "task:write"  # submit, cancel, resume
    AUDIT_READ = "audit:read"
    BUDGET_READ = "budget:read"
    BUDGET_WRITE = "budget:write"
    USAGE_READ = "usage:read"
    PROVIDER_KEY_READ = "provider_key:read"
    PROVIDER_KEY_WRITE = "provider_key:write"
    USER_READ = "user:read"
    USER_WRITE = "user:write"  # role assignments
    KNOWLEDGE_READ = "knowledge:read"  # knowledge bases, documents, memories
    KNOWLEDGE_WRITE = "knowledge:write"
    TOOL_READ = "tool:read"  # the tool registry: HTTP tools, MCP servers and their tools
    TOOL_WRITE = "tool:write"
    APPROVAL_DECIDE = "approval:decide"  # approve or reject a tool call held for approval


# What a suspended tenant may no longer do (its callers keep every read).
WRITE_PERMS = frozenset(
    {
        Perm.TOKEN_WRITE,
        Perm.AGENT_WRITE,
        Perm.TASK_WRITE,
        Perm.BUDGET_WRITE,
        Perm.PROVIDER_KEY_WRITE,
        Perm.USER_WRITE,
        Perm.KNOWLEDGE_WRITE,
        Perm.TOOL_WRITE,
        Perm.APPROVAL_DECIDE,
    }
)


@dataclass(frozen=True)
class RoleDef:
    name: str
    description: str
    permissions: frozenset[Perm]
    scope: str  # "platform" | "tenant" | "any": where it may be assigned


_BILLING_READ = {Perm.BUDGET_READ, Perm.USAGE_READ}
_READ = {
    Perm.TENANT_READ,
    Perm.AGENT_READ,
    Perm.TASK_READ,
    Perm.BUDGET_READ,
    Perm.USAGE_READ,
    Perm.KNOWLEDGE_READ,
    Perm.TOOL_READ,
}
ROLE_DEFINITIONS: tuple[RoleDef, ...] = (
    RoleDef("platform_admin", "Everything, in every tenant", frozenset(Perm), "platform"),
    RoleDef(
        "tenant_admin",
        "Everything in its tenant: agents, tasks, tokens, members, budgets, keys, audit",
        frozenset(set(Perm) - {Perm.TENANT_WRITE}),
        "tenant",
    ),
    RoleDef(
        "operator",
        "Runs the tenant's agents: agents, tasks and their approvals; reads budgets and usage",
        frozenset(
            _READ | {Perm.AGENT_WRITE, Perm.TASK_WRITE, Perm.KNOWLEDGE_WRITE, Perm.APPROVAL_DECIDE}
        ),
        "tenant",
    ),
    RoleDef(
        "viewer", "Reads the tenant's agents, tasks, budgets and usage", frozenset(_READ), "tenant"
    ),
    RoleDef(
        "billing",
        "Budgets, usage and the audit trail; no agents or tasks",
        frozenset(
            {
                Perm.TENANT_READ,
                Perm.BUDGET_READ,
                Perm.BUDGET_WRITE,
                Perm.USAGE_READ,
                Perm.AUDIT_READ,
            }
        ),
        "any",
    ),
)
ROLE_DEFS: dict[str, RoleDef] = {r.name: r for r in ROLE_DEFINITIONS}
ROLES: dict[str, frozenset[Perm]] = {r.name: r.permissions for r in ROLE_DEFINITIONS}

# Set while an audited mutation runs: its own record then carries the denial.
in_audited_call: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "agentplane_in_audited_call", default=False
)


def role_allows_scope(role: str, tenant_id: str | None) -> bool:
    definition = ROLE_DEFS.get(role)
    if definition is None:
        return False
    if definition.scope == "platform":
        return tenant_id is None
    if definition.scope == "tenant":
        return tenant_id is not None
    return True


def capped_role(role: str, tenant_id: str | None, held: list[str]) -> str:
    """`role`, lowered to the most a holder of the `held` roles may do at that scope:
    `role` when one held role covers it, else the widest held role it covers, else ""."""
    wanted = ROLES.get(role, frozenset())
    if any(wanted <= ROLES.get(h, frozenset()) for h in held):
        return role
    lower = [h for h in held if ROLES.get(h, wanted) < wanted and role_allows_scope(h, tenant_id)]
    return max(lower, key=lambda h: len(ROLES[h]), default="")


def require(actor: Actor | None, perm: Perm) -> Actor:
    """The actor, if it holds `perm`; raises Unauthenticated, Forbidden or TenantSuspended."""
    if actor is None:
        raise Unauthenticated("Authentication required: send 'Authorization: Bearer <token>'")
    if perm not in ROLES.get(actor.role, frozenset()):
        _audit_denied(actor, perm)
        raise Forbidden(f"Role {actor.role or '(none)'!r} may not {perm.value}")
    if perm in WRITE_PERMS and actor.tenant_phase == "suspended":
        raise TenantSuspended("Tenant is suspended: reads work, writes and new tasks do not")
    return actor


def is_platform(actor: Actor) -> bool:
    """Platform scope: the caller sees every tenant (within what its role allows)."""
    return actor.tenant_id is None and actor.role in ROLES


def check_tenant(actor: Actor, tenant_id: str | None, what: str = "Object") -> None:
    """A foreign tenant's object answers exactly like a missing one."""
    if not is_platform(actor) and actor.tenant_id != tenant_id:
        raise NotFound(f"{what} not found")


_recent_denials: "OrderedDict[tuple[str, str, str], None]" = OrderedDict()


def _audit_denied(actor: Actor, perm: Perm) -> None:
    if in_audited_call.get():
        return
    from agentplane.core.request_context import request_id
    from agentplane.resolvers import audit  # late: audit imports this module

    rid = request_id()
    if rid is not None:  # one record per request, however often a plan asks
        key = (rid, actor.subject, perm.value)
        if key in _recent_denials:
            return
        _recent_denials[key] = None
        if len(_recent_denials) > 4096:
            _recent_denials.popitem(last=False)

    audit.record_soon(actor, "permission.denied", resource=perm.value, outcome="denied")


M = TypeVar("M", bound=Model)


async def scoped_to_tenant(actor: Actor, qs: QuerySet[M], tenant: str | None) -> QuerySet[M]:
    """The tenant filter of tenant-owned lists: the named tenant when the caller may see it
    (another tenant answers like a missing one), else the caller's own; platform callers
    see every tenant unless they name one."""
    if tenant is not None:
        row = await Tenant.get_or_none(name=tenant)
        if row is None or not (is_platform(actor) or row.id == actor.tenant_id):
            raise NotFound(f"Tenant {tenant!r} not found")
        return qs.filter(tenant_id=row.id)
    return qs if is_platform(actor) else qs.filter(tenant_id=actor.tenant_id)


async def get_owned(actor: Actor, model: type[M], id_: str, what: str) -> M:
    """The row of a tenant-owned `model` by ID, answering NOT_FOUND when it is missing,
    another tenant's, or longer than any ID (the ORM refuses to compare those)."""
    row = await model.get_or_none(id=id_) if len(id_) <= ids.MAX_LEN else None
    if row is None:
        raise NotFound(f"{what} {id_!r} not found")
    check_tenant(
        actor,
        row.tenant_id,  # type: ignore[attr-defined]
        f"{what} {id_!r}",
    )
    return row
