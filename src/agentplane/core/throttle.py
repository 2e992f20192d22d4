"""Throttles beyond the per-caller request limit: failed sign-ins per account, so a
password cannot be guessed from many addresses. Counters live where the request
limits do (Redis when configured, else this process's memory)."""

import logging

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string

from agentplane.core.errors import RateLimited

log = logging.getLogger(__name__)
FAILED_LOGINS = RateLimitItemPerMinute(10, 15)  # 10 failures per account per 15 minutes


def make_storage(redis_url: str | None) -> Storage:
    """Counters in Redis when configured (shared by every process), else in memory."""
    if redis_url:
        storage = storage_from_string(
            "async+" + redis_url, implementation="redispy", key_prefix="agentplane-rl"
        )
        assert isinstance(storage, Storage)
        return storage
    return MemoryStorage()


_limiter = FixedWindowRateLimiter(make_storage(None))


def configure(redis_url: str | None) -> None:
    global _limiter
    _limiter = FixedWindowRateLimiter(make_storage(redis_url))


async def check_login(email: str) -> None:
    try:
        allowed = await _limiter.test(FAILED_LOGINS, "login", email)
    except Exception:  # the counter store is down: do not lock everybody out
        log.exception("login throttle unavailable")
        return
    if not allowed:
        raise RateLimited("Too many failed sign-ins for this account; try again later")


async def failed_login(email: str) -> None:
    try:
        await _limiter.hit(FAILED_LOGINS, "login", email)
    except Exception:
        log.exception("login throttle unavailable")
