"""Roles and what they may do: the one place permissions are decided."""

from enum import StrEnum

from agentplane.auth import Actor
from agentplane.errors import Forbidden, NotFound, Unauthenticated


class Perm(StrEnum):
    TENANT_READ = "tenant:read"
    TENANT_WRITE = "tenant:write"  # create/update tenants: platform scope only
    TOKEN_READ = "token:read"
    TOKEN_WRITE = "token:write"
    AGENT_READ = "agent:read"
    AGENT_WRITE = "agent:write"
    TASK_READ = "task:read"
    TASK_WRITE = "task:write"  # submit, cancel


_READ = {Perm.TENANT_READ, Perm.AGENT_READ, Perm.TASK_READ}
ROLES: dict[str, frozenset[Perm]] = {
    "platform_admin": frozenset(Perm),
    "tenant_admin": frozenset(set(Perm) - {Perm.TENANT_WRITE}),
    "operator": frozenset(_READ | {Perm.AGENT_WRITE, Perm.TASK_WRITE}),
    "viewer": frozenset(_READ),
}


def require(actor: Actor | None, perm: Perm) -> Actor:
    """The actor, if it holds `perm`; raises Unauthenticated or Forbidden otherwise."""
    if actor is None:
        raise Unauthenticated("Authentication required: send 'Authorization: Bearer <token>'")
    if perm not in ROLES.get(actor.role, frozenset()):
        raise Forbidden(f"Role {actor.role!r} may not {perm.value}")
    return actor


def is_platform(actor: Actor) -> bool:
    return actor.role == "platform_admin" and actor.tenant_id is None


def check_tenant(actor: Actor, tenant_id: str, what: str = "Object") -> None:
    """A foreign tenant's object answers exactly like a missing one."""
    if not is_platform(actor) and actor.tenant_id != tenant_id:
        raise NotFound(f"{what} not found")
