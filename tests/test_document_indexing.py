"""Background indexing: progress while a document indexes, its chunks invisible until it is
ready, deletion mid-indexing, a failing embedder, and documents a dead process left behind
(resumed from their stored text, or failed after too many starts)."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from agentplane.models import Chunk, Document, DocumentStatus, KnowledgeBase
from agentplane.resolvers import indexing
from agentplane.retrieval import embedders
from tests.support.factories import make_tenant, make_token
from tests.support.graphql import GraphQLClient
from tests.support.knowledge import document_when_done

CREATE_KB = """mutation { createKnowledgeBase(input: {name: "help"}) { knowledgeBase { id } } }"""
ADD = """mutation($i: AddDocumentInput!) { addDocument(input: $i) {
  document { id status progress chunkCount chunksIndexed errorCode error } } }"""
DOC = """query($id: ID!) { document(id: $id) {
  id status progress chunkCount chunksIndexed errorCode } }"""
RETRIEVE = """query($k: [ID!]!, $q: String!) {
  retrieve(knowledgeBaseIds: $k, query: $q, first: 50) {
  id text } }"""
DELETE = "mutation($id: ID!) { deleteDocument(input: {id: $id}) { document { id } } }"
# 40 paragraphs of ~700 characters: 40 chunks, two batches of at most 32.
LONG = "\n\n".join(f"Section {i} on warehouse logistics. " + "pallet " * 95 for i in range(40))


class Gated:
    """The real embedder, each batch of a document held until the test releases it: the
    test sees the document between two batches, as a slow embedder would show it.
    (A query, one text, goes through.)"""

    def __init__(self, inner: embedders.Embedder) -> None:
        self.inner = inner
        self.calls: asyncio.Queue[int] = asyncio.Queue()
        self.permits = asyncio.Semaphore(0)

    async def embed(self, texts: list[str]) -> np.ndarray:
        if len(texts) > 1:
            await self.calls.put(len(texts))
            await self.permits.acquire()
        return await self.inner.embed(texts)


class Broken:
    async def embed(self, texts: list[str]) -> np.ndarray:
        raise RuntimeError("embedding service down")


async def _setup(gql: GraphQLClient) -> tuple[str, str]:
    op = await make_token(await make_tenant("acme"), "operator")
    kb = (await gql.ok(CREATE_KB, op))["createKnowledgeBase"]["knowledgeBase"]["id"]
    return op, kb


async def test_progress_shows_while_chunks_stay_invisible_and_delete_leaves_nothing(
    gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    gated = Gated(embedders.get_embedder())
    monkeypatch.setattr(embedders, "_default", gated)
    op, kb = await _setup(gql)
    i = {"knowledgeBaseId": kb, "title": "Logistics", "text": LONG}
    doc = (await gql.ok(ADD, op, i=i))["addDocument"]["document"]
    assert (doc["status"], doc["chunkCount"], doc["chunksIndexed"]) == ("queued", 40, 0)

    async with asyncio.timeout(30):
        assert await gated.calls.get() == 32  # the first batch is being embedded
        first = (await gql.ok(DOC, op, id=doc["id"]))["document"]
        gated.permits.release()
        assert await gated.calls.get() == 8  # the second: the first one's progress is stored
    second = (await gql.ok(DOC, op, id=doc["id"]))["document"]
    assert (first["status"], first["chunksIndexed"]) == ("indexing", 0)
    assert (second["status"], second["chunksIndexed"], second["progress"]) == (
        "indexing",
        32,
        0.8,
    )
    # nothing of a document that is not ready reaches retrieval
    assert await Chunk.filter(document_id=doc["id"]).count() == 0
    assert (await gql.ok(RETRIEVE, op, k=[kb], q="warehouse pallet"))["retrieve"] == []

    # deleted while its last batch is embedded: the indexer's final write finds no document
    await gql.ok(DELETE, op, id=doc["id"])
    gated.permits.release()
    assert await indexing.wait(doc["id"], timeout=30) is None
    assert await Chunk.filter(document_id=doc["id"]).count() == 0
    assert not await Document.exists(id=doc["id"])

    # and one left alone is ready with every chunk, visible at once
    doc = (await gql.ok(ADD, op, i=i))["addDocument"]["document"]
    for _ in range(2):
        gated.permits.release()
    done = await document_when_done(gql, op, doc["id"])
    assert (done["status"], done["chunksIndexed"], done["progress"]) == ("ready", 40, 1.0)
    assert await Chunk.filter(document_id=doc["id"]).count() == 40
    assert (await gql.ok(RETRIEVE, op, k=[kb], q="warehouse pallet"))["retrieve"]


async def test_a_failing_embedder_marks_the_document_failed_with_a_code(
    gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedders, "_default", Broken())
    op, kb = await _setup(gql)
    i = {"knowledgeBaseId": kb, "title": "x", "text": "Backups run nightly.", "wait": True}
    doc = (await gql.ok(ADD, op, i=i))["addDocument"]["document"]
    assert (doc["status"], doc["errorCode"]) == ("failed", "INDEXING_FAILED")
    assert "embedding service down" in doc["error"]
    assert await Chunk.filter(document_id=doc["id"]).count() == 0
    row = await Document.get(id=doc["id"])
    assert row.source is None and row.lease_expires_at is None


async def _left_behind(kb_id: str, tenant_id: str, **fields: Any) -> Document:
    """A document as a process that died mid-indexing leaves it: open, its lease run out."""
    return await Document.create(
        knowledge_base_id=kb_id,
        tenant_id=tenant_id,
        title="Orphan",
        content_type="text/plain",
        size_bytes=len(LONG),
        chunk_count=40,
        source=LONG,
        **{
            "status": DocumentStatus.INDEXING,
            "chunks_indexed": 32,
            "attempts": 1,
            "lease_expires_at": datetime.now(UTC) - timedelta(seconds=1),
            **fields,
        },
    )


async def test_documents_left_open_by_a_dead_process_are_resumed_or_failed(
    gql: GraphQLClient,
) -> None:
    op, kb_id = await _setup(gql)
    kb = await KnowledgeBase.get(id=kb_id)
    orphan = await _left_behind(kb.id, kb.tenant_id)
    exhausted = await _left_behind(kb.id, kb.tenant_id, attempts=indexing.MAX_ATTEMPTS)
    alive = await _left_behind(
        kb.id, kb.tenant_id, lease_expires_at=datetime.now(UTC) + timedelta(minutes=5)
    )

    assert await indexing.resume_stalled() == 1  # the one with a live lease is left alone

    done = await document_when_done(gql, op, orphan.id)
    assert (done["status"], done["chunksIndexed"], done["chunkCount"]) == ("ready", 40, 40)
    assert await Chunk.filter(document_id=orphan.id).count() == 40
    assert (await Document.get(id=orphan.id)).attempts == 2
    failed = (await gql.ok(DOC, op, id=exhausted.id))["document"]
    assert (failed["status"], failed["errorCode"]) == ("failed", "INGEST_ABANDONED")
    assert (await gql.ok(DOC, op, id=alive.id))["document"]["status"] == "indexing"
    assert await Chunk.filter(document_id__in=[exhausted.id, alive.id]).count() == 0
