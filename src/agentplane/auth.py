"""Who is calling: bearer tokens to an `Actor`."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agentplane.errors import Unauthenticated
from agentplane.models import AccessToken, Tenant, TenantPhase

TOKEN_PREFIX = "agp_"  # recognisable by secret scanners and by humans
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Actor:
    kind: str  # "token" | "admin_token" (the configured break-glass token)
    role: str
    tenant_id: str | None  # None = platform scope
    token_id: str | None = None

    @property
    def subject(self) -> str:
        return self.token_id or self.kind


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
    # Record use at most once a minute: a write on every request would cost more than the request.
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        await AccessToken.filter(id=token.id).update(last_used_at=now)
    return Actor(kind="token", role=token.role, tenant_id=token.tenant_id, token_id=token.id)
