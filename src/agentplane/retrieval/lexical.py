"""Lexical retrieval with OR semantics: a natural-language question matches a chunk
sharing any of its words, ranked by bm25 (SQLite FTS5) or ts_rank (PostgreSQL).
AND semantics (websearch_to_tsquery) finds nothing for most questions."""

import re

from tortoise.connection import get_connection

WORD_RE = re.compile(r"\w+")
# English function words. They match nearly every chunk, so with OR semantics they make
# the engine score the whole index (FTS5 has no stop list; PostgreSQL's 'english'
# configuration drops these itself) while adding almost nothing to the ranking.
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves""".split()
)


def words(text: str) -> list[str]:
    """The query's distinct content words, at most 64."""
    found = (w.lower() for w in WORD_RE.findall(text) if len(w) > 1)
    return list(dict.fromkeys(w for w in found if w not in STOP_WORDS))[:64]


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
