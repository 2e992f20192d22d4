"""A short-lived in-process cache of token hash -> Actor, dropped on every process at once.

`authenticate` looks a token up on every request: with its tenant, and for a token
acting for a user, the user and their roles (three statements through the ORM). This
cache keeps the resulting Actor for `TTL_S` seconds. Whatever changes what a token
authenticates as (revocation, a role change, a tenant suspended, resumed or deleted, a
user disabled or given an earlier `not_after`) calls `invalidate`, which, when the change
commits (and once already when it is made, inside its transaction):

1. bumps the installation's *auth generation* (a counter in Redis, or in the process
   with the in-memory broker); every cache hit compares the generation it was filled
   under with the current one, so a stale entry is never used, even on a process whose
   pub/sub message has not arrived yet or was lost;
2. drops this process's matching entries, and announces the drop on the broker so the
   other processes free theirs without waiting for their next request.

The generation is read *before* the database lookup that fills an entry, so a change
committed during that lookup leaves the entry already stale. When the generation cannot
be read (Redis unreachable), nothing is cached or served from the cache. Expiry is
checked on every hit against the token's `expires_at` (capped by its user's `not_after`).
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from agentplane.core.post_commit import after_commit
from agentplane.subscriptions.broker import Broker, get_broker

if TYPE_CHECKING:
    from agentplane.resolvers.auth import Actor

log = logging.getLogger(__name__)
CHANNEL = "agentplane:actor-cache"
TTL_S = 10.0
MAX_ENTRIES = 10_000


@dataclass(slots=True)
class _Entry:
    actor: "Actor"
    expires_at: datetime | None
    fresh_until: float  # time.monotonic()
    generation: int


_entries: dict[str, _Entry] = {}
_listener: tuple[Broker, asyncio.Task[None]] | None = None


async def generation() -> int | None:
    """The current auth generation, or None when it cannot be read (do not cache)."""
    try:
        return await get_broker().auth_generation()
    except Exception:
        log.warning("auth generation unreadable; the token cache is bypassed", exc_info=True)
        return None


async def lookup(digest: str) -> "Actor | None":
    """The cached Actor for a token hash, if it is still exactly what the database says."""
    entry = _entries.get(digest)
    if entry is None:
        return None
    if _listener is None or _listener[0] is not get_broker():
        clear()  # filled under another broker (an app restarted in the same process)
        return None
    if time.monotonic() >= entry.fresh_until or (
        entry.expires_at is not None and entry.expires_at <= datetime.now(UTC)
    ):
        _entries.pop(digest, None)
        return None
    current = await generation()
    if current != entry.generation:
        clear()
        return None
    return entry.actor


def store(digest: str, actor: "Actor", expires_at: datetime | None, gen: int | None) -> None:
    if gen is None:
        return
    _ensure_listener()
    if len(_entries) >= MAX_ENTRIES:
        _entries.clear()  # rare (a flood of distinct tokens); the cache refills in TTL_S
    _entries[digest] = _Entry(actor, expires_at, time.monotonic() + TTL_S, gen)


def clear() -> None:
    _entries.clear()


def drop(kind: str, id_: str) -> None:
    """Drop the entries of a token, user or tenant (`kind`: token, user, tenant)."""
    attribute = {"token": "token_id", "user": "user_id", "tenant": "tenant_id"}.get(kind)
    if attribute is None:
        return
    for digest, entry in list(_entries.items()):
        if getattr(entry.actor, attribute) == id_:
            _entries.pop(digest, None)


async def invalidate(kind: str, id_: str) -> None:
    """For a change to what `kind:id_`'s tokens authenticate as: no process serves a cached
    Actor for it once the change commits (see the module docstring).

    Called inside a transaction (`core.post_commit.atomic`), it bumps the generation now,
    so entries filled before are dead at once, and again after the commit, so an entry
    another process filled from the not yet committed rows dies too."""
    await _invalidate_now(kind, id_)
    await after_commit(lambda: _invalidate_now(kind, id_))


async def _invalidate_now(kind: str, id_: str) -> None:
    drop(kind, id_)
    broker = get_broker()
    try:
        await broker.bump_auth_generation()
    except Exception:  # every process then bypasses its cache until Redis answers again
        log.exception("could not bump the auth generation for %s:%s", kind, id_)
    try:
        await broker.publish(CHANNEL, {"kind": kind, "id": id_})
    except Exception:  # the generation already makes the entries stale
        log.exception("could not announce the cache drop of %s:%s", kind, id_)


def _ensure_listener() -> None:
    global _listener
    broker = get_broker()
    if _listener is not None and _listener[0] is broker and not _listener[1].done():
        return
    _entries.clear()  # a new broker (e.g. a restarted app in tests): a new generation space
    _listener = (broker, asyncio.get_running_loop().create_task(_listen(broker)))


async def _listen(broker: Broker) -> None:
    async with broker.subscribe(CHANNEL) as sub:
        async for message in sub:
            drop(str(message.get("kind")), str(message.get("id")))
