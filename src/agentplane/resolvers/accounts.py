"""Local accounts and browser sessions: first-owner registration, password login
(argon2id), password change, logout, and listing/revoking sessions."""

import ipaddress
import re
import secrets
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from agentplane.core import throttle
from agentplane.core.errors import Conflict, Forbidden, NotFound, Unauthenticated, ValidationFailed
from agentplane.models import RoleAssignment, Session, User
from agentplane.resolvers import audit
from agentplane.resolvers.auth import Actor, account_active, hash_token, user_actor
from agentplane.resolvers.permissions import Perm, is_platform, require
from agentplane.subscriptions import live_sockets

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when the email is unknown, so a miss costs as long as a hit.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def check_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL_RE.match(email) or len(email) > 320:
        raise ValidationFailed("Invalid email address", field="email")
    return email


def check_password(password: str, field: str = "password") -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValidationFailed(
            f"Password must be {MIN_PASSWORD}-{MAX_PASSWORD} characters", field=field
        )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


async def has_users() -> bool:
    return await User.exists()


async def register_first_owner(
    email: str,
    password: str,
    display_name: str = "",
    *,
    client_ip: str,
    bootstrap: Actor | None = None,
) -> User:
    """On an installation without users: create its owner, a platform admin.

    Until then anyone who reaches the server could claim it, so the claim must come from
    the server's own machine, or carry a platform-admin credential (the token `serve`
    prints on an empty database, or AGENTPLANE_ADMIN_TOKEN) as its bootstrap code.
    """
    email = check_email(email)
    check_password(password)
    if await User.exists():
        raise Conflict("Registration is closed: this installation already has an owner")
    if not _is_loopback(client_ip) and (bootstrap is None or bootstrap.role != "platform_admin"):
        raise Forbidden(
            "Register the first owner from the server's own machine, or send the "
            "platform-admin token printed at first start as `Authorization: Bearer …`"
        )
    try:
        async with in_transaction():
            user = await User.create(
                email=email,
                display_name=display_name[:200],
                password_hash=_hasher.hash(password),
                owner=True,
            )
            await RoleAssignment.create(user_id=user.id, role="platform_admin", tenant_id=None)
    except IntegrityError:
        raise Conflict("Registration is closed: this installation already has an owner") from None
    await audit.record(await user_actor(user), "account.register", resource=user.id)
    return user


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


async def create_session(
    user: User, method: str, ttl: timedelta, user_agent: str = "", ip: str = ""
) -> tuple[Session, str]:
    """A new server-side session; returns it with the cookie's secret (not stored)."""
    secret = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    session = await Session.create(
        user_id=user.id,
        secret_hash=hash_token(secret),
        csrf_token=secrets.token_urlsafe(24),
        method=method,
        user_agent=user_agent[:300],
        ip=ip[:64],
        expires_at=now + ttl,
        last_seen_at=now,
    )
    await User.filter(id=user.id).update(last_login_at=now)
    return session, secret


async def login_password(
    email: str, password: str, ttl: timedelta, user_agent: str = "", ip: str = ""
) -> tuple[Session, str, User]:
    email = email.strip().lower()
    await throttle.check_login(email)
    user = await User.get_or_none(email=email)
    ok = False
    try:
        ok = _hasher.verify(
            user.password_hash if user and user.password_hash else _DUMMY_HASH, password
        )
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None or user.password_hash is None or not account_active(user):
        await throttle.failed_login(email)
        await audit.record(
            None,
            "auth.login",
            resource=email.strip().lower()[:200],
            outcome="failure",
            details={"method": "password", "ip": ip},
        )
        raise Unauthenticated("Wrong email or password")
    if _hasher.check_needs_rehash(user.password_hash):
        await User.filter(id=user.id).update(password_hash=_hasher.hash(password))
    session, secret = await create_session(user, "password", ttl, user_agent, ip)
    await audit.record(
        await user_actor(user, session.id),
        "auth.login",
        resource=user.id,
        details={"method": "password", "ip": ip},
    )
    return session, secret, user


def _user_of(actor: Actor | None) -> str:
    if actor is None:
        raise Unauthenticated("Authentication required")
    if actor.user_id is None:
        raise Forbidden("Only a signed-in user has a password and sessions")
    return actor.user_id


async def change_password(actor: Actor | None, current: str, new: str) -> None:
    """Change the caller's password; every other session of theirs is signed out."""
    user_id = _user_of(actor)
    check_password(new, "newPassword")
    user = await User.get(id=user_id)
    try:
        _hasher.verify(user.password_hash or _DUMMY_HASH, current)
    except (VerificationError, InvalidHashError):
        await audit.record(actor, "account.password_change", resource=user_id, outcome="failure")
        raise Forbidden("Current password is wrong", field="currentPassword") from None
    await User.filter(id=user_id).update(password_hash=_hasher.hash(new))
    others = Session.filter(user_id=user_id, revoked_at__isnull=True)
    if actor is not None and actor.session_id:
        others = others.exclude(id=actor.session_id)
    ended = await others.values_list("id", flat=True)
    await others.update(revoked_at=datetime.now(UTC))
    for session_id in ended:
        await live_sockets.revoked("session", str(session_id))
    await audit.record(actor, "account.password_change", resource=user_id)


async def logout(actor: Actor | None) -> None:
    if actor is None or actor.session_id is None:
        raise Unauthenticated("No session to end")
    await Session.filter(id=actor.session_id).update(revoked_at=datetime.now(UTC))
    await live_sockets.revoked("session", actor.session_id)
    await audit.record(actor, "auth.logout", resource=actor.session_id)


async def list_sessions(actor: Actor | None, user_id: str | None = None) -> list[Session]:
    """The caller's live sessions; platform admins may name another user."""
    if user_id is not None and actor is not None and user_id != actor.user_id:
        require(actor, Perm.USER_READ)
        if not is_platform(actor):
            raise NotFound(f"User {user_id!r} not found")
    else:
        user_id = _user_of(actor)
    return (
        await Session.filter(
            user_id=user_id, revoked_at__isnull=True, expires_at__gt=datetime.now(UTC)
        )
        .order_by("-id")
        .limit(100)
    )


async def revoke_session(actor: Actor | None, session_id: str) -> Session:
    if actor is None:
        raise Unauthenticated("Authentication required")
    session = await Session.get_or_none(id=session_id)
    own = session is not None and session.user_id == actor.user_id
    if session is None or not (own or (is_platform(actor) and actor.role == "platform_admin")):
        raise NotFound(f"Session {session_id!r} not found")
    await Session.filter(id=session.id, revoked_at__isnull=True).update(
        revoked_at=datetime.now(UTC)
    )
    await live_sockets.revoked("session", session.id)
    await audit.record(actor, "session.revoke", resource=session.id)
    return await Session.get(id=session.id)


async def get_user(actor: Actor | None) -> User | None:
    if actor is None or actor.user_id is None:
        return None
    return await User.get_or_none(id=actor.user_id)
