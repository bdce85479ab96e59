"""Retrieval: nearest chunks by vector, chunks by keywords, and cosine similarities.

Each function takes the connection to run on; the ``Store`` facade decides which one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from psycopg import sql
from psycopg.rows import dict_row

from ragline.store.records import RetrievedChunk

if TYPE_CHECKING:
    import numpy as np
    import psycopg


# pgvector's upper bound for hnsw.ef_search.
HNSW_MAX_EF_SEARCH = 1000
# A chunk's pages live in its metadata (written by the ingest from chunking): NULL for
# formats without pages.
CHUNK_PAGES = "(c.metadata->>'page')::int AS page, (c.metadata->>'last_page')::int AS last_page"


def vector_search(
    conn: psycopg.Connection[Any],
    collection: str,
    vector: np.ndarray,
    limit: int,
    *,
    ef_search: int,
) -> list[RetrievedChunk]:
    """Nearest chunks by cosine distance through the dimension's HNSW index.

    ``ef_search`` is the size of the HNSW candidate list: larger finds more of the exact
    nearest chunks, at some cost in time. It is raised to ``limit`` so a search never
    looks at fewer candidates than it returns, and capped at pgvector's maximum (past
    which the iterative scan still fetches as many rows as ``limit`` asks).
    """
    dims = sql.Literal(int(vector.shape[0]))
    query = sql.SQL(
        "WITH nearest AS MATERIALIZED ("
        " SELECT id, embedding::vector({dims}) <=> %(q)s::vector({dims}) AS distance"
        " FROM chunks WHERE dimensions = {dims} AND collection = %(c)s"
        " ORDER BY distance LIMIT %(k)s)"
        " SELECT c.id AS chunk_id, c.document_id, d.source, d.title, c.section, c.text,"
        " c.token_count, 1 - n.distance AS score, 1 - n.distance AS similarity, "
        + CHUNK_PAGES
        + " FROM nearest n JOIN chunks c ON c.id = n.id"
        " JOIN documents d ON d.id = c.document_id ORDER BY n.distance, c.id"
    ).format(dims=dims)
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        # Filtered HNSW scans keep searching until enough rows pass the filter.
        cur.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        candidates = min(HNSW_MAX_EF_SEARCH, max(ef_search, limit))
        cur.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(candidates)))
        cur.execute(query, {"q": vector, "c": collection, "k": limit})
        return [RetrievedChunk(**row) for row in cur.fetchall()]


def keyword_search(
    conn: psycopg.Connection[Any], collection: str, text: str, limit: int
) -> list[RetrievedChunk]:
    """The ``limit`` best chunks for ``text`` by Okapi BM25 over the collection.

    Ranked by ``bm25_search`` (migration 0003): exact scores from statistics that the
    chunk writes keep current, without scoring every chunk that shares a common word.
    """
    query = (
        "SELECT c.id AS chunk_id, c.document_id, d.source, d.title, c.section, c.text,"
        " c.token_count, r.score, " + CHUNK_PAGES + " FROM bm25_search(%(c)s, %(t)s, %(k)s) r"
        " JOIN chunks c ON c.id = r.chunk_id JOIN documents d ON d.id = c.document_id"
        " ORDER BY r.score DESC, c.id"
    )
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, {"t": text, "c": collection, "k": limit})
        return [RetrievedChunk(**row) for row in cur.fetchall()]


def similarities(
    conn: psycopg.Connection[Any], chunk_ids: Sequence[int], vector: np.ndarray
) -> dict[int, float]:
    """Cosine similarity of the query to each of these chunks."""
    if not chunk_ids:
        return {}
    dims = sql.Literal(int(vector.shape[0]))
    rows = conn.execute(
        sql.SQL(
            "SELECT id, 1 - (embedding::vector({dims}) <=> %s::vector({dims}))"
            " FROM chunks WHERE id = ANY(%s) AND dimensions = {dims}"
        ).format(dims=dims),
        (vector, list(chunk_ids)),
    )
    return {row[0]: float(row[1]) for row in rows}
