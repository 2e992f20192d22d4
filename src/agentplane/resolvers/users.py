"""User accounts as principals: read, rename, expire, revoke, and tokens acting for them.

Tenant admins see their tenant's members (made in it, or holding a role in it) and
manage only users confined to their tenant (made in it or on the platform, and every
role the user holds is in it), so no tenant admin can rename, expire or revoke a
platform admin or a member of another tenant; such users answer like missing ones.
"""

from datetime import UTC, datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet

from agentplane.core.errors import (
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    Unauthenticated,
    ValidationFailed,
)
from agentplane.models import AccessToken, RoleAssignment, Session, User
from agentplane.resolvers import accounts, actor_cache, roles
from agentplane.resolvers.audit import audited
from agentplane.resolvers.auth import Actor, account_active, user_actor
from agentplane.resolvers.pagination import Page, paginate
from agentplane.resolvers.permissions import Perm, is_platform, require
from agentplane.resolvers.tenants import check_writable
from agentplane.resolvers.tokens import mint_token
from agentplane.subscriptions import live_sockets

TOKEN_TTL = timedelta(days=30)


def _visible(actor: Actor) -> QuerySet[User]:
    """Platform scope: every user; a tenant: its members (see `roles.members`)."""
    return User.all() if is_platform(actor) else roles.members(actor.tenant_id)


async def list_users_page(actor: Actor | None, first: int | None, after: str | None) -> Page[User]:
    actor = require(actor, Perm.USER_READ)
    return await paginate(_visible(actor), first, after)


async def get_user(actor: Actor | None, user_id: str) -> User:
    actor = require(actor, Perm.USER_READ)
    user = await _visible(actor).get_or_none(id=user_id) if len(user_id) <= 40 else None
    if user is None:
        raise NotFound(f"User {user_id!r} not found")
    return user


async def _manageable(actor: Actor, user_id: str) -> User:
    user = await get_user(actor, user_id)
    if not is_platform(actor):
        scopes = await RoleAssignment.filter(user_id=user.id).values_list("tenant_id", flat=True)
        homes = [] if user.home_tenant_id is None else [user.home_tenant_id]
        if any(scope != actor.tenant_id for scope in [*scopes, *homes]):
            raise NotFound(f"User {user_id!r} not found")
    return user


@audited("user.update")
async def update_user(
    actor: Actor | None,
    user_id: str,
    *,
    email: str | None = None,
    display_name: str | None = None,
    not_after: datetime | None = None,
    clear_not_after: bool = False,
) -> User:
    """Rename (email) and set or clear the time after which the account stops working;
    its tokens then expire no later than that."""
    actor = require(actor, Perm.USER_WRITE)
    user = await _manageable(actor, user_id)
    changes: dict[str, object] = {}
    if email is not None:
        changes["email"] = accounts.check_email(email)
    if display_name is not None:
        changes["display_name"] = display_name[:200]
    if not_after is not None:
        if not_after.tzinfo is None:
            raise ValidationFailed("`notAfter` needs a timezone offset", field="notAfter")
        changes["not_after"] = not_after
    elif clear_not_after:
        changes["not_after"] = None
    if changes:
        try:
            await User.filter(id=user.id).update(**changes)
        except IntegrityError:
            raise Conflict(f"A user with email {email!r} already exists", field="email") from None
    if not_after is not None:
        await AccessToken.filter(owner_user_id=user.id, expires_at__isnull=True).update(
            expires_at=not_after
        )
        await AccessToken.filter(owner_user_id=user.id, expires_at__gt=not_after).update(
            expires_at=not_after
        )
    if "not_after" in changes:
        await actor_cache.invalidate("user", user.id)
    return await User.get(id=user.id)


@audited("user.revoke")
async def revoke_user(actor: Actor | None, user_id: str) -> User:
    """Disable an account: its roles are removed, its sessions and tokens end at once."""
    actor = require(actor, Perm.USER_WRITE)
    user = await _manageable(actor, user_id)
    if actor.user_id == user.id:
        raise Conflict("You cannot revoke your own account")
    now = datetime.now(UTC)
    await User.filter(id=user.id).update(disabled=True)
    await RoleAssignment.filter(user_id=user.id).delete()
    sessions = await Session.filter(user_id=user.id, revoked_at__isnull=True).values_list(
        "id", flat=True
    )
    await Session.filter(id__in=list(sessions)).update(revoked_at=now)
    token_ids = await AccessToken.filter(
        owner_user_id=user.id, revoked_at__isnull=True
    ).values_list("id", flat=True)
    await AccessToken.filter(id__in=list(token_ids)).update(revoked_at=now)
    for kind, ids in (("session", sessions), ("token", token_ids)):
        for id_ in ids:
            await live_sockets.revoked(kind, str(id_))
    return await User.get(id=user.id)


@audited("token.create")
async def mint_user_token(
    actor: Actor | None,
    *,
    user_id: str | None,
    name: str,
    expires_at: datetime | None = None,
) -> tuple[AccessToken, str]:
    """A token acting for a user, with the role and scope the user holds now (as a
    device login's). Users mint their own (`user_id` None); user managers mint one for
    a user they manage. It expires after 30 days unless told, never after the user's
    `not_after`."""
    if actor is None:
        raise Unauthenticated("Authentication required")
    if user_id is None or user_id == actor.user_id:
        if actor.user_id is None:
            raise Forbidden("Only a signed-in user has personal tokens; name a principal")
        own = await User.get_or_none(id=actor.user_id)
        if own is None:
            raise Unauthenticated("The signed-in account no longer exists")
        user = own
    else:
        user = await _manageable(require(actor, Perm.USER_WRITE), user_id)
    if not account_active(user):
        raise Conflict("The account is disabled or expired")
    holder = await user_actor(user)
    if not holder.role:
        raise Conflict("The user holds no role")
    if holder.tenant_id is not None:
        await check_writable(holder.tenant_id)
    expires_at = expires_at or datetime.now(UTC) + TOKEN_TTL
    if user.not_after is not None:
        expires_at = min(expires_at, user.not_after)
    return await mint_token(
        tenant_id=holder.tenant_id,
        role=holder.role,
        name=name,
        expires_at=expires_at,
        owner_user_id=user.id,
        created_by=actor.subject,
    )


async def create_principal(
    actor: Actor | None,
    *,
    email: str,
    role: str,
    tenant: str | None,
    display_name: str = "",
    not_after: datetime | None = None,
) -> tuple[User, AccessToken, str]:
    """A user without a password (it signs in with its token, or OIDC) holding `role`,
    and a first token acting for it."""
    user = await roles.create_user(
        actor, email=email, password=None, role=role, tenant=tenant, display_name=display_name
    )
    try:
        if not_after is not None:
            user = await update_user(actor, user.id, not_after=not_after)
        token, plaintext = await mint_user_token(
            actor, user_id=user.id, name="principal token", expires_at=not_after
        )
    except DomainError:
        await User.filter(id=user.id).delete()  # no principal without its token
        raise
    return user, token, plaintext


async def role_assignments(
    actor: Actor | None, user_ids: list[str]
) -> dict[str, list[RoleAssignment]]:
    """Each user's role assignments that the caller may see (a tenant: its own)."""
    actor = require(actor, Perm.USER_READ)
    qs = RoleAssignment.filter(user_id__in=user_ids)
    if not is_platform(actor):
        qs = qs.filter(tenant_id=actor.tenant_id)
    rows = await qs.select_related("tenant").order_by("id")
    found: dict[str, list[RoleAssignment]] = {u: [] for u in user_ids}
    for row in rows:
        found[row.user_id].append(row)
    return found
