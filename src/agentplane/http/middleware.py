"""ASGI middleware: the per-actor rate limit (request ids: http.observability).

The limit is one bucket per caller (bearer token or session cookie; the client
address for anonymous calls) shared by GraphQL and REST, and by every process
when Redis is configured: the `limits` library keeps the counters.
"""

import contextvars
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.strategies import FixedWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentplane.core.errors import RateLimited
from agentplane.core.throttle import make_storage
from agentplane.resolvers.auth import Actor, credential_key
from agentplane.schema.cost import QueryCost, RateLimitStatus

log = logging.getLogger(__name__)


@dataclass
class Bucket:
    """This request's bucket after it was counted; GraphQL charges its query cost to it."""

    limiter: FixedWindowRateLimiter
    item: RateLimitItem
    key: str
    remaining: int
    reset_at: float  # epoch seconds

    @property
    def limit(self) -> int:
        return int(self.item.amount)

    async def charge(self, units: int) -> bool:
        """Take `units` more from the bucket; False (taking nothing) when that passes the
        limit. Testing first keeps a refused query from draining the window; two racing
        queries may both pass the test, which a rate limit (unlike a budget) can tolerate."""
        allowed = await self.limiter.test(self.item, self.key, cost=units) and (
            await self.limiter.hit(self.item, self.key, cost=units)
        )
        stats = await self.limiter.get_window_stats(self.item, self.key)
        self.remaining, self.reset_at = max(stats.remaining, 0), stats.reset_time
        return bool(allowed)


current_bucket: contextvars.ContextVar[Bucket | None] = contextvars.ContextVar(
    "agentplane_rate_limit_bucket", default=None
)
# Set by the HTTP fast path when it charged a query's cost and then handed the request
# to the general path: the cost is not charged twice.
precharged: contextvars.ContextVar[RateLimitStatus | None] = contextvars.ContextVar(
    "agentplane_precharged", default=None
)
LIMITED_PREFIXES = ("/graphql", "/api/", "/v1/")


class Buckets:
    """The per-caller buckets, one window per minute: HTTP requests, websocket
    connections and websocket operations all take from the same one."""

    def __init__(self, per_minute: int, redis_url: str | None) -> None:
        self.item = RateLimitItemPerMinute(max(per_minute, 1))
        self.limiter = FixedWindowRateLimiter(make_storage(redis_url))

    async def take(self, key: str) -> tuple[Bucket, bool]:
        """Count one against `key`: its bucket after, and whether it was within the limit.
        Raises when the counter store is down (callers then serve rather than refuse)."""
        allowed = await self.limiter.hit(self.item, key)
        stats = await self.limiter.get_window_stats(self.item, key)
        bucket = Bucket(self.limiter, self.item, key, max(stats.remaining, 0), stats.reset_time)
        return bucket, bool(allowed)


def seconds_to_reset(bucket: Bucket) -> int:
    return max(1, math.ceil(bucket.reset_at - time.time()))


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, buckets: Buckets) -> None:
        self.app = app
        self.buckets = buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(LIMITED_PREFIXES):
            await self.app(scope, receive, send)  # websockets: counted in http.ws_limits
            return
        try:
            bucket, allowed = await self.buckets.take(credential_key(scope))
        except Exception:  # the limiter's store is down: serve rather than refuse everyone
            log.exception("rate limiter unavailable; not limiting")
            await self.app(scope, receive, send)
            return
        current_bucket.set(bucket)
        if not allowed:
            retry_after = seconds_to_reset(bucket)
            await _too_many(scope, send, _headers(bucket), retry_after)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                # a handler's own limit wins
                if not any(k.lower() == b"x-ratelimit-limit" for k, _ in headers):
                    # read now: a GraphQL query may have charged its cost meanwhile
                    message["headers"] = [*headers, *_headers(bucket)]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _headers(bucket: Bucket) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-ratelimit-limit", str(bucket.limit).encode()),
        (b"x-ratelimit-remaining", str(bucket.remaining).encode()),
        (b"x-ratelimit-reset", str(math.ceil(bucket.reset_at)).encode()),
    ]


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


async def charge_query(actor: Actor | None, cost: QueryCost) -> RateLimitStatus:
    """GraphQL's cost charged to the caller's bucket, as GitHub does: the request itself
    was counted once by the middleware, the rest of the query's cost is taken here, and a
    query that costs more than is left is refused with RATE_LIMITED before it runs."""
    already = precharged.get()
    if already is not None:
        precharged.set(None)
        return already
    bucket = current_bucket.get()
    if bucket is None:
        return RateLimitStatus(cost=cost.cost, node_count=cost.node_count)
    if cost.cost > 1 and not await bucket.charge(cost.cost - 1):
        retry_after = seconds_to_reset(bucket)
        raise RateLimited(
            f"Query cost {cost.cost} exceeds what is left of the rate limit; "
            f"retry in {retry_after}s",
            retry_after=retry_after,
        )
    return RateLimitStatus(
        cost=cost.cost,
        node_count=cost.node_count,
        limit=bucket.limit,
        used=bucket.limit - bucket.remaining,
        remaining=bucket.remaining,
        reset_at=datetime.fromtimestamp(bucket.reset_at, UTC),
    )
