"""Who is calling: bearer tokens and session cookies to an `Actor`."""

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.expressions import Q

from agentplane.core.errors import CsrfRejected, DomainError, Unauthenticated
from agentplane.models import AccessToken, RoleAssignment, Session, Tenant, TenantPhase, User
from agentplane.resolvers import actor_cache

TOKEN_PREFIX = "agp_"  # recognisable by secret scanners and by humans
LAST_USED_RESOLUTION = timedelta(minutes=1)
SESSION_COOKIE = "agentplane_session"
KODA_SESSION_COOKIE = "koda_operator_session"  # the same sessions, set by Koda's login
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Actor:
    kind: str  # "token" | "admin_token" (the configured break-glass token) | "user" (session)
    role: str
    tenant_id: str | None  # None = platform scope
    token_id: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    tenant_phase: str | None = None  # the phase of `tenant_id` when the request started

    @property
    def subject(self) -> str:
        """The account that acts: the user (also behind a user's token), else the token."""
        return self.user_id or self.token_id or self.kind


def generate_token() -> str:
    """A new plaintext token: 256 random bits behind a recognisable prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def bearer_from_header(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise Unauthenticated("Authorization header must be 'Bearer <token>'")
    return credentials.strip()


def _header(scope: Mapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _cookie(scope: Mapping[str, Any], name: str) -> str | None:
    raw = _header(scope, b"cookie")
    if not raw:
        return None
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def credential_key(scope: Mapping[str, Any], credential: str | None = None) -> str:
    """What limits count by, from an ASGI scope: a hash of the credential (never the
    credential itself), `credential` when it came another way (a websocket's
    `connection_init`); the client's address for anonymous callers."""
    credential = (
        credential
        or _header(scope, b"authorization")
        or _cookie(scope, SESSION_COOKIE)
        or _cookie(scope, KODA_SESSION_COOKIE)
    )
    if credential:
        return "c:" + hashlib.sha256(credential.encode()).hexdigest()[:32]
    client = scope.get("client")
    return "ip:" + (client[0] if client else "unknown")


async def authenticate(plaintext: str | None, admin_token: str | None) -> Actor | None:
    """The Actor a bearer token names; None when no token was given.

    An unknown, revoked or expired token raises Unauthenticated rather than
    silently degrading to anonymous.
    """
    if plaintext is None:
        return None
    if admin_token and hmac.compare_digest(plaintext.encode(), admin_token.encode()):
        return Actor(kind="admin_token", role="platform_admin", tenant_id=None)
    digest = hash_token(plaintext)
    cached = await actor_cache.lookup(digest)
    if cached is not None:
        return cached
    generation = await actor_cache.generation()  # before reading: see actor_cache
    token = await AccessToken.get_or_none(token_hash=digest).select_related("tenant")
    # The index lookup finds the row; compare_digest keeps the final check constant-time.
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        raise Unauthenticated("Invalid access token")
    now = datetime.now(UTC)
    if token.revoked_at is not None or (token.expires_at and token.expires_at <= now):
        raise Unauthenticated("Access token revoked or expired")
    tenant: Tenant | None = token.tenant
    if tenant is not None and tenant.phase == TenantPhase.DELETED:
        raise Unauthenticated("Tenant deleted")
    role, expires_at = token.role, token.expires_at
    if token.owner_user_id is not None:
        role, not_after = await _role_for_user_token(token, now)
        if not_after is not None and (expires_at is None or not_after < expires_at):
            expires_at = not_after
    # Record use at most once a minute: a write on every request would cost more than the request.
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        await AccessToken.filter(id=token.id).update(last_used_at=now)
    actor = Actor(
        kind="token",
        role=role,
        tenant_id=token.tenant_id,
        token_id=token.id,
        user_id=token.owner_user_id,
        tenant_phase=tenant.phase.value if tenant is not None else None,
    )
    actor_cache.store(digest, actor, expires_at, generation)
    return actor


async def _role_for_user_token(token: AccessToken, now: datetime) -> tuple[str, datetime | None]:
    """The role a token acting for a user may use now: never more than the user holds
    today at the token's scope, so lowering or removing a role reaches every existing
    token at once ("" when nothing is left: every permission is then denied); and the
    user's `not_after`."""
    from agentplane.resolvers.permissions import capped_role  # late: it imports this module

    user = await User.get_or_none(id=token.owner_user_id)
    if user is None or not account_active(user, now):
        raise Unauthenticated("The account this token acts for is disabled or expired")
    # A platform-scope role holds in every tenant too.
    held = await RoleAssignment.filter(
        Q(tenant_id=token.tenant_id) | Q(tenant_id=None), user_id=user.id
    ).values_list("role", flat=True)
    return capped_role(token.role, token.tenant_id, [str(r) for r in held]), user.not_after


async def user_actor(user: User, session_id: str | None = None) -> Actor:
    """A user's Actor: their platform-scope role if they have one, else their first tenant's."""
    assignments = (
        await RoleAssignment.filter(user_id=user.id).select_related("tenant").order_by("id")
    )
    live = [a for a in assignments if a.tenant is None or a.tenant.phase != TenantPhase.DELETED]
    chosen = next((a for a in live if a.tenant_id is None), live[0] if live else None)
    if chosen is None:
        return Actor(kind="user", role="", tenant_id=None, user_id=user.id, session_id=session_id)
    return Actor(
        kind="user",
        role=chosen.role,
        tenant_id=chosen.tenant_id,
        user_id=user.id,
        session_id=session_id,
        tenant_phase=chosen.tenant.phase.value if chosen.tenant is not None else None,
    )


def account_active(user: User, now: datetime | None = None) -> bool:
    """Not disabled, and not past its `not_after`."""
    now = now or datetime.now(UTC)
    return not user.disabled and (user.not_after is None or user.not_after > now)


async def session_from_cookie(cookie: str | None) -> Session | None:
    """The live session a cookie names, or None (missing, unknown, revoked, expired)."""
    if not cookie:
        return None
    session = await Session.get_or_none(secret_hash=hash_token(cookie)).select_related("user")
    if session is None or session.revoked_at is not None:
        return None
    now = datetime.now(UTC)
    if session.expires_at <= now or not account_active(session.user, now):
        return None
    if session.last_seen_at is None or now - session.last_seen_at > LAST_USED_RESOLUTION:
        await Session.filter(id=session.id).update(last_seen_at=now)
    return session


async def authenticate_request(
    method: str,
    headers: Mapping[str, str],
    cookies: Mapping[str, str],
    admin_token: str | None,
    *,
    csrf_exempt: bool = False,
    session_cookies: tuple[str, ...] = (SESSION_COOKIE,),
    session_bearer: bool = False,
) -> Actor | None:
    """The caller of an HTTP request: a bearer token wins; else a session cookie.

    Cookies are sent by browsers on cross-site requests too, so a cookie-authenticated
    request that may change state (any non-GET) must echo the session's CSRF token in
    `X-CSRF-Token`; a bearer credential cannot be sent cross-site, so it needs none.
    With `session_bearer`, a bearer that is not an access token may be a session's
    secret (Koda's dashboard forwards its session that way).
    """
    bearer = bearer_from_header(headers.get("authorization"))
    if bearer is not None:
        if session_bearer and not _is_token(bearer, admin_token):
            session = await session_from_cookie(bearer)
            if session is None:
                raise Unauthenticated("Invalid access token or session")
            return await user_actor(session.user, session.id)
        return await authenticate(bearer, admin_token)
    for name in session_cookies:
        session = await session_from_cookie(cookies.get(name))
        if session is not None:
            break
    else:
        return None
    if method.upper() not in SAFE_METHODS and not csrf_exempt:
        sent = headers.get(CSRF_HEADER) or ""
        if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
            raise CsrfRejected("Missing or wrong X-CSRF-Token for a cookie-authenticated request")
    return await user_actor(session.user, session.id)


async def credential_or_none(token: str | None, admin_token: str | None) -> Actor | None:
    """Who `token` (e.g. a bootstrap code) authenticates as, or None if it does not."""
    if not token:
        return None
    try:
        return await authenticate(token, admin_token)
    except DomainError:
        return None


def _is_token(bearer: str, admin_token: str | None) -> bool:
    """An access token (or the break-glass token), as opposed to a session secret."""
    if admin_token and hmac.compare_digest(bearer.encode(), admin_token.encode()):
        return True
    return bearer.startswith(TOKEN_PREFIX)
