"""Memory writes (with supersession and a soft budget) and hybrid recall."""

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from agentplane.models import Memory, MemoryStatus
from agentplane.retrieval.embedders import from_blob, get_embedder, to_blob
from agentplane.retrieval.fusion import Hit, rrf
from agentplane.retrieval.lexical import words

DEFAULT_MAX_MEMORIES = 200
TYPES = ("fact", "preference", "episode", "instruction", "summary")


def _bm25(query: list[str], docs: list[list[str]]) -> list[float]:
    # A scope's memories are few: scoring them in process keeps one code path per dialect.
    n = len(docs)
    avg = sum(map(len, docs)) / n if n else 0.0
    df = Counter(w for d in docs for w in set(d))
    scores = []
    for d in docs:
        tf = Counter(d)
        s = 0.0
        for w in query:
            if tf[w]:
                idf = math.log(1 + (n - df[w] + 0.5) / (df[w] + 0.5))
                s += idf * tf[w] * 2.2 / (tf[w] + 1.2 * (0.25 + 0.75 * len(d) / max(avg, 1)))
        scores.append(s)
    return scores


def _scope(tenant_id: str, agent_id: str | None, subject: str | None) -> Q:
    q = Q(tenant_id=tenant_id) & (Q(agent_id=agent_id) | Q(agent_id__isnull=True))
    if subject is not None:
        q &= Q(subject=subject) | Q(subject__isnull=True)
    return q


async def supersede(memory: Memory) -> list[Memory]:
    """Mark the other active memories with `memory`'s conflict key in its scope as
    superseded by it (call inside the transaction that makes `memory` active)."""
    if not memory.conflict_key:
        return []
    older = await Memory.filter(
        tenant_id=memory.tenant_id,
        agent_id=memory.agent_id,
        subject=memory.subject,
        conflict_key=memory.conflict_key,
        status=MemoryStatus.ACTIVE,
        id__not=memory.id,
    )
    await Memory.filter(id__in=[m.id for m in older]).update(
        status=MemoryStatus.SUPERSEDED, superseded_by=memory.id
    )
    for m in older:  # what the UPDATE wrote, so callers report the new state
        m.status, m.superseded_by = MemoryStatus.SUPERSEDED, memory.id
    return older


async def write(
    *,
    tenant_id: str,
    text: str,
    agent_id: str | None = None,
    subject: str | None = None,
    type: str = "fact",
    importance: float = 0.5,
    conflict_key: str | None = None,
    expires_at: datetime | None = None,
    source_step_id: str | None = None,
    status: MemoryStatus = MemoryStatus.ACTIVE,
    max_memories: int = DEFAULT_MAX_MEMORIES,
) -> tuple[Memory, list[Memory], list[Memory]]:
    """(memory, superseded, eviction suggestions). Over the soft budget the write still
    succeeds: refusing makes agents loop; the caller gets the cheapest to drop."""
    vector = (await get_embedder().embed([text]))[0]
    superseded: list[Memory] = []
    async with in_transaction():
        memory = await Memory.create(
            tenant_id=tenant_id,
            agent_id=agent_id,
            subject=subject,
            type=type,
            text=text,
            importance=importance,
            conflict_key=conflict_key,
            expires_at=expires_at,
            source_step_id=source_step_id,
            status=status,
            embedding=to_blob(vector),
        )
        if status == MemoryStatus.ACTIVE:
            superseded = await supersede(memory)
    active = Memory.filter(tenant_id=tenant_id, agent_id=agent_id, status=MemoryStatus.ACTIVE)
    over = await active.count() - max_memories
    evict = (
        await active.filter(id__not=memory.id).order_by("importance", "created_at").limit(over)
        if over > 0
        else []
    )
    return memory, superseded, list(evict)


async def recall(
    tenant_id: str, agent_id: str | None, query: str, first: int = 5, subject: str | None = None
) -> list[Hit]:
    """Active, unexpired memories in scope, ranked by bm25 + dense, fused by RRF."""
    now = datetime.now(UTC)
    rows = await Memory.filter(
        _scope(tenant_id, agent_id, subject),
        Q(expires_at__isnull=True) | Q(expires_at__gt=now),
        status=MemoryStatus.ACTIVE,
    ).limit(2000)
    if not rows or not query.strip():
        return []
    terms = words(query)
    lex = _bm25(terms, [words(m.text) for m in rows])
    lexical = sorted(
        ((m.id, s) for m, s in zip(rows, lex, strict=True) if s > 0), key=lambda x: -x[1]
    )
    vector = (await get_embedder().embed([query]))[0]
    with_vec = [m for m in rows if m.embedding]
    dense: list[tuple[str, float]] = []
    if with_vec:
        matrix = np.stack([from_blob(bytes(m.embedding)) for m in with_vec])  # type: ignore[arg-type]
        scores = matrix @ vector
        dense = sorted(
            ((m.id, float(s)) for m, s in zip(with_vec, scores, strict=True)), key=lambda x: -x[1]
        )[:100]
    hits = rrf({"lexical": lexical[:100], "dense": dense})[:first]
    by_id = {m.id: m for m in rows}
    for hit in hits:
        m = by_id[hit.id]
        hit.text = m.text
        hit.meta = {
            "memoryId": m.id,
            "type": m.type,
            "importance": m.importance,
            "conflictKey": m.conflict_key,
        }
    return hits


def expiry(ttl_seconds: Any) -> datetime | None:
    if ttl_seconds in (None, ""):
        return None
    return datetime.now(UTC) + timedelta(seconds=float(ttl_seconds))
