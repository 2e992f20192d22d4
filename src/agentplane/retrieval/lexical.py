"""Lexical retrieval with OR semantics: a natural-language question matches a chunk
sharing any of its words, ranked by bm25 (SQLite FTS5) or ts_rank (PostgreSQL).
AND semantics (websearch_to_tsquery) finds nothing for most questions."""

import re
from typing import Any

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


# OR semantics makes FTS5 (and ts_rank) score every chunk holding any query word. On a
# large index the most common words (in over COMMON_SHARE of all chunks: bm25 weighs them
# near zero) are left out while the words kept would still match over POSTINGS_BUDGET
# chunks; a small index, or a query of only common words, keeps every word.
COMMON_SHARE = 0.05
POSTINGS_BUDGET = 5_000
# Candidates read from the whole index before the knowledge-base filter (see `search`).
OVERFETCH = 4


def words(text: str) -> list[str]:
    """The query's distinct content words, at most 64."""
    found = (w.lower() for w in WORD_RE.findall(text) if len(w) > 1)
    return list(dict.fromkeys(w for w in found if w not in STOP_WORDS))[:64]


async def search(kb_ids: list[str], query: str, limit: int) -> list[tuple[str, float]]:
    """[(chunk_id, score)] best first; higher score is better on both dialects."""
    terms = words(query)
    if not terms or not kb_ids or limit <= 0:
        return []
    conn = get_connection("default")
    if conn.capabilities.dialect == "postgres":
        return await _search_postgres(conn, kb_ids, terms, limit)
    terms = await _without_common(conn, terms)
    match = " OR ".join('"' + t.replace('"', "") + '"' for t in terms)
    # The knowledge base is an UNINDEXED column: filtering on it inside FTS5 reads every
    # matching row's content. So rank the whole index by bm25 alone (rowids only), then
    # look the best OVERFETCH * limit up in `chunk`: when `limit` of them are in `kb_ids`,
    # or there were no more matches, they are exactly the filtered ranking's head.
    fetch = OVERFETCH * limit
    rows = await conn.execute_query_dict(
        "SELECT c.id, c.knowledge_base_id AS kb, f.score FROM "
        "(SELECT rowid, bm25(chunk_fts) AS score FROM chunk_fts WHERE chunk_fts MATCH ? "
        f"ORDER BY score LIMIT {int(fetch)}) f JOIN chunk c ON c.rowid = f.rowid "
        "ORDER BY f.score",
        [match],
    )
    allowed = set(kb_ids)
    found = [r for r in rows if r["kb"] in allowed]
    if len(found) < limit and len(rows) == fetch:  # other bases crowd the head: filter
        marks = ", ".join("?" for _ in kb_ids)
        found = await conn.execute_query_dict(
            "SELECT chunk_id AS id, bm25(chunk_fts) AS score FROM chunk_fts "
            f"WHERE chunk_fts MATCH ? AND knowledge_base_id IN ({marks}) "
            f"ORDER BY score LIMIT {int(limit)}",
            [match, *kb_ids],
        )
    # FTS5's bm25() is negative (lower is better): flip it so every score reads "higher wins".
    return [(r["id"], -float(r["score"])) for r in found[:limit]]


async def _without_common(conn: Any, terms: list[str]) -> list[str]:
    """`terms` less the most common ones, per COMMON_SHARE and POSTINGS_BUDGET."""
    if conn.capabilities.dialect == "postgres":
        # No exact per-term counts on PostgreSQL: ANALYZE's most common lexemes of `tsv`
        # and their row shares estimate them (a word not among them is rare). Before the
        # first ANALYZE there are none, and every word is kept.
        rows = await conn.execute_query_dict(
            "WITH common AS (SELECT e.lexeme, e.share FROM pg_stats s, "
            "unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) "
            "AS e(lexeme, share) WHERE s.schemaname = current_schema() "
            "AND s.tablename = 'chunk' AND s.attname = 'tsv') "
            "SELECT w.term, max(c.share) * (SELECT reltuples FROM pg_class "
            "WHERE oid = 'chunk'::regclass) AS doc, "
            "(SELECT reltuples FROM pg_class WHERE oid = 'chunk'::regclass) AS n "
            "FROM unnest($1::text[]) AS w(term), "
            "unnest(tsvector_to_array(to_tsvector('english', w.term))) AS l(lexeme) "
            "JOIN common c ON c.lexeme = l.lexeme GROUP BY w.term",
            [terms],
        )
    else:
        marks = ", ".join("?" for _ in terms)
        rows = await conn.execute_query_dict(
            "SELECT term, doc, (SELECT count(*) FROM chunk) AS n FROM chunk_fts_vocab "
            f"WHERE term IN ({marks})",
            terms,
        )
    df = {r["term"]: int(r["doc"]) for r in rows}
    total = int(rows[0]["n"]) if rows else 0
    kept = sorted(terms, key=lambda t: df.get(t, 0))  # rarest first
    postings = sum(df.values())
    while (
        len(kept) > 1 and postings > POSTINGS_BUDGET and df.get(kept[-1], 0) > COMMON_SHARE * total
    ):
        postings -= df.pop(kept.pop())
    return kept


async def _search_postgres(
    conn: Any, kb_ids: list[str], terms: list[str], limit: int
) -> list[tuple[str, float]]:
    terms = await _without_common(conn, terms)
    tsquery = " | ".join("'" + t.replace("'", "") + "'" for t in terms)
    kb_marks = ", ".join(f"${i + 2}" for i in range(len(kb_ids)))
    rows = await conn.execute_query_dict(
        "SELECT id, ts_rank(tsv, q) AS score FROM chunk, to_tsquery('english', $1) q "
        f"WHERE tsv @@ q AND knowledge_base_id IN ({kb_marks}) "
        f"ORDER BY score DESC, id LIMIT {int(limit)}",
        [tsquery, *kb_ids],
    )
    return [(r["id"], float(r["score"])) for r in rows]
