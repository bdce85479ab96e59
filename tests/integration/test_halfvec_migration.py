"""Migration 0011: a database whose chunk vectors are float32 (``vector``) is converted to
half precision (``halfvec``) in place, each dimension's HNSW index rebuilt over halfvec with
the parameters it had; a vector half precision cannot hold stops it with nothing changed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from ragline.config import Settings
from ragline.store import ChunkWrite, DocumentWrite, Store
from ragline.store.migrate import apply_migrations, available_migrations

from tests.support.databases import create_database

HALFVEC = 11


def _before_halfvec(url: str) -> psycopg.Connection[Any]:
    """A connection to ``url`` migrated up to the version before 0011."""
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    register_vector(conn)
    conn.execute(
        "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for version, name, text in available_migrations():
        if version < HALFVEC:
            conn.execute(text.encode())
            conn.execute("INSERT INTO schema_migrations VALUES (%s, %s)", (version, name))
    return conn


def _write(conn: psycopg.Connection[Any], collection: str, vectors: np.ndarray) -> None:
    """Chunks as the store wrote them before 0011: float32 vectors, and the dimension's
    HNSW index over embedding::vector(n) with non-default build parameters."""
    dims = int(vectors.shape[1])
    conn.execute(
        "INSERT INTO collections (name, embedding_model, dimensions) VALUES (%s, %s, %s)",
        (collection, f"test:{dims}", dims),
    )
    document = conn.execute(
        "INSERT INTO documents (collection, source, status, chunk_count) VALUES"
        " (%s, %s, 'ingested', %s) RETURNING id",
        (collection, f"s3://b/{collection}.txt", len(vectors)),
    ).fetchone()
    assert document is not None
    for ordinal, vector in enumerate(vectors):
        conn.execute(
            "INSERT INTO chunks (document_id, collection, ordinal, text, token_count,"
            " dimensions, embedding) VALUES (%s, %s, %s, %s, 1, %s, %s)",
            (document[0], collection, ordinal, f"chunk {ordinal}", dims, vector),
        )
    conn.execute(
        f"CREATE INDEX IF NOT EXISTS chunks_embedding_hnsw_{dims} ON chunks USING hnsw"
        f" ((embedding::vector({dims})) vector_cosine_ops) WITH (m = 8, ef_construction = 32)"
        f" WHERE dimensions = {dims}"
    )


def _column_type(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = 'chunks'::regclass AND attname = 'embedding'"
    ).fetchone()
    assert row is not None
    return str(row[0])


def _index(conn: psycopg.Connection[Any], dims: int) -> str:
    row = conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE indexname = %s", (f"chunks_embedding_hnsw_{dims}",)
    ).fetchone()
    assert row is not None
    return str(row[0])


@pytest.fixture
def url(postgres_server: str, request: pytest.FixtureRequest) -> Iterator[str]:
    yield create_database(postgres_server, request.node.name)


def test_float32_chunks_are_converted_and_their_indexes_rebuilt_over_halfvec(url: str) -> None:
    # GIVEN a database before 0011 holding collections of two dimensions, each indexed
    rng = np.random.default_rng(11)
    eight = rng.standard_normal((40, 8)).astype(np.float32)
    eight /= np.linalg.norm(eight, axis=1, keepdims=True)
    three = rng.standard_normal((5, 3)).astype(np.float32)
    with _before_halfvec(url) as conn:
        _write(conn, "eight", eight)
        _write(conn, "three", three)
        assert _column_type(conn) == "vector"
        # WHEN the migrations run (as the next deploy runs them)
        assert apply_migrations(conn) == [v for v, _, _ in available_migrations() if v >= HALFVEC]
        # THEN the column holds half precision, every value kept to half precision's rounding
        assert _column_type(conn) == "halfvec"
        stored = conn.execute(
            "SELECT embedding::real[] FROM chunks WHERE collection = 'eight' ORDER BY ordinal"
        ).fetchall()
        converted = np.array([row[0] for row in stored], dtype=np.float32)
        assert np.all(np.abs(converted - eight) <= np.abs(eight) * 2.0**-11)  # half an ulp
        assert not np.array_equal(converted, eight)  # rounded, so half precision indeed
        # AND each dimension's index is over halfvec, with the parameters it was built with
        for dims in (8, 3):
            index = _index(conn, dims)
            assert f"(embedding)::halfvec({dims})) halfvec_cosine_ops" in index
            assert "m='8'" in index and "ef_construction='32'" in index
            assert f"(dimensions = {dims})" in index
        # AND a second run changes nothing
        assert apply_migrations(conn) == []
    # AND the store searches the converted collection: a chunk's own vector finds it first
    store = Store(Settings(database_url=url))
    found = store.vector_search("eight", eight[7], 3)
    assert found[0].text == "chunk 7" and found[0].score == pytest.approx(1.0, abs=1e-3)
    assert len(found) == 3


def test_a_vector_beyond_half_precision_stops_the_migration_with_nothing_changed(
    url: str,
) -> None:
    # GIVEN a database before 0011 with a vector whose component exceeds half precision
    vectors = np.ones((3, 8), dtype=np.float32)
    vectors[1, 2] = 1e6
    with _before_halfvec(url) as conn:
        _write(conn, "huge", vectors)
        # WHEN the migrations run
        with pytest.raises(psycopg.Error, match="cannot be stored in half precision"):
            apply_migrations(conn)
        # THEN nothing changed: the column, the values and the float32 index are as they were
        assert _column_type(conn) == "vector"
        assert "vector_cosine_ops" in _index(conn, 8)
        row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        assert row is not None and row[0] < HALFVEC
        huge = conn.execute(
            "SELECT (embedding::real[])[3] FROM chunks WHERE ordinal = 1"
        ).fetchone()
        assert huge is not None and huge[0] == 1e6


def test_a_dimension_past_float32_hnsw_limit_is_indexed_and_searched(url: str) -> None:
    # GIVEN a store and 3,072-dimensional embeddings (text-embedding-3-large), past the
    # 2,000 dimensions pgvector indexes as float32 but within halfvec's 4,000
    store = Store(Settings(database_url=url))
    rng = np.random.default_rng(3072)
    vectors = rng.standard_normal((6, 3072)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    # WHEN a collection of them is created and a document saved into it
    store.ensure_collection("large", "openai:text-embedding-3-large", 3072)
    chunks = [ChunkWrite(n, "", f"chunk {n}", 2) for n in range(6)]
    store.save_document(
        DocumentWrite("large", "s3://b/large.txt"),
        chunks,
        vectors,
        embedding_model="openai:text-embedding-3-large",
    )
    # THEN the dimension has its HNSW index over halfvec, and a search finds a chunk by its
    # own vector
    assert "halfvec_cosine_ops" in _index(store.connection(), 3072)  # type: ignore[arg-type]
    found = store.vector_search("large", vectors[4], 2)
    assert found[0].text == "chunk 4" and found[0].score == pytest.approx(1.0, abs=1e-3)
