"""Close live websockets whose credential stops working as it did: a revoked token or
session, a deleted tenant, a user whose roles changed (the client reconnects with the
new ones). Every API process keeps its open sockets by credential and closes them when
the broker announces a revocation (from any process)."""

import asyncio
import contextlib
import logging
import weakref
from typing import Any

from agentplane.resolvers import actor_cache
from agentplane.resolvers.auth import Actor
from agentplane.subscriptions.broker import Broker, get_broker

log = logging.getLogger(__name__)
CHANNEL = "agentplane:revocations"
CLOSE_CODE = 4401  # graphql-transport-ws: unauthorized
_sockets: dict[str, "weakref.WeakSet[Any]"] = {}
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
    """Remember an authenticated websocket (weakly: a closed one is simply forgotten)."""
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
