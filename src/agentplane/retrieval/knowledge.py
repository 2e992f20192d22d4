"""Retrieve chunks from knowledge bases: lexical + dense, fused."""

import asyncio

from agentplane.models import Chunk, Document
from agentplane.retrieval import lexical
from agentplane.retrieval.embedders import get_embedder
from agentplane.retrieval.fusion import Hit, rrf
from agentplane.retrieval.vectors import vector_index

CANDIDATES = 100  # per retriever, before fusion


async def rankings(
    kb_ids: list[str], query: str, limit: int = CANDIDATES
) -> dict[str, list[tuple[str, float]]]:
    """Each retriever's own ranking of chunk IDs, `[(chunk_id, score)]` best first."""
    if not kb_ids or not query.strip():
        return {}

    async def dense() -> list[tuple[str, float]]:
        vector = (await get_embedder().embed([query]))[0]
        return await vector_index.search(kb_ids, vector, limit)

    # The two retrievers wait on different things (the database; the embedder and the
    # scan, both off the event loop), so they run side by side.
    lexical_ranking, dense_ranking = await asyncio.gather(
        lexical.search(kb_ids, query, limit), dense()
    )
    return {"lexical": lexical_ranking, "dense": dense_ranking}


async def retrieve(
    kb_ids: list[str], query: str, first: int = 5, weights: dict[str, float] | None = None
) -> list[Hit]:
    """The `first` best chunks of `kb_ids` for `query` (ids already tenant-checked),
    fused by RRF (weighted when `weights` names retrievers)."""
    ranked = rrf(await rankings(kb_ids, query), weights=weights)[:first]
    if not ranked:
        return []
    chunks = {c.id: c for c in await Chunk.filter(id__in=[h.id for h in ranked])}
    hits = [h for h in ranked if h.id in chunks]  # a chunk deleted meanwhile is dropped
    docs = {
        d.id: d
        for d in await Document.filter(id__in=list({c.document_id for c in chunks.values()}))
    }
    for hit in hits:
        chunk = chunks[hit.id]
        doc = docs.get(chunk.document_id)
        hit.text = chunk.text
        hit.meta = {
            "chunkId": chunk.id,
            "documentId": chunk.document_id,
            "knowledgeBaseId": chunk.knowledge_base_id,
            "title": doc.title if doc else "",
            "position": chunk.position,
        }
    return hits
