"""Lexical retrieval with OR semantics: a natural-language question matches a chunk
sharing any of its words, ranked by bm25 (SQLite FTS5) or ts_rank (PostgreSQL).
AND semantics (websearch_to_tsquery) finds nothing for most questions."""

import re

from tortoise.connection import get_connection

WORD_RE = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return list(dict.fromkeys(w.lower() for w in WORD_RE.findall(text) if len(w) > 1))[:64]


async def search(kb_ids: list[str], query: str, limit: int) -> list[tuple[str, float]]:
    """[(chunk_id, score)] best first; higher score is better on both dialects."""
    terms = words(query)
    if not terms or not kb_ids:
        return []
    conn = get_connection("default")
    marks = ", ".join("?" for _ in kb_ids)
    if conn.capabilities.dialect == "postgres":
        tsquery = " | ".join("'" + t.replace("'", "") + "'" for t in terms)
        kb_marks = ", ".join(f"${i + 2}" for i in range(len(kb_ids)))
        rows = await conn.execute_query_dict(
            "SELECT id, ts_rank(tsv, q) AS score FROM chunk, to_tsquery('english', $1) q "
            f"WHERE tsv @@ q AND knowledge_base_id IN ({kb_marks}) "
            f"ORDER BY score DESC, id LIMIT {int(limit)}",
            [tsquery, *kb_ids],
        )
        return [(r["id"], float(r["score"])) for r in rows]
    match = " OR ".join('"' + t.replace('"', "") + '"' for t in terms)
    rows = await conn.execute_query_dict(
        "SELECT chunk_id, bm25(chunk_fts) AS score FROM chunk_fts "
        f"WHERE chunk_fts MATCH ? AND knowledge_base_id IN ({marks}) "
        f"ORDER BY score LIMIT {int(limit)}",
        [match, *kb_ids],
    )
    # FTS5's bm25() is negative (lower is better): flip it so every score reads "higher wins".
    return [(r["chunk_id"], -float(r["score"])) for r in rows]
