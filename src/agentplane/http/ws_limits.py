"""Websocket limits: each connection and each operation started on it takes one from the
caller's rate-limit bucket (the one its HTTP requests take from, keyed by the same
credential), and a credential holds at most MAX_SOCKETS_PER_CREDENTIAL open sockets in
one API process, GraphQL and REST event streams included (`live_sockets.ConnectionSlots`,
shared by the app's routes). Refusals close with their own codes (README, *Limits*); a
stream over the cap answers 429 `RATE_LIMITED`."""

import logging
from typing import Any

from starlette.types import Scope
from starlette.websockets import WebSocket

from agentplane.http.middleware import Bucket, Buckets, seconds_to_reset
from agentplane.resolvers.auth import credential_key
from agentplane.subscriptions.live_sockets import MAX_PER_CREDENTIAL, ConnectionSlots

log = logging.getLogger(__name__)

# Private-use codes (4000-4999), outside graphql-transport-ws's own 4400-4499.
CLOSE_RATE_LIMITED = 4290
CLOSE_TOO_MANY_SOCKETS = 4291
MAX_SOCKETS_PER_CREDENTIAL = MAX_PER_CREDENTIAL


class SocketRefused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


class SocketLimits:
    def __init__(self, buckets: Buckets, slots: ConnectionSlots) -> None:
        self.buckets = buckets
        self.slots = slots

    async def admit(self, websocket: WebSocket, credential: str | None) -> None:
        """On `connection_init`: take one from the bucket and a socket slot, or refuse."""
        key = credential_key(websocket.scope, credential)
        try:
            bucket, allowed = await self.buckets.take(key)
        except Exception:  # the counter store is down: serve rather than refuse everyone
            log.exception("rate limiter unavailable; not limiting websockets")
            bucket, allowed = None, True
        if not allowed and bucket is not None:
            raise SocketRefused(
                CLOSE_RATE_LIMITED, f"Rate limit exceeded: retry in {seconds_to_reset(bucket)}s"
            )
        if not self.slots.hold(key):
            raise SocketRefused(
                CLOSE_TOO_MANY_SOCKETS,
                f"Too many open websockets for this credential (at most {self.slots.limit})",
            )
        websocket.state.socket_slot = key
        websocket.state.rate_bucket = bucket

    def release(self, scope: Scope) -> None:
        """When the socket is gone: give its slot back."""
        key = (scope.get("state") or {}).pop("socket_slot", None)
        if key is not None:
            self.slots.drop(key)


def socket_bucket(websocket: Any) -> Bucket | None:
    return getattr(websocket.state, "rate_bucket", None)


async def take_operation(websocket: Any) -> str | None:
    """One operation (`subscribe` / `start`) from the socket's bucket: None when allowed,
    else the refusal's message."""
    bucket = socket_bucket(websocket)
    if bucket is None:
        return None
    try:
        allowed = await bucket.charge(1)
    except Exception:
        log.exception("rate limiter unavailable; not limiting websocket operations")
        return None
    return None if allowed else f"Rate limit exceeded: retry in {seconds_to_reset(bucket)}s"
