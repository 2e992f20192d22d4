from datetime import UTC, datetime

from agentplane.core.errors import Forbidden, NotFound, Unauthenticated, ValidationFailed
from agentplane.models import AccessToken
from agentplane.resolvers.audit import audited
from agentplane.resolvers.auth import Actor, generate_token, hash_token
from agentplane.resolvers.pagination import Page, paginate
from agentplane.resolvers.permissions import (
    ROLE_DEFS,
    ROLES,
    Perm,
    check_tenant,
    is_platform,
    require,
    role_allows_scope,
)
from agentplane.resolvers.tenants import resolve_tenant_name
from agentplane.subscriptions import live_sockets


async def mint_token(
    *,
    tenant_id: str | None,
    role: str,
    name: str,
    expires_at: datetime | None = None,
    owner_user_id: str | None = None,
    created_by: str | None = None,
    owner: str | None = None,
) -> tuple[AccessToken, str]:
    """Create a token row and return it with its plaintext, which is never stored."""
    if role not in ROLES:
        raise ValidationFailed(f"Unknown role {role!r}; one of {sorted(ROLES)}", field="role")
    if not role_allows_scope(role, tenant_id):
        raise ValidationFailed(
            "platform_admin tokens have no tenant; tenant roles need one", field="tenant"
        )
    if expires_at is not None and expires_at.tzinfo is None:
        # Comparing a naive datetime with an aware one raises TypeError (an INTERNAL error).
        raise ValidationFailed(
            "`expiresAt` needs a timezone offset, e.g. 2030-01-01T00:00:00Z", field="expiresAt"
        )
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise ValidationFailed("`expiresAt` must be in the future", field="expiresAt")
    plaintext = generate_token()
    token = await AccessToken.create(
        tenant_id=tenant_id,
        name=name,
        role=role,
        token_hash=hash_token(plaintext),
        prefix=plaintext[:12],
        expires_at=expires_at,
        owner_user_id=owner_user_id,
        created_by=created_by,
        owner=owner,
    )
    return token, plaintext


@audited("token.create")
async def create_access_token(
    actor: Actor | None,
    *,
    name: str,
    tenant: str | None,
    role: str | None,
    expires_at: datetime | None = None,
    owner: str | None = None,
) -> tuple[AccessToken, str]:
    """A service token. Without a `role`, a platform caller naming no tenant gets its own
    role at platform scope (an operator token, as OpenCrane's); others get `viewer`.
    `owner` says whom it is for (free text; the creator when not given)."""
    actor = require(actor, Perm.TOKEN_WRITE)
    if not name.strip():
        raise ValidationFailed("`name` must not be empty", field="name")
    if owner is not None and not 0 < len(owner) <= 200:
        raise ValidationFailed("`owner` must be 1 to 200 characters", field="owner")
    if role is None:
        role = actor.role if tenant is None and is_platform(actor) else "viewer"
    definition = ROLE_DEFS.get(role)
    if definition is None:
        raise ValidationFailed(f"Unknown role {role!r}; one of {sorted(ROLES)}", field="role")
    platform_scoped = definition.scope == "platform" or (
        definition.scope == "any" and tenant is None and actor.tenant_id is None
    )
    if platform_scoped:
        if not (is_platform(actor) and actor.role == "platform_admin"):
            raise Forbidden("Only platform admins may create platform-scoped tokens")
        if tenant is not None:
            raise ValidationFailed("platform_admin tokens have no tenant", field="tenant")
        tenant_id = None
    else:
        tenant_id = await resolve_tenant_name(actor, tenant)
    return await mint_token(
        tenant_id=tenant_id,
        role=role,
        name=name,
        expires_at=expires_at,
        created_by=actor.subject,
        owner=owner or actor.subject,
    )


@audited("token.revoke")
async def revoke_access_token(actor: Actor | None, token_id: str) -> AccessToken:
    """Revoke a token: refused from its next request on (idempotent). Token managers
    (token:write) revoke their tenant's tokens; anyone may revoke a token acting for them."""
    if actor is None:
        raise Unauthenticated("Authentication required")
    token = await AccessToken.get_or_none(id=token_id)
    own = token is not None and actor.user_id is not None and token.owner_user_id == actor.user_id
    if not own:
        actor = require(actor, Perm.TOKEN_WRITE)
        if token is None:
            raise NotFound(f"Access token {token_id!r} not found")
        check_tenant(actor, token.tenant_id, f"Access token {token_id!r}")
    assert token is not None
    await AccessToken.filter(id=token.id, revoked_at__isnull=True).update(
        revoked_at=datetime.now(UTC)
    )
    await live_sockets.revoked("token", token.id)
    return await AccessToken.get(id=token.id)


async def list_personal_tokens(
    actor: Actor | None, first: int | None, after: str | None
) -> Page[AccessToken]:
    """The tokens acting for the signed-in user (personal and device-login tokens),
    newest first, revoked ones included."""
    if actor is None:
        raise Unauthenticated("Authentication required")
    if actor.user_id is None:
        raise Forbidden("Only a signed-in user has personal tokens")
    qs = AccessToken.filter(owner_user_id=actor.user_id)
    return await paginate(qs, first, after, newest_first=True)


async def list_access_tokens(
    actor: Actor | None, first: int | None, after: str | None, include_revoked: bool = True
) -> Page[AccessToken]:
    actor = require(actor, Perm.TOKEN_READ)
    qs = AccessToken.all() if is_platform(actor) else AccessToken.filter(tenant_id=actor.tenant_id)
    if not include_revoked:
        qs = qs.filter(revoked_at__isnull=True)
    return await paginate(qs, first, after)


async def has_any_token() -> bool:
    return await AccessToken.exists()
