"""Role definitions (data) and role assignments of users at a scope."""

from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from agentplane.core.errors import Conflict, DomainError, Forbidden, NotFound, ValidationFailed
from agentplane.models import RoleAssignment, RoleDefinition, Tenant, TenantPhase, User
from agentplane.resolvers import actor_cache
from agentplane.resolvers.audit import audited
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.pagination import Page, paginate
from agentplane.resolvers.permissions import (
    ROLE_DEFINITIONS,
    ROLE_DEFS,
    Perm,
    check_tenant,
    is_platform,
    require,
    role_allows_scope,
)
from agentplane.subscriptions import live_sockets


async def seed_roles() -> None:
    """Make the role table match the built-in definitions (idempotent, at start-up)."""
    for role in ROLE_DEFINITIONS:
        values: dict[str, Any] = {
            "description": role.description,
            "permissions": sorted(p.value for p in role.permissions),
            "scope": role.scope,
            "builtin": True,
        }
        updated = await RoleDefinition.filter(name=role.name).update(**values)
        if not updated:
            try:
                await RoleDefinition.create(name=role.name, **values)
            except IntegrityError:  # another process seeded it meanwhile
                pass


async def list_roles(actor: Actor | None) -> list[RoleDefinition]:
    if actor is None:
        require(actor, Perm.TENANT_READ)
    return await RoleDefinition.all().order_by("name")


async def get_role(actor: Actor | None, name: str) -> RoleDefinition:
    if actor is None:
        require(actor, Perm.TENANT_READ)
    role = await RoleDefinition.get_or_none(name=name) if len(name) <= 32 else None
    if role is None:
        raise NotFound(f"Role {name!r} not found")
    return role


def _assignments(actor: Actor, user_id: str | None) -> QuerySet[RoleAssignment]:
    qs = (
        RoleAssignment.all()
        if is_platform(actor)
        else RoleAssignment.filter(tenant_id=actor.tenant_id)
    )
    return qs if user_id is None else qs.filter(user_id=user_id)


async def list_assignments(actor: Actor | None, user_id: str | None = None) -> list[RoleAssignment]:
    actor = require(actor, Perm.USER_READ)
    return await _assignments(actor, user_id).order_by("id")


async def list_assignments_page(
    actor: Actor | None, first: int | None, after: str | None, user_id: str | None = None
) -> Page[RoleAssignment]:
    actor = require(actor, Perm.USER_READ)
    return await paginate(_assignments(actor, user_id).select_related("tenant"), first, after)


async def get_assignment(actor: Actor | None, assignment_id: str) -> RoleAssignment:
    actor = require(actor, Perm.USER_READ)
    found = (
        await _assignments(actor, None).select_related("tenant").get_or_none(id=assignment_id)
        if len(assignment_id) <= 40
        else None
    )
    if found is None:
        raise NotFound(f"Role assignment {assignment_id!r} not found")
    return found


@audited("role.assign")
async def assign_role(
    actor: Actor | None,
    user_id: str,
    *,
    role: str,
    tenant: str | None = None,
    platform: bool = False,
) -> RoleAssignment:
    """Give a user a role in a tenant (or, for platform admins, at platform scope, which
    `platform` asks for explicitly); replaces the user's previous role at that scope."""
    actor = require(actor, Perm.USER_WRITE)
    if platform and (tenant is not None or not is_platform(actor)):
        raise Forbidden("Only platform callers grant roles at platform scope")
    if role not in ROLE_DEFS:
        raise ValidationFailed(f"Unknown role {role!r}; one of {sorted(ROLE_DEFS)}", field="role")
    user = await User.get_or_none(id=user_id)
    if user is None:
        raise NotFound(f"User {user_id!r} not found")
    tenant_id: str | None
    if tenant is None and is_platform(actor):
        tenant_id = None
    else:
        name = tenant
        row = await (
            Tenant.get_or_none(name=name) if name else Tenant.get_or_none(id=actor.tenant_id)
        )
        if row is None or row.phase == TenantPhase.DELETED:
            raise NotFound(f"Tenant {tenant!r} not found")
        check_tenant(actor, row.id, f"Tenant {tenant!r}")
        tenant_id = row.id
    if not role_allows_scope(role, tenant_id):
        raise ValidationFailed(
            f"Role {role!r} cannot be held "
            + ("at platform scope" if tenant_id is None else "in a tenant"),
            field="role",
        )
    if tenant_id is None and actor.role != "platform_admin":
        raise ValidationFailed("Only platform admins grant platform-scope roles", field="tenant")
    existing = await RoleAssignment.get_or_none(user_id=user.id, tenant_id=tenant_id)
    if existing is not None:
        await RoleAssignment.filter(id=existing.id).update(role=role)
        if existing.role != role:  # open websockets reconnect with the new role
            await live_sockets.revoked("user", user.id, "role changed")
        return await RoleAssignment.get(id=existing.id)
    try:
        created = await RoleAssignment.create(user_id=user.id, tenant_id=tenant_id, role=role)
    except IntegrityError:
        raise Conflict("The user's role at that scope changed meanwhile; retry") from None
    await actor_cache.invalidate("user", user.id)  # the user's tokens may use more now
    return created


@audited("role.unassign")
async def unassign_role(actor: Actor | None, assignment_id: str) -> RoleAssignment:
    actor = require(actor, Perm.USER_WRITE)
    assignment = await RoleAssignment.get_or_none(id=assignment_id)
    if assignment is None:
        raise NotFound(f"Role assignment {assignment_id!r} not found")
    check_tenant(actor, assignment.tenant_id, f"Role assignment {assignment_id!r}")
    await RoleAssignment.filter(id=assignment.id).delete()
    await live_sockets.revoked("user", assignment.user_id, "role changed")
    return assignment


@audited("user.create")
async def create_user(
    actor: Actor | None,
    *,
    email: str,
    password: str | None,
    role: str,
    tenant: str | None = None,
    display_name: str = "",
) -> User:
    """Create a local account (password sign-in; or OIDC-only without one) holding `role`
    in a tenant; platform admins may also grant platform-scope roles."""
    from agentplane.resolvers import accounts  # late: accounts imports auth helpers

    actor = require(actor, Perm.USER_WRITE)
    email = accounts.check_email(email)
    if password is not None:
        accounts.check_password(password)
    if role not in ROLE_DEFS:
        raise ValidationFailed(f"Unknown role {role!r}; one of {sorted(ROLE_DEFS)}", field="role")
    try:
        user = await User.create(
            email=email,
            display_name=display_name[:200],
            password_hash=accounts.hash_password(password) if password is not None else None,
        )
    except IntegrityError:
        raise Conflict(f"A user with email {email!r} already exists", field="email") from None
    try:
        assignment = await assign_role(actor, user.id, role=role, tenant=tenant)
    except DomainError:
        await User.filter(id=user.id).delete()  # no user without the role it was made for
        raise
    await User.filter(id=user.id).update(home_tenant_id=assignment.tenant_id)
    return await User.get(id=user.id)


async def list_users(actor: Actor | None) -> list[User]:
    """Platform scope: every user; a tenant: its members."""
    actor = require(actor, Perm.USER_READ)
    if is_platform(actor):
        return await User.all().order_by("id").limit(1000)
    return await members(actor.tenant_id).order_by("id")


def members(tenant_id: str | None) -> QuerySet[User]:
    """A tenant's users: those made in it and those holding a role in it."""
    return User.filter(Q(home_tenant_id=tenant_id) | Q(assignments__tenant_id=tenant_id)).distinct()
