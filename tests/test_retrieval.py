"""Retrieval internals that the figure 6 speed work relies on: the lexical fast path
keeps tenant isolation, common words are left out only on a large index, and the
dense cache never serves a chunk that is gone."""

import pytest
from starlette.applications import Starlette
from tortoise.connection import get_connection

from agentplane.models import Chunk, Document
from agentplane.resolvers import knowledge
from agentplane.retrieval import knowledge as retrieval
from agentplane.retrieval import lexical
from agentplane.retrieval.embedders import get_embedder
from agentplane.retrieval.vectors import vector_index
from tests.support.factories import make_tenant
from tests.support.knowledge import add_ready
from tests.test_runtime import operator_of


async def _base(tenant_name: str, kb_name: str, texts: list[str]) -> tuple[str, list[str]]:
    tenant = await make_tenant(tenant_name)
    actor = operator_of(tenant.id)
    kb = await knowledge.create_knowledge_base(actor, name=kb_name)
    docs = []
    for i, text in enumerate(texts):
        doc = await add_ready(
            actor, knowledge_base_id=kb.id, title=f"t{i}", content_type="text", text=text
        )
        docs.append(doc.id)
    return kb.id, docs


async def test_lexical_ranking_stays_in_the_bases_asked_for_when_others_outrank_them(
    app: Starlette,
) -> None:
    # Tenant A's chunks all say "lighthouse" many times: they fill the whole-index head
    # of the bm25 ranking, so B's single weaker match is found only by the filtered query.
    crowd = ["lighthouse lighthouse lighthouse keeper"] * (lexical.OVERFETCH * 2 + 1)
    kb_a, _ = await _base("acme", "crowd", crowd)
    kb_b, (doc_b,) = await _base(
        "globex", "own", ["Our office has a lighthouse mural and many other paintings on walls."]
    )

    only_b = await lexical.search([kb_b], "lighthouse", limit=2)
    only_a = await lexical.search([kb_a], "lighthouse", limit=2)

    chunk_b = await Chunk.get(document_id=doc_b)
    assert [c for c, _ in only_b] == [chunk_b.id]
    assert len(only_a) == 2 and chunk_b.id not in {c for c, _ in only_a}
    assert {c.knowledge_base_id for c in await Chunk.filter(id__in=[c for c, _ in only_a])} == {
        kb_a
    }


async def test_common_words_are_left_out_only_on_a_large_index(
    app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [f"the harbour report number {i}" for i in range(8)] + ["a harbour with a walrus"]
    kb, docs = await _base("acme", "harbour", texts)
    walrus = (await Chunk.get(document_id=docs[-1])).id

    # A small index keeps every word: "harbour" (in all 9 chunks) still matches.
    assert len(await lexical.search([kb], "harbour walrus", limit=20)) == 9

    # Over the postings budget the common word is dropped and only the rare one matches.
    # (PostgreSQL estimates counts from ANALYZE's statistics, which autovacuum keeps.)
    if get_connection("default").capabilities.dialect == "postgres":
        await get_connection("default").execute_script("ANALYZE chunk")
    monkeypatch.setattr(lexical, "POSTINGS_BUDGET", 5)
    found = [c for c, _ in await lexical.search([kb], "harbour walrus", limit=20)]
    assert found == [walrus]
    # A query of only common words keeps one of them rather than finding nothing.
    assert len(await lexical.search([kb], "harbour report", limit=20)) >= 8


async def test_dense_cache_never_ranks_a_deleted_chunk(app: Starlette) -> None:
    kb, docs = await _base(
        "acme",
        "help",
        ["Parcels ship from Rotterdam.", "Invoices are emailed as PDF every month."],
    )
    invoice = (await Chunk.get(document_id=docs[1])).id
    first = await retrieval.rankings([kb], "monthly invoices")
    assert invoice in {c for c, _ in first["dense"]}  # the matrix is cached now

    # Deleted through the resolver: its invalidation drops the cached matrix at once.
    await knowledge.delete_document(
        operator_of((await Document.get(id=docs[1])).tenant_id), docs[1]
    )
    after = await retrieval.rankings([kb], "monthly invoices")
    assert invoice not in {c for c, _ in after["dense"] + after["lexical"]}

    # Deleted behind this process's back (another worker): the fingerprint sees it.
    await retrieval.rankings([kb], "parcels")
    await Chunk.filter(document_id=docs[0]).delete()
    vector = (await get_embedder().embed(["parcels"]))[0]
    assert await vector_index.search([kb], vector, 10) == []
