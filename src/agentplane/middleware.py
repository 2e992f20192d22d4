"""ASGI middleware: the per-actor rate limit (request ids: observability.RequestObservability).

The limit is one bucket per caller (bearer token or session cookie; the client
address for anonymous calls) shared by GraphQL and REST, and by every process
when Redis is configured: the `limits` library keeps the counters.
"""

import contextvars
import hashlib
import logging
import math
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentplane.auth import SESSION_COOKIE, Actor
from agentplane.errors import RateLimited
from agentplane.schema.cost import QueryCost, RateLimitStatus

log = logging.getLogger(__name__)
# This request's bucket after it was counted: (limit, remaining, reset epoch seconds).
current_bucket: contextvars.ContextVar[tuple[int, int, float] | None] = contextvars.ContextVar(
    "agentplane_rate_limit_bucket", default=None
)
LIMITED_PREFIXES = ("/graphql", "/api/", "/v1/")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _cookie(scope: Scope, name: str) -> str | None:
    raw = _header(scope, b"cookie")
    if not raw:
        return None
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def actor_key(scope: Scope) -> str:
    """The bucket: a hash of the credential (never the credential itself)."""
    credential = _header(scope, b"authorization") or _cookie(scope, SESSION_COOKIE)
    if credential:
        return "c:" + hashlib.sha256(credential.encode()).hexdigest()[:32]
    client = scope.get("client")
    return "ip:" + (client[0] if client else "unknown")


def make_storage(redis_url: str | None) -> Storage:
    if redis_url:
        storage = storage_from_string(
            "async+" + redis_url, implementation="redispy", key_prefix="agentplane-rl"
        )
        assert isinstance(storage, Storage)
        return storage
    return MemoryStorage()


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, per_minute: int, redis_url: str | None) -> None:
        self.app = app
        self.item = RateLimitItemPerMinute(max(per_minute, 1))
        self.limiter = FixedWindowRateLimiter(make_storage(redis_url))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(LIMITED_PREFIXES):
            await self.app(scope, receive, send)
            return
        key = actor_key(scope)
        try:
            allowed = await self.limiter.hit(self.item, key)
            stats = await self.limiter.get_window_stats(self.item, key)
            remaining, reset_at = stats.remaining, stats.reset_time
        except Exception:  # the limiter's store is down: serve rather than refuse everyone
            log.exception("rate limiter unavailable; not limiting")
            await self.app(scope, receive, send)
            return
        current_bucket.set((self.item.amount, max(remaining, 0), reset_at))
        headers = [
            (b"x-ratelimit-limit", str(self.item.amount).encode()),
            (b"x-ratelimit-remaining", str(max(remaining, 0)).encode()),
            (b"x-ratelimit-reset", str(math.ceil(reset_at)).encode()),
        ]
        if not allowed:
            retry_after = max(1, math.ceil(reset_at - time.time()))
            await _too_many(scope, send, headers, retry_after)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                if b"x-ratelimit-limit" not in present:  # a handler's own limit wins
                    message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _dialect_body(path: str, message: str) -> bytes | None:
    """A REST dialect's own 429 envelope for its paths."""
    from agentplane.rest_compat import _dialect_for  # late: rest_compat imports the app's pieces

    dialect = _dialect_for(path)
    if dialect is None:
        return None
    return bytes(dialect.render(RateLimited(message), 429).body)


async def _too_many(
    scope: Scope, send: Send, headers: list[tuple[bytes, bytes]], retry_after: int
) -> None:
    message = f"Rate limit exceeded: retry in {retry_after}s"
    path = scope.get("path", "")
    if path.startswith("/graphql"):
        body: Any = {
            "data": None,
            "errors": [{"message": message, "extensions": {"code": "RATE_LIMITED"}}],
        }
        payload = orjson.dumps(body)
    else:
        payload = _dialect_body(path, message) or orjson.dumps(
            {"code": "RATE_LIMITED", "message": message, "retryable": True}
        )
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                *headers,
                (b"retry-after", str(retry_after).encode()),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def report_bucket(actor: Actor | None, cost: QueryCost) -> RateLimitStatus:
    """GraphQL's `rateLimit`: the query's cost, and the caller's request bucket as counted
    by the middleware (the bucket counts requests; `cost` is reported, not charged)."""
    bucket = current_bucket.get()
    if bucket is None:
        return RateLimitStatus(cost=cost.cost, node_count=cost.node_count)
    limit, remaining, reset_at = bucket
    return RateLimitStatus(
        cost=cost.cost,
        node_count=cost.node_count,
        limit=limit,
        used=limit - remaining,
        remaining=remaining,
        reset_at=datetime.fromtimestamp(reset_at, UTC),
    )
