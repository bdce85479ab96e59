"""Retrieval: nearest chunks by vector, chunks by keywords, and cosine similarities.

Each function takes the connection to run on; the ``Store`` facade decides which one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from psycopg import IsolationLevel, sql
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from ragline.store.filtering import compile_filter
from ragline.store.records import RetrievedChunk, Selection

if TYPE_CHECKING:
    from uuid import UUID

    import numpy as np

    from ragline.filters import Filter
    from ragline.store.connection import Connection


# pgvector's upper bound for hnsw.ef_search.
HNSW_MAX_EF_SEARCH = 1000
ITERATIVE_SCANS = ("relaxed_order", "strict_order", "off")

# A chunk's pages live in its metadata (written by the ingest from chunking): NULL for
# formats without pages. Where its pages turn comes as JSON text (the same from either
# driver), read by RetrievedChunk.
CHUNK_PAGES = (
    "(c.metadata->>'page')::int AS page, (c.metadata->>'last_page')::int AS last_page,"
    " c.metadata->>'page_breaks' AS page_breaks"
)
_ROWS = (
    " SELECT c.id AS chunk_id, c.document_id, d.source, d.title, c.section, c.text,"
    f" c.token_count, {{score}}, {CHUNK_PAGES}"
    " FROM {ranked} n JOIN chunks c ON c.id = n.{id} JOIN documents d ON d.id = c.document_id"
)


def select(conn: Connection, collection: str, dimensions: int, where: Filter | None) -> Selection:
    """Which chunks of the collection a search may return, and how many: the documents
    ``where`` matches (their chunk counts, summed), or the whole collection; with the
    size of the dimension's vector index, so the search can tell how selective it is.
    Counted from per-document and per-collection totals, never by scanning chunks."""
    total_row = conn.execute(
        "SELECT coalesce(sum(b.chunks), 0), coalesce(sum(b.chunks) FILTER"
        " (WHERE b.collection = %s), 0) FROM bm25_collections b"
        " JOIN collections k ON k.name = b.collection WHERE k.dimensions = %s",
        (collection, dimensions),
    ).fetchone()
    assert total_row is not None
    total, in_collection = int(total_row[0]), int(total_row[1])
    if where is None:
        return Selection(in_collection, None, total, in_collection)
    condition, params = compile_filter(where)
    row = conn.execute(
        sql.SQL(
            "SELECT coalesce(array_agg(d.id), ARRAY[]::uuid[]), coalesce(sum(d.chunk_count), 0)"
            " FROM documents d WHERE d.collection = %s AND d.status = 'ingested' AND {}"
        ).format(condition),
        [collection, *params],
    ).fetchone()
    assert row is not None
    return Selection(int(row[1]), list(row[0]), total, in_collection)


def vector_search(
    conn: Connection,
    collection: str,
    vector: np.ndarray,
    limit: int,
    *,
    ef_search: int,
    selection: Selection | None = None,
    exact_max_chunks: int = 0,
    max_scan_tuples: int = 20000,
    iterative_scan: str = "relaxed_order",
) -> list[RetrievedChunk]:
    """Nearest chunks by cosine distance, among the chunks of ``selection`` (None: all of
    the collection's).

    A selection that is a part of the dimension's index, of at most ``exact_max_chunks``
    chunks, is searched exactly: distances to each of its chunks, read through the
    document or collection index. HNSW alone loses recall there: the graph walk meets
    mostly chunks the filter drops, so even with iterative scans the ones it returns are
    not the nearest (recall@10 0.84 at 1% of 100k chunks, bench/filtered_recall.py).
    Otherwise the HNSW index is walked with iterative scans (``iterative_scan``) until
    ``limit`` chunks pass or ``max_scan_tuples`` were visited.

    ``ef_search`` is the size of the HNSW candidate list: larger finds more of the exact
    nearest chunks, at some cost in time. It is raised to ``limit`` so a search never
    looks at fewer candidates than it returns, and capped at pgvector's maximum (past
    which the iterative scan still fetches as many rows as ``limit`` asks).
    """
    if iterative_scan not in ITERATIVE_SCANS:
        raise ValueError(f"iterative_scan must be one of {', '.join(ITERATIVE_SCANS)}")
    if selection is not None and selection.chunks == 0:
        return []
    documents = selection.document_ids if selection is not None else None
    partial = selection is not None and (
        documents is not None or selection.total is None or selection.chunks < selection.total
    )
    exact = partial and selection is not None and selection.chunks <= exact_max_chunks
    query = nearest_query(int(vector.shape[0]), exact=exact, documents=documents is not None)
    params = {"q": vector, "c": collection, "k": limit, "docs": documents}
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        if not exact:
            cur.execute(HNSW_SETTINGS, hnsw_settings(ef_search, limit, max_scan_tuples,
                                                     iterative_scan))  # fmt: skip
        cur.execute(query, params)
        return [RetrievedChunk(**row) for row in cur.fetchall()]


# The HNSW path's settings, for its transaction: one statement sets them all
# (set_config(..., true) is SET LOCAL), since over the Data API each statement is a request
# of its own. Filtered HNSW scans keep searching until enough rows pass the filter
# (iterative_scan, max_scan_tuples). enable_sort off: pgvector costs an HNSW scan by its
# ef_search, so on a small collection a large one (300 at 10k chunks) made the planner read
# every chunk row and sort by distance instead, 3-5 times slower than the walk (the index
# holds the vectors; the rows are wide). The index is the only way to the nearest chunks in
# order without a sort, so the walk stays the plan whatever ef_search; the few result rows
# are still ordered (a sort of 20 rows is no choice between plans).
HNSW_SETTINGS = (
    "SELECT set_config('hnsw.iterative_scan', %s, true),"
    " set_config('hnsw.max_scan_tuples', %s, true),"
    " set_config('hnsw.ef_search', %s, true),"
    " set_config('enable_sort', 'off', true)"
)


def hnsw_settings(
    ef_search: int, limit: int, max_scan_tuples: int, iterative_scan: str
) -> tuple[str, str, str]:
    """The parameters of ``HNSW_SETTINGS``: ``ef_search`` raised to ``limit`` and capped at
    pgvector's maximum."""
    candidates = min(HNSW_MAX_EF_SEARCH, max(ef_search, limit))
    return iterative_scan, str(int(max_scan_tuples)), str(candidates)


def nearest_query(dimensions: int, *, exact: bool, documents: bool) -> sql.Composed:
    """The nearest-chunks statement (parameters q, c, k and docs): an HNSW walk, or with
    ``exact`` every selected chunk's distance; among the documents of ``docs`` if
    ``documents``."""
    dims = sql.Literal(dimensions)
    # On the HNSW path the document check is written so no index can serve it: the
    # planner would otherwise read every selected chunk through the document index when
    # it guesses that cheaper, which past exact_max_chunks it is not (the exact path's
    # job, below the threshold).
    among = sql.SQL(" AND (document_id = ANY(%(docs)s)) IS TRUE" if documents else "")
    scope = sql.SQL("")
    if exact:
        # No ORDER BY in the scan, so no index order to follow: every selected chunk's
        # distance, then the nearest. Read through the document index (the documents are
        # the collection's), or the collection's.
        scope = sql.SQL("document_id = ANY(%(docs)s)" if documents else "collection = %(c)s")
        nearest = sql.SQL(
            "WITH selected AS MATERIALIZED ("
            " SELECT id, embedding::halfvec({dims}) <=> %(q)s::halfvec({dims}) AS distance"
            " FROM chunks WHERE dimensions = {dims} AND {scope}),"
            " nearest AS MATERIALIZED (SELECT id, distance FROM selected"
            " ORDER BY distance, id LIMIT %(k)s)"
        )
    else:
        nearest = sql.SQL(
            "WITH nearest AS MATERIALIZED ("
            " SELECT id, embedding::halfvec({dims}) <=> %(q)s::halfvec({dims}) AS distance"
            " FROM chunks WHERE dimensions = {dims} AND collection = %(c)s{among}"
            " ORDER BY distance LIMIT %(k)s)"
        )
    return sql.SQL("{nearest}{rows} ORDER BY n.distance, c.id").format(
        nearest=nearest.format(dims=dims, among=among, scope=scope),
        rows=sql.SQL(_ROWS).format(
            score=sql.SQL("1 - n.distance AS score, 1 - n.distance AS similarity"),
            ranked=sql.Identifier("nearest"),
            id=sql.Identifier("id"),
        ),
    )


KEYWORD_SCORERS = ("sql", "client")


def keyword_search(
    conn: Connection,
    collection: str,
    text: str,
    limit: int,
    *,
    selection: Selection | None = None,
    exact_max_chunks: int = 0,
    scorer: str = "sql",
) -> list[RetrievedChunk]:
    """The ``limit`` best chunks for ``text`` by Okapi BM25 over the collection, or over
    the chunks of ``selection``'s documents.

    Ranked by ``bm25_search`` (migrations 0003, 0006, 0010): exact scores from statistics the
    chunk writes keep current, without scoring every chunk that shares a common word.
    With ``scorer`` "client" (psycopg only) the same ranking is computed in numpy from the
    query's postings, read in one statement (store/bm25.py): the same scores, bit for
    bit, and the same order.
    A filter never changes a chunk's score (IDF and mean length stay the collection's),
    and never loses one: a selection of at most ``exact_max_chunks`` chunks is scored
    whole (``bm25_search_among``); a larger one takes the collection's ranking, deeper
    and deeper, until ``limit`` selected chunks are found or the ranking ends.
    """
    if scorer not in KEYWORD_SCORERS:
        raise ValueError(f"scorer must be one of {', '.join(KEYWORD_SCORERS)}")
    if selection is not None and selection.document_ids is not None and selection.chunks == 0:
        return []
    if scorer == "client":
        return _client_search(conn, collection, text, limit, selection, exact_max_chunks)
    if selection is None or selection.document_ids is None:
        return _ranked(conn, "bm25_search(%(c)s, %(t)s, %(k)s)", collection, text, limit)
    documents = set(selection.document_ids)
    if selection.chunks <= exact_max_chunks:
        ranking = "bm25_search_among(%(c)s, %(t)s, %(k)s, ARRAY(SELECT id FROM chunks" \
            " WHERE document_id = ANY(%(docs)s)))"  # fmt: skip
        return _ranked(conn, ranking, collection, text, limit, list(documents))
    depth = _first_depth(selection, limit)
    while True:
        found = _ranked(conn, "bm25_search(%(c)s, %(t)s, %(k)s)", collection, text, depth)
        kept = [chunk for chunk in found if chunk.document_id in documents]
        if len(kept) >= limit or len(found) < depth:
            return kept[:limit]
        depth *= 4


def _first_depth(selection: Selection, limit: int) -> int:
    """How deep the collection's ranking is read first, for a selection of its chunks."""
    share = selection.chunks / max(selection.collection_chunks or selection.chunks, 1)
    return max(limit * 2, int(limit / max(share, 1e-6) * 1.5))


def _client_search(
    conn: Connection,
    collection: str,
    text: str,
    limit: int,
    selection: Selection | None,
    exact_max_chunks: int,
) -> list[RetrievedChunk]:
    """``keyword_search`` with the ranking computed in the client (store/bm25.py): the
    postings are read once, then ranked as deep as the selection needs.

    Its statements share one snapshot (a read-only REPEATABLE READ transaction, unless
    the caller has one open): the blocks of common terms are read by the keys the first
    statement saw, which a concurrent write may cut into other blocks."""
    if limit <= 0:
        return []
    if conn.info.transaction_status != TransactionStatus.IDLE:  # type: ignore[union-attr]
        return _client_ranked(conn, collection, text, limit, selection, exact_max_chunks)
    # The BEGIN psycopg sends names the level: no statement of its own.
    saved = conn.isolation_level, conn.read_only  # type: ignore[union-attr]
    conn.isolation_level, conn.read_only = IsolationLevel.REPEATABLE_READ, True  # type: ignore[union-attr]
    try:
        with conn.transaction():
            return _client_ranked(conn, collection, text, limit, selection, exact_max_chunks)
    finally:  # (a broken connection is replaced, never reused: leave it be)
        if conn.info.transaction_status == TransactionStatus.IDLE:  # type: ignore[union-attr]
            conn.isolation_level, conn.read_only = saved  # type: ignore[union-attr]


def _client_ranked(
    conn: Connection,
    collection: str,
    text: str,
    limit: int,
    selection: Selection | None,
    exact_max_chunks: int,
) -> list[RetrievedChunk]:
    from ragline.store import bm25  # numpy, on the keyword path only

    postings = bm25.fetch(conn, collection, text)  # type: ignore[arg-type]
    if postings is None or not postings.terms:
        return []
    if selection is None or selection.document_ids is None:
        return _scored(conn, *bm25.rank(postings, limit), limit)
    documents = set(selection.document_ids)
    if selection.chunks <= exact_max_chunks:
        rows = conn.execute(
            "SELECT id FROM chunks WHERE document_id = ANY(%s) ORDER BY id", (list(documents),)
        )
        candidates = bm25.np.fromiter((row[0] for row in rows), dtype=bm25.np.int64)
        return _scored(conn, *bm25.rank_among(postings, candidates, limit), limit)
    depth = _first_depth(selection, limit)
    while True:
        found = _scored(conn, *bm25.rank(postings, depth), depth)
        kept = [chunk for chunk in found if chunk.document_id in documents]
        if len(kept) >= limit or len(found) < depth:
            return kept[:limit]
        depth *= 4


def _scored(
    conn: Connection, ids: np.ndarray, scores: np.ndarray, limit: int
) -> list[RetrievedChunk]:
    """The rows of a ranking computed in the client, best first."""
    if not ids.size:
        return []
    query = ranked_query(
        "unnest(%(ids)s::bigint[], %(scores)s::double precision[]) AS r(chunk_id, score)", limit
    )
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, {"ids": ids.tolist(), "scores": scores.tolist()})
        return [RetrievedChunk(**row) for row in cur.fetchall()]


def _ranked(
    conn: Connection,
    ranking: str,
    collection: str,
    text: str,
    limit: int,
    documents: list[UUID] | None = None,
) -> list[RetrievedChunk]:
    query = ranked_query(ranking, limit)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, {"t": text, "c": collection, "k": limit, "docs": documents})
        return [RetrievedChunk(**row) for row in cur.fetchall()]


def similarities(
    conn: Connection, chunk_ids: Sequence[int], vector: np.ndarray
) -> dict[int, float]:
    """Cosine similarity of the query to each of these chunks."""
    if not chunk_ids:
        return {}
    dims = sql.Literal(int(vector.shape[0]))
    rows = conn.execute(
        sql.SQL(
            "SELECT id, 1 - (embedding::halfvec({dims}) <=> %s::halfvec({dims}))"
            " FROM chunks WHERE id = ANY(%s) AND dimensions = {dims}"
        ).format(dims=dims),
        (vector, list(chunk_ids)),
    )
    return {row[0]: float(row[1]) for row in rows}


def ranked_query(ranking: str, limit: int) -> sql.Composed:
    """The rows of a BM25 ranking (an SQL call returning chunk_id and score, at most
    ``limit`` rows), best first.

    The planner takes a set-returning function for 1,000 rows (its default ROWS): it then
    fetched the result rows by scanning all of chunks (at 10k chunks) or documents into a
    hash join, which cost more than the ranking. A LIMIT in the statement, a constant so a
    generic plan sees it too, tells it the true count: the rows come through the primary
    keys.
    """
    ranked = sql.SQL("(SELECT * FROM {ranking} LIMIT {limit})").format(
        ranking=sql.SQL(ranking), limit=sql.Literal(int(limit))
    )
    return sql.SQL("{rows} ORDER BY n.score DESC, c.id").format(
        rows=sql.SQL(_ROWS).format(
            score=sql.SQL("n.score"), ranked=ranked, id=sql.Identifier("chunk_id")
        )
    )
