"""The plans PostgreSQL picks for the searches' statements: the result rows come through
the primary keys, and the vector search walks its HNSW index whatever ef_search.

Both were planner cliffs (issue 23): the BM25 ranking was costed at 1,000 rows, so its 20
rows were joined to a scan of every chunk; and past ef_search 300 at 10k chunks, the
nearest chunks were found by reading and sorting every chunk row instead of the index.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from psycopg import sql
from ragline.config import Settings
from ragline.store import ChunkWrite, DocumentWrite, Store
from ragline.store.search import (
    HNSW_MAX_EF_SEARCH,
    HNSW_SETTINGS,
    hnsw_settings,
    nearest_query,
    ranked_query,
)

COLLECTION = "plans"
DIMENSIONS = 8
WORDS = [f"w{n}" for n in range(300)]


@pytest.fixture(scope="module")
def store(store_settings: Settings) -> Store:
    # 1,500 chunks in 30 documents: more than the 1,000 rows a function is costed at, so a
    # misestimated row fetch shows as a scan of chunks.
    store = Store(store_settings)
    store.ensure_collection(COLLECTION, f"test:{DIMENSIONS}", DIMENSIONS)
    rng = np.random.default_rng(23)
    for document in range(30):
        texts = [" ".join(rng.choice(WORDS, size=30)) for _ in range(50)]
        chunks = [ChunkWrite(n, "", text, 30) for n, text in enumerate(texts)]
        vectors = rng.standard_normal((len(chunks), DIMENSIONS)).astype(np.float32)
        store.save_document(
            DocumentWrite(COLLECTION, f"s3://b/plans/{document}.txt"),
            chunks,
            vectors,
            embedding_model=f"test:{DIMENSIONS}",
        )
    store.connection().execute("ANALYZE")
    return store


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of a JSON plan, depth first."""
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(nodes(child))
    return found


def explain(store: Store, query: sql.Composed, params: dict[str, Any]) -> list[dict[str, Any]]:
    row = store.connection().execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + query, params).fetchone()
    assert row is not None
    document = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    return nodes(document[0]["Plan"])


def scans_of(plan: list[dict[str, Any]], relation: str) -> list[str]:
    return [n["Node Type"] for n in plan if n.get("Relation Name") == relation]


@pytest.mark.parametrize("limit", [1, 20])
def test_keyword_rows_are_fetched_by_key_not_by_scanning_chunks(store: Store, limit: int) -> None:
    # GIVEN 1,500 chunks, analyzed, and the statement keyword search runs
    query = ranked_query("bm25_search(%(c)s, %(t)s, %(k)s)", limit)
    # WHEN PostgreSQL plans it
    plan = explain(store, query, {"c": COLLECTION, "t": "w1 w2 w250", "k": limit})
    # THEN the ranking is known to return at most `limit` rows, and each result's chunk
    # is read through the primary key, never by a scan of the whole table
    assert scans_of(plan, "chunks") == ["Index Scan"]
    assert any(n["Node Type"] == "Limit" and n["Plan Rows"] <= limit for n in plan)
    # AND the search still answers through it
    found = store.keyword_search(COLLECTION, "w1 w2 w250", limit)
    assert 0 < len(found) <= limit


@pytest.mark.parametrize("ef_search", [40, 300, HNSW_MAX_EF_SEARCH])
def test_vector_search_walks_the_index_whatever_ef_search(store: Store, ef_search: int) -> None:
    # GIVEN 1,500 chunks, so an ef_search of 300 or more is costed above a full scan
    vector = np.random.default_rng(5).standard_normal(DIMENSIONS).astype(np.float32)
    query = nearest_query(DIMENSIONS, exact=False, documents=False)
    conn = store.connection()
    # WHEN PostgreSQL plans the nearest-chunks statement under the search's settings
    with conn.transaction():
        conn.execute(HNSW_SETTINGS, hnsw_settings(ef_search, 10, 20000, "relaxed_order"))
        plan = explain(store, query, {"q": vector, "c": COLLECTION, "k": 10, "docs": None})
    # THEN the nearest chunks come from the HNSW index, not from reading every chunk row
    walks = [n for n in plan if n.get("Index Name", "").startswith("chunks_embedding_hnsw")]
    assert len(walks) == 1
    assert "Seq Scan" not in scans_of(plan, "chunks")
    # AND the search returns the nearest chunks, best first
    found = store.vector_search(COLLECTION, vector, 10, ef_search=ef_search)
    assert len(found) == 10
    assert [c.score for c in found] == sorted((c.score for c in found), reverse=True)


def test_without_the_settings_a_large_ef_search_would_scan(store: Store) -> None:
    # GIVEN the same statement planned with ef_search at its maximum but sorts allowed
    # (the settings before the fix), to show the test data reaches the cliff at all
    vector = np.random.default_rng(5).standard_normal(DIMENSIONS).astype(np.float32)
    query = nearest_query(DIMENSIONS, exact=False, documents=False)
    conn = store.connection()
    with conn.transaction():
        conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(HNSW_MAX_EF_SEARCH),))
        # WHEN PostgreSQL plans it
        plan = explain(store, query, {"q": vector, "c": COLLECTION, "k": 10, "docs": None})
    # THEN it reads every chunk instead of walking the index: the cliff the settings avoid
    assert not any(n.get("Index Name", "").startswith("chunks_embedding_hnsw") for n in plan)
