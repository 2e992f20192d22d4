"""Reciprocal-rank fusion: rank-based, so bm25 and cosine scales never need calibrating."""

from dataclasses import dataclass, field
from typing import Any

RRF_K = 60


@dataclass
class Hit:
    id: str
    text: str
    # retriever name -> {"rank": 1-based, "score": that retriever's own score}
    retrievers: dict[str, dict[str, float]] = field(default_factory=dict)
    fused_score: float = 0.0
    fused_rank: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def explain(self) -> dict[str, Any]:
        return {
            "id": self.id,
            **self.meta,
            "text": self.text,
            "retrievers": self.retrievers,
            "fusedScore": round(self.fused_score, 6),
            "fusedRank": self.fused_rank,
        }


def rrf(
    rankings: dict[str, list[tuple[str, float]]],
    k: int = RRF_K,
    weights: dict[str, float] | None = None,
) -> list[Hit]:
    """Fuse `{retriever: [(id, score), ...best first]}` into hits, best first:
    sum over retrievers of weight / (k + rank); every weight 1 unless given."""
    hits: dict[str, Hit] = {}
    for name, ranking in rankings.items():
        weight = 1.0 if weights is None else weights.get(name, 1.0)
        for rank, (id_, score) in enumerate(ranking, start=1):
            hit = hits.setdefault(id_, Hit(id_, ""))
            hit.retrievers[name] = {"rank": rank, "score": round(float(score), 6)}
            hit.fused_score += weight / (k + rank)
    ordered = sorted(hits.values(), key=lambda h: (-h.fused_score, h.id))
    for rank, hit in enumerate(ordered, start=1):
        hit.fused_rank = rank
    return ordered


def weights_of(config: Any) -> dict[str, float] | None:
    """An agent's `config.retrievalWeights` (`{"lexical": 0.7, "dense": 0.3}`), keeping
    only finite non-negative numbers; None (plain RRF) when absent or unusable."""
    raw = config.get("retrievalWeights") if isinstance(config, dict) else None
    if not isinstance(raw, dict):
        return None
    weights = {
        str(name): float(w)
        for name, w in raw.items()
        if isinstance(w, int | float) and not isinstance(w, bool) and 0 <= w < float("inf")
    }
    return weights or None
