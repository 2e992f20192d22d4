"""CLI login by the OAuth 2.0 device authorization grant (RFC 8628).

`start` gives the CLI a secret device code and a short user code; a signed-in user
approves the user code in a browser; the CLI's poll then receives, exactly once, an
access token acting for that user.
"""

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agentplane.core.errors import Conflict, NotFound, Unauthenticated, ValidationFailed
from agentplane.models import DeviceGrant, User
from agentplane.resolvers import audit
from agentplane.resolvers.auth import Actor, hash_token, user_actor
from agentplane.resolvers.tokens import mint_token

GRANT_TTL = timedelta(minutes=10)
POLL_INTERVAL_S = 5
TOKEN_TTL = timedelta(days=30)
# No vowels (no words), no look-alikes; 8 characters = 20^8 ≈ 2.6e10 codes.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"


@dataclass
class Started:
    device_code: str
    user_code: str
    expires_in: int
    interval: int


def _user_code() -> str:
    chars = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
    return f"{chars[:4]}-{chars[4:]}"


def normalise_user_code(code: str) -> str:
    raw = "".join(c for c in code.upper() if c.isalnum())
    if len(raw) != 8 or any(c not in USER_CODE_ALPHABET for c in raw):
        raise ValidationFailed("A user code looks like BCDF-GHJK", field="userCode")
    return f"{raw[:4]}-{raw[4:]}"


async def start() -> Started:
    device_code = secrets.token_urlsafe(32)
    grant = await DeviceGrant.create(
        device_code_hash=hash_token(device_code),
        user_code=_user_code(),
        expires_at=datetime.now(UTC) + GRANT_TTL,
    )
    return Started(device_code, grant.user_code, int(GRANT_TTL.total_seconds()), POLL_INTERVAL_S)


async def pending_grant(user_code: str) -> DeviceGrant:
    grant = await DeviceGrant.get_or_none(user_code=normalise_user_code(user_code))
    if grant is None or grant.expires_at <= datetime.now(UTC):
        raise NotFound("Unknown or expired user code")
    if grant.status != "pending":
        raise Conflict("This code was already used")
    return grant


async def approve(actor: Actor | None, user_code: str) -> DeviceGrant:
    """A signed-in user approves the code shown by their CLI."""
    if actor is None or actor.user_id is None:
        raise Unauthenticated("Sign in in the browser to approve a device")
    grant = await pending_grant(user_code)
    won = await DeviceGrant.filter(
        id=grant.id, status="pending", expires_at__gt=datetime.now(UTC)
    ).update(status="approved", user_id=actor.user_id)
    if not won:
        raise Conflict("This code was already used or has expired")
    await audit.record(actor, "device.approve", resource=grant.id)
    return await DeviceGrant.get(id=grant.id)


@dataclass
class Poll:
    status: str  # "pending" | "expired" | "delivered"
    token: str | None = None


async def poll(device_code: str) -> Poll:
    grant = await DeviceGrant.get_or_none(device_code_hash=hash_token(device_code))
    if grant is None:
        raise NotFound("Unknown device code")
    now = datetime.now(UTC)
    if grant.status == "delivered" or grant.expires_at <= now:
        return Poll("expired")
    if grant.status != "approved" or grant.user_id is None:
        return Poll("pending")
    # Exactly once: of concurrent polls, one moves approved → delivered.
    won = await DeviceGrant.filter(id=grant.id, status="approved").update(status="delivered")
    if not won:
        return Poll("expired")
    user = await User.get(id=grant.user_id)
    actor = await user_actor(user)
    if not actor.role:
        raise Conflict("The approving user holds no role")
    token, plaintext = await mint_token(
        tenant_id=actor.tenant_id,
        role=actor.role,
        name="cli (device login)",
        expires_at=now + TOKEN_TTL,
        owner_user_id=user.id,
        created_by=user.id,
    )
    await audit.record(actor, "token.create", resource=token.id, details={"via": "device"})
    return Poll("delivered", plaintext)
