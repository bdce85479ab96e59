"""The store against embedded PostgreSQL: migrations, collections, writes and searches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from ragline.config import Settings
from ragline.errors import EmbeddingDimensionError, SupersededError
from ragline.ingest import Ingestor
from ragline.store import (
    ChunkWrite,
    DocumentRecord,
    DocumentWrite,
    Ingested,
    Removed,
    Store,
    apply_migrations,
    available_migrations,
)


@pytest.fixture(scope="module")
def store(store_settings: Settings) -> Store:
    return Store(store_settings)


def test_migrations_apply_once_and_are_recorded(store: Store) -> None:
    conn = store.connection()  # first use applies them
    versions = [v for v, _, _ in available_migrations()]
    assert [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")] == (
        versions
    )
    assert apply_migrations(conn) == []  # a second run (another deploy) changes nothing


def test_schema_has_the_indexes_retrieval_relies_on(store: Store) -> None:
    store.ensure_collection("idx", "hash:8", 8)
    indexes = {
        name: definition
        for name, definition in store.connection().execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'chunks'"
        )
    }
    assert "chunks_tsv" not in indexes  # keyword search reads the BM25 postings instead
    blocks = (
        store.connection()
        .execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'bm25_blocks_pkey'")
        .fetchone()
    )
    assert blocks is not None
    assert "(term, last_id)" in blocks[0]
    hnsw = indexes["chunks_embedding_hnsw_8"]
    assert "USING hnsw" in hnsw and "halfvec_cosine_ops" in hnsw and "(dimensions = 8)" in hnsw


def test_the_hnsw_index_is_built_with_the_configured_parameters(store: Store) -> None:
    # GIVEN a store configured with non-default HNSW build parameters
    tuned = Store(store.settings.with_overrides(hnsw_m=8, hnsw_ef_construction=40))
    # WHEN a collection of a new dimension is recorded
    tuned.ensure_collection("tuned", "hash:12", 12)
    # THEN its index is built with them
    row = (
        tuned.connection()
        .execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'chunks_embedding_hnsw_12'")
        .fetchone()
    )
    assert row is not None and "m='8'" in row[0] and "ef_construction='40'" in row[0]


def test_a_collection_refuses_vectors_of_another_model(store: Store) -> None:
    store.ensure_collection("docs", "hash", 384)
    with pytest.raises(EmbeddingDimensionError, match="384-dimensional vectors from 'hash'"):
        store.ensure_collection("docs", "openai:text-embedding-3-small", 1536)
    fresh = Store(store.settings)  # another process sees the same record
    with pytest.raises(EmbeddingDimensionError):
        fresh.ensure_collection("docs", "minilm", 384)


def test_query_with_a_mismatched_embedder_is_a_clear_error(database_url: str) -> None:
    settings = Settings(database_url=database_url, default_collection="mixed")
    Ingestor.from_settings(settings).ingest_bytes("s3://b/a.txt", b"Alpha beta gamma.")
    from ragline.answer import Answerer, Router
    from ragline.embeddings.hash import HashEmbedder
    from ragline.llm.extractive import ExtractiveModel
    from ragline.prompts import load_prompt

    router = Router.single(settings, ExtractiveModel(), load_prompt("answer@v1"))
    other = Answerer(settings, Store(settings), HashEmbedder(64), router)
    with pytest.raises(EmbeddingDimensionError, match="use the same model"):
        other.answer("alpha?")


def test_save_replaces_chunks_atomically_and_searches_find_them(store: Store) -> None:
    store.ensure_collection("c1", "hash:8", 8)
    doc = DocumentWrite("c1", "s3://b/doc.txt", title="Doc", content_hash="h1")
    vectors = np.eye(8, dtype=np.float32)[:3]
    chunks = [ChunkWrite(i, "Doc > S", f"chunk {i} about otters", 4) for i in range(3)]
    first = store.save_document(doc, chunks, vectors, embedding_model="hash:8")
    assert first.status == "ingested" and first.chunk_count == 3

    # a write that fails midway leaves the previous version whole
    with pytest.raises(ValueError, match="one vector per chunk"):
        store.save_document(doc, chunks[:2], vectors, embedding_model="hash:8")
    bad = [ChunkWrite(0, "", "x", 1), ChunkWrite(0, "", "duplicate ordinal", 1)]
    with pytest.raises(Exception, match="duplicate key"):
        store.save_document(doc, bad, vectors[:2], embedding_model="hash:8")
    assert store.get_document(first.id).chunk_count == 3  # type: ignore[union-attr]

    nearest = store.vector_search("c1", vectors[1], 2)
    assert next(c.text for c in nearest) == "chunk 1 about otters"
    assert nearest[0].similarity == pytest.approx(1.0)
    assert len(store.keyword_search("c1", "otters", 10)) == 3
    assert store.keyword_search("c1", "the of and", 10) == []  # stop words only
    assert store.vector_search("other", vectors[1], 2) == []


def test_marking_failed_drops_stale_chunks(store: Store) -> None:
    store.ensure_collection("c2", "hash:8", 8)
    doc = DocumentWrite("c2", "s3://b/flaky.md", content_hash="v1")
    store.save_document(
        doc,
        [ChunkWrite(0, "", "old text", 2)],
        np.eye(8, dtype=np.float32)[:1],
        embedding_model="hash:8",
    )
    record = store.mark_document(
        DocumentWrite("c2", "s3://b/flaky.md", content_hash="v2"), "failed", "bad bytes"
    )
    assert (record.status, record.error, record.chunk_count) == ("failed", "bad bytes", 0)
    assert store.keyword_search("c2", "old text", 5) == []


class Asked:
    """A precondition that answers ``verdict`` and records the documents it was shown."""

    def __init__(self, verdict: bool) -> None:
        self.verdict = verdict
        self.shown: list[DocumentRecord | None] = []

    def holds(self, stored: DocumentRecord | None) -> bool:
        self.shown.append(stored)
        return self.verdict


def test_a_conditional_write_goes_ahead_only_when_its_precondition_holds(store: Store) -> None:
    # GIVEN a stored document with one chunk
    store.ensure_collection("c3", "hash:8", 8)
    vectors = np.eye(8, dtype=np.float32)
    doc = DocumentWrite("c3", "s3://b/conditional.md", content_hash="v1")
    first = store.save_document(
        doc, [ChunkWrite(0, "", "kept text", 2)], vectors[:1], embedding_model="hash:8"
    )
    newer = Ingested(
        DocumentWrite("c3", doc.source, content_hash="v2"),
        [ChunkWrite(0, "", "fresh text", 2)],
        vectors[1:2],
        "hash:8",
    )
    # WHEN a write of new content is refused by its precondition
    refusing = Asked(False)
    with pytest.raises(SupersededError):
        store.write(newer, precondition=refusing)
    # THEN the precondition was shown the stored document, and nothing changed
    assert refusing.shown == [first]
    assert store.find_document(doc.source) == first
    assert len(store.keyword_search("c3", "kept", 5)) == 1
    assert store.keyword_search("c3", "fresh", 5) == []
    # WHEN it holds, THEN the new content replaces the old
    saved = store.write(newer, precondition=Asked(True))
    assert saved is not None and (saved.content_hash, saved.chunk_count) == ("v2", 1)
    assert store.keyword_search("c3", "kept", 5) == []
    # AND removing a source never stored asks with nothing stored, and removes nothing
    absent = Asked(True)
    assert store.write(Removed("s3://b/never.md"), precondition=absent) is None
    assert absent.shown == [None]


DIMS = 128  # random directions in this many dimensions defeat short HNSW candidate lists


@pytest.fixture(scope="module")
def scattered(store: Store) -> tuple[np.ndarray, np.ndarray]:
    """A collection of 2,000 random unit vectors, and 60 random queries.

    Random directions have no clusters to steer by: the hardest case for a graph index,
    where a short candidate list misses many true nearest neighbours.
    """
    rng = np.random.default_rng(12)
    points = rng.standard_normal((2000, DIMS)).astype(np.float32)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    store.ensure_collection("scattered", "random", DIMS)
    for start in range(0, len(points), 500):
        store.save_document(
            DocumentWrite("scattered", f"s3://b/points-{start}.txt", content_hash=str(start)),
            [ChunkWrite(i, "", f"point {start + i}", 2) for i in range(500)],
            points[start : start + 500],
            embedding_model="random",
        )
    # Fresh statistics, so the planner sees 2,000 rows and takes the HNSW index.
    store.connection().execute("ANALYZE chunks")
    return points, rng.standard_normal((60, DIMS)).astype(np.float32)


def _recall_at_1(
    search: Callable[[np.ndarray], list[Any]], points: np.ndarray, queries: np.ndarray
) -> float:
    """The share of queries whose exact nearest point comes back first."""
    found = 0
    for query in queries:
        results = search(query)
        found += bool(results) and results[0].text == f"point {int(np.argmax(points @ query))}"
    return found / len(queries)


def test_hnsw_ef_search_setting_trades_recall(
    store: Store, scattered: tuple[np.ndarray, np.ndarray]
) -> None:
    # GIVEN random vectors, and stores whose RAGLINE_HNSW_EF_SEARCH is the least and a lot
    points, queries = scattered
    short = Store(store.settings.with_overrides(hnsw_ef_search=10))
    long = Store(store.settings.with_overrides(hnsw_ef_search=400))
    # WHEN each finds the nearest point to every query
    short_recall = _recall_at_1(lambda q: short.vector_search("scattered", q, 1), points, queries)
    long_recall = _recall_at_1(lambda q: long.vector_search("scattered", q, 1), points, queries)
    # THEN the short candidate list misses many that the long one finds
    assert short_recall < 0.85
    assert long_recall >= 0.95


def test_ef_search_per_call_overrides_the_setting(
    store: Store, scattered: tuple[np.ndarray, np.ndarray]
) -> None:
    # GIVEN a store set to the shortest candidate list
    points, queries = scattered
    short = Store(store.settings.with_overrides(hnsw_ef_search=10))
    # WHEN a call asks for a long one THEN it finds (nearly) every true nearest point
    recall = _recall_at_1(
        lambda q: short.vector_search("scattered", q, 1, ef_search=400), points, queries
    )
    assert recall >= 0.95


def test_a_search_never_returns_fewer_rows_than_asked(
    store: Store, scattered: tuple[np.ndarray, np.ndarray]
) -> None:
    # GIVEN a candidate list shorter than the rows asked for
    _, queries = scattered
    # WHEN 200 nearest chunks are asked for with ef_search 10
    results = store.vector_search("scattered", queries[0], 200, ef_search=10)
    # THEN 200 distinct chunks come back, nearest first
    assert len({r.chunk_id for r in results}) == 200
    similarities = [float(r.similarity or 0.0) for r in results]
    assert similarities == sorted(similarities, reverse=True)
