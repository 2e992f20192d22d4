"""Long-lived connections (websockets, GraphQL and REST event streams) by credential.

Each credential holds at most MAX_PER_CREDENTIAL of them open in one API process
(`ConnectionSlots`). Those whose credential stops working as it did are closed: a revoked
token or session, a deleted tenant, a user whose roles changed (the client reconnects
with the new ones). Every API process keeps its open connections by credential and
closes them when the broker announces a revocation (from any process)."""

import asyncio
import contextlib
import logging
import weakref
from collections import Counter
from typing import Any

from agentplane.resolvers import actor_cache
from agentplane.resolvers.auth import Actor
from agentplane.subscriptions.broker import Broker, get_broker

log = logging.getLogger(__name__)
CHANNEL = "agentplane:revocations"
CLOSE_CODE = 4401  # graphql-transport-ws: unauthorized
MAX_PER_CREDENTIAL = 10
_sockets: dict[str, "weakref.WeakSet[Any]"] = {}


class ConnectionSlots:
    """The long-lived connections each credential (`auth.credential_key`) holds open."""

    def __init__(self, limit: int = MAX_PER_CREDENTIAL) -> None:
        self.limit = limit
        self.open: Counter[str] = Counter()

    def hold(self, key: str) -> bool:
        """A slot for one more connection; False when all `limit` are taken."""
        if self.open[key] >= self.limit:
            return False
        self.open[key] += 1
        return True

    def drop(self, key: str) -> None:
        self.open[key] -= 1
        if self.open[key] <= 0:
            del self.open[key]


_listener: tuple[Broker, asyncio.Task[None]] | None = None


def _keys(actor: Actor) -> list[str]:
    keys = []
    if actor.token_id:
        keys.append(f"token:{actor.token_id}")
    if actor.session_id:
        keys.append(f"session:{actor.session_id}")
    if actor.user_id:
        keys.append(f"user:{actor.user_id}")
    if actor.tenant_id:
        keys.append(f"tenant:{actor.tenant_id}")
    return keys


def register(actor: Actor | None, websocket: Any) -> None:
    """Remember an authenticated connection (weakly: a closed one is simply forgotten);
    anything with `async close(code, reason)`: a websocket, an event stream."""
    if actor is None:
        return
    for key in _keys(actor):
        _sockets.setdefault(key, weakref.WeakSet()).add(websocket)
    _ensure_listener()


def _ensure_listener() -> None:
    global _listener
    broker = get_broker()
    if _listener is not None and _listener[0] is broker and not _listener[1].done():
        return
    _listener = (broker, asyncio.get_running_loop().create_task(_listen(broker)))


async def _listen(broker: Broker) -> None:
    async with broker.subscribe(CHANNEL) as sub:
        async for message in sub:
            for websocket in list(_sockets.pop(str(message.get("key")), ())):
                with contextlib.suppress(Exception):  # already gone
                    reason = str(message.get("reason") or "credential revoked")
                    await websocket.close(code=CLOSE_CODE, reason=reason)


async def revoked(kind: str, id_: str, reason: str = "credential revoked") -> None:
    """Announce that `kind:id_` (token, session, tenant, user) no longer authenticates
    as it did. Call it after the change commits."""
    await actor_cache.invalidate(kind, id_)
    try:
        await get_broker().publish(CHANNEL, {"key": f"{kind}:{id_}", "reason": reason})
    except Exception:  # the revocation itself is committed; sockets close on their next check
        log.exception("could not announce revocation of %s:%s", kind, id_)
