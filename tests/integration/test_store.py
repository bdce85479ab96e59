"""The store against embedded PostgreSQL: migrations, collections, writes and searches."""

from __future__ import annotations

import numpy as np
import pytest
from ragline.config import Settings
from ragline.errors import EmbeddingDimensionError
from ragline.ingest import Ingestor
from ragline.store import ChunkWrite, DocumentWrite, Store, apply_migrations, available_migrations


@pytest.fixture(scope="module")
def store(database_url: str) -> Store:
    return Store(Settings(database_url=database_url))


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
    postings = (
        store.connection()
        .execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'bm25_postings_pkey'")
        .fetchone()
    )
    assert postings is not None
    assert "(collection, lexeme, chunk_id) INCLUDE (tf, length)" in postings[0]
    hnsw = indexes["chunks_embedding_hnsw_8"]
    assert "USING hnsw" in hnsw and "vector_cosine_ops" in hnsw and "(dimensions = 8)" in hnsw


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
