"""Hybrid retrieval: lexical (FTS5/bm25 or PostgreSQL ts_rank) + dense, fused by RRF; memory.
Beside resolvers/, above models/ and core/; never a transport."""
