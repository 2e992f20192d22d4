"""Figure 6: retrieval quality and latency, through the product's own retrieval code.

Quality: the Lee document-similarity collection (Lee, Pincombe & Welsh 2005) that the
`gensim` wheel ships as test data: 50 news documents, every pair rated 1-5 by 8-12
people (`similarities0-1.txt` holds the mean rating / 5), and 300 more documents of
the same source (`lee_background.cor`), indexed as unjudged distractors. Each of the 50
is a query for the other 349; a pair's grade is the mean rating rounded, minus 2
(so "neutral" 3 -> 1, 4 -> 2, "highly related" 5 -> 3; below 2.5 -> 0). The documents are
ingested with `resolvers.knowledge.add_document` and ranked with
`retrieval.knowledge.rankings` (FTS5 bm25 and MiniLM cosine) and `retrieval.fusion.rrf`.
Chunks map to their document (its best-ranked chunk); the query document is left out.

Latency: one `retrieval.knowledge.retrieve` (embed the query, FTS5 OR query, numpy
scan, fuse, load the hits) over 100,000 chunks in one knowledge base on SQLite, and on
PostgreSQL when the bench has one. Chunk
texts are sentences of the same corpora; their vectors are random unit vectors (the scan
costs the same whatever the values, and embedding 100k chunks would take the bench
an hour on two cores).
"""

import importlib.util
import math
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tortoise.connection import get_connection

from agentplane.core import db
from agentplane.models import Chunk, Document, DocumentStatus, KnowledgeBase, Tenant
from agentplane.resolvers import knowledge
from agentplane.resolvers.auth import Actor
from agentplane.retrieval import knowledge as retrieval
from agentplane.retrieval.embedders import DIM, get_embedder, to_blob
from agentplane.retrieval.fusion import rrf

Ranking = list[tuple[str, float]]


def _data_dir() -> Path:
    spec = importlib.util.find_spec("gensim")  # its files, without importing it (scipy)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("bench: figure 6 needs the `gensim` package (pip install -e '.[dev]')")
    return Path(next(iter(spec.submodule_search_locations))) / "test" / "test_data"


def load_lee() -> tuple[list[str], list[str], np.ndarray]:
    """(the 50 judged documents, the 300 background ones, 50x50 integer grades)."""
    data = _data_dir()
    judged = (data / "lee.cor").read_text(encoding="latin-1").splitlines()
    background = (data / "lee_background.cor").read_text(encoding="latin-1").splitlines()
    upper = np.loadtxt(data / "similarities0-1.txt")  # upper triangle, diagonal 1
    mean_rating = (upper + upper.T - np.diag(np.diag(upper))) * 5
    grades = np.clip(np.floor(mean_rating + 0.5) - 2, 0, 3).astype(int)
    np.fill_diagonal(grades, 0)
    return judged, background, grades


def ndcg(ranked: Sequence[str], gains: dict[str, int], k: int = 10) -> float:
    """nDCG@k with linear gains (trec_eval's ndcg_cut)."""
    dcg = sum(gains.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall(ranked: Sequence[str], gains: dict[str, int], k: int = 100) -> float:
    relevant = {d for d, g in gains.items() if g > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def _documents(ranking: Ranking, doc_of: dict[str, str], leave_out: str) -> list[str]:
    seen: dict[str, None] = {}
    for chunk_id, _ in ranking:
        doc = doc_of.get(chunk_id)
        if doc is not None and doc != leave_out:
            seen.setdefault(doc, None)
    return list(seen)


async def _fresh(url: str) -> None:
    await db.migrate(url)
    await db.init(url)


async def quality(url: str) -> dict[str, Any]:
    """nDCG@10 and recall@100 of lexical, dense, RRF and weighted RRF (2-fold tuned)."""
    await _fresh(url)
    try:
        judged, background, grades = load_lee()
        tenant = await Tenant.create(name="bench-quality", display_name="Bench")
        actor = Actor(kind="token", role="operator", tenant_id=tenant.id, token_id="tok_bench")
        kb = await knowledge.create_knowledge_base(actor, name="lee")
        names: dict[str, str] = {}  # document id -> "q<i>" (judged) or "b<j>"
        for prefix, texts in (("q", judged), ("b", background)):
            for i, text in enumerate(texts):
                doc = await knowledge.add_document(
                    actor,
                    knowledge_base_id=kb.id,
                    title=f"{prefix}{i}",
                    content_type="text",
                    text=text,
                )
                await knowledge.wait_for_document(actor, doc.id)  # indexing is asynchronous
                names[doc.id] = f"{prefix}{i}"
        doc_of = {c: names[d] for c, d in await Chunk.all().values_list("id", "document_id")}
        runs: list[tuple[dict[str, int], str, dict[str, Ranking]]] = []
        for i, text in enumerate(judged):
            gains = {f"q{j}": int(g) for j, g in enumerate(grades[i]) if g > 0}
            if gains:  # a document nobody found related to another judges nothing
                runs.append((gains, f"q{i}", await retrieval.rankings([kb.id], text)))

        def score(fuse: Any, which: list[int]) -> tuple[float, float]:
            n = [ndcg(_documents(fuse(runs[w][2]), doc_of, runs[w][1]), runs[w][0]) for w in which]
            r = [
                recall(_documents(fuse(runs[w][2]), doc_of, runs[w][1]), runs[w][0]) for w in which
            ]
            return statistics.fmean(n), statistics.fmean(r)

        def fused(weights: dict[str, float] | None, k: int = 60) -> Any:
            def fuse(rankings: dict[str, Ranking]) -> Ranking:
                return [(h.id, h.fused_score) for h in rrf(rankings, k=k, weights=weights)]

            return fuse

        every = list(range(len(runs)))
        result: dict[str, Any] = {"queries": len(runs), "documents": len(names)}
        result["lexical"] = score(lambda r: r["lexical"], every)
        result["dense"] = score(lambda r: r["dense"], every)
        result["rrf"] = score(fused(None), every)
        # Weighted RRF, two folds: each query is scored with the weight tuned on the
        # other fold's queries, never on its own.
        grid = [round(0.1 * w, 1) for w in range(1, 10)]
        folds = [every[0::2], every[1::2]]
        per_query_n: list[float] = []
        per_query_r: list[float] = []
        chosen = []
        for f, test in enumerate(folds):
            tune = folds[1 - f]
            best = max(grid, key=lambda w: score(fused({"lexical": w, "dense": 1 - w}), tune)[0])
            chosen.append(best)
            for q in test:
                n, r = score(fused({"lexical": best, "dense": 1 - best}), [q])
                per_query_n.append(n)
                per_query_r.append(r)
        result["weighted_rrf"] = (statistics.fmean(per_query_n), statistics.fmean(per_query_r))
        result["lexical_weights"] = chosen
        return result
    finally:
        await db.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _sentences(texts: list[str]) -> list[str]:
    return [s.strip() for t in texts for s in t.split(". ") if len(s.strip()) > 20]


async def latency(url: str, chunks: int = 100_000, queries: int = 200) -> dict[str, float]:
    """p50/p99 milliseconds of one `retrieve` over `chunks` chunks (SQLite or PostgreSQL)."""
    await _fresh(url)
    try:
        await Tenant.filter(name="bench-latency").delete()  # a reused PostgreSQL database
        judged, background, _ = load_lee()
        sentences = _sentences(judged + background)
        rng = random.Random(7)
        vectors = np.random.default_rng(7).standard_normal((chunks, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        tenant = await Tenant.create(name="bench-latency", display_name="Bench")
        kb = await KnowledgeBase.create(tenant_id=tenant.id, name="big")
        per_doc = 100
        for start in range(0, chunks, per_doc):
            doc = await Document.create(
                knowledge_base_id=kb.id,
                tenant_id=tenant.id,
                title=f"d{start}",
                content_type="text/plain",
                status=DocumentStatus.READY,
                progress=1.0,
                chunk_count=per_doc,
            )
            await Chunk.bulk_create(
                [
                    Chunk(
                        document_id=doc.id,
                        knowledge_base_id=kb.id,
                        tenant_id=tenant.id,
                        position=i,
                        text=" ".join(rng.sample(sentences, 4)),
                        embedding=to_blob(vectors[start + i]),
                    )
                    for i in range(per_doc)
                ]
            )
        conn = get_connection("default")
        if conn.capabilities.dialect == "postgres":  # what autovacuum does after a bulk load
            await conn.execute_script("ANALYZE chunk")
        questions = [" ".join(s.split()[:12]) for s in rng.sample(sentences, queries)]
        await retrieval.retrieve([kb.id], questions[0], 5)  # warm: the matrix is cached
        timings, embedding = [], []
        for q in questions:
            started = time.perf_counter()
            await retrieval.retrieve([kb.id], q, 5)
            timings.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await get_embedder().embed([q])
            embedding.append((time.perf_counter() - started) * 1000)
        return {
            "chunks": chunks,
            "p50_ms": _percentile(timings, 0.5),
            "p99_ms": _percentile(timings, 0.99),
            "embed_p50_ms": _percentile(embedding, 0.5),
            "embed_p99_ms": _percentile(embedding, 0.99),
        }
    finally:
        await db.close()
