"""The scale corpus in ragline's tables, for the search benches (issue 23): a database of
the embedded PostgreSQL (scratch, or kept to be reused), ragline's migrations, chunks
written by COPY with their vectors, the queries and their MiniLM vectors.

Shared by bench/keyword_search.py, bench/vector_recall.py and bench/search_latency.py;
the corpus itself is bench/scale_corpus.py's (read-only here).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

DIMENSIONS = 384
MODEL = "minilm-onnx"


def migrate_upto(conn: Any, last: int) -> None:
    """Apply ragline's migrations up to version ``last`` (each recorded as applied)."""
    from ragline.store.migrate import available_migrations

    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
        " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for version, name, text in available_migrations():
        if version <= last:
            conn.execute(text.encode())
            conn.execute("INSERT INTO schema_migrations VALUES (%s, %s)", (version, name))


@contextmanager
def database(name: str, data_dir: Path | None = None) -> Iterator[tuple[str, bool]]:
    """(URL, whether it existed) of database ``name`` in the embedded PostgreSQL under
    ``data_dir``. None: a temporary server, the database dropped and the directory
    removed afterwards; a directory: the database is kept for the next run."""
    import psycopg
    from ragline.config import Settings
    from ragline.store.database import embedded_url

    scratch = data_dir is None
    directory = Path(tempfile.mkdtemp(prefix="ragline-bench-")) if data_dir is None else data_dir
    settings = Settings.from_env().with_overrides(data_dir=directory, database_url=None)
    server = embedded_url(settings)
    with psycopg.connect(server, autocommit=True) as admin:
        existed = bool(
            admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        )
        if not existed:
            admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield re.sub(r"/postgres(\?|$)", f"/{name}\\1", server, count=1), existed
    finally:
        if scratch:
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            shutil.rmtree(directory, ignore_errors=True)


def drop_database(name: str, data_dir: Path) -> None:
    """Drop database ``name`` of the embedded PostgreSQL under ``data_dir`` (a kept one
    that a run left incomplete)."""
    import psycopg
    from ragline.config import Settings
    from ragline.store.database import embedded_url

    settings = Settings.from_env().with_overrides(data_dir=data_dir, database_url=None)
    with psycopg.connect(embedded_url(settings), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def write_chunks(
    conn: Any,
    collection: str,
    chunks: list[dict[str, Any]],
    vectors: Iterable[Any],
    *,
    model: str = MODEL,
    batch: int = 2000,
) -> float:
    """Write scale chunks as an ingest leaves them: a document per path (COPY), then the
    chunks with ``vectors`` (one per chunk) by binary COPY, ``batch`` to a statement, each
    in its own transaction (a savepoint inside the caller's), so the BM25 triggers keep
    their tables per statement, as on an ingest. The vectors go as the embedding
    column's type (halfvec since migration 0011, vector before). Seconds the chunks took.
    """
    from pgvector import HalfVector, Vector
    from psycopg.types.json import Jsonb

    column = conn.execute(
        "SELECT format_type(atttypid, NULL) FROM pg_attribute"
        " WHERE attrelid = 'chunks'::regclass AND attname = 'embedding'"
    ).fetchone()[0]
    wrap = HalfVector if column == "halfvec" else Vector
    documents: dict[str, uuid.UUID] = {}
    counts: dict[str, int] = {}
    titles: dict[str, str | None] = {}
    for chunk in chunks:
        documents.setdefault(chunk["path"], uuid.uuid4())
        counts[chunk["path"]] = counts.get(chunk["path"], 0) + 1
        titles.setdefault(chunk["path"], chunk.get("title"))
    with (
        conn.transaction(),
        conn.cursor() as cur,
        cur.copy(
            "COPY documents (id, collection, source, title, status, chunk_count,"
            " embedding_model) FROM STDIN"
        ) as copy,
    ):
        for path, doc in documents.items():
            copy.write_row((doc, collection, f"scale://{path}", titles[path], "ingested",
                            counts[path], model))  # fmt: skip
    started = time.perf_counter()
    ordinals: dict[str, int] = {}
    rows = zip(chunks, vectors, strict=True)
    for first in range(0, len(chunks), batch):
        with (
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy(
                "COPY chunks (document_id, collection, ordinal, section, text, token_count,"
                " metadata, dimensions, embedding) FROM STDIN WITH (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(
                ["uuid", "text", "int4", "text", "text", "int4", "jsonb", "int4", column]
            )
            for _ in range(min(batch, len(chunks) - first)):
                chunk, vector = next(rows)
                ordinal = ordinals.get(chunk["path"], 0)
                ordinals[chunk["path"]] = ordinal + 1
                copy.write_row((documents[chunk["path"]], collection, ordinal,
                                " > ".join(chunk["section"]), chunk["text"], chunk["tokens"],
                                Jsonb({"scale_id": int(chunk["id"])}), DIMENSIONS,
                                wrap(np.asarray(vector, dtype=np.float32))))  # fmt: skip
    return time.perf_counter() - started


def load_queries(out: Path, wanted: int, seed: int) -> list[dict[str, Any]]:
    """Every dev-set question of queries.jsonl, then a seeded sample of its
    passage-derived queries, ``wanted`` in all."""
    rows = [json.loads(line) for line in (out / "queries.jsonl").read_text().splitlines()]
    dev = [r for r in rows if r["kind"] == "dev"]
    passages = [r for r in rows if r["kind"] != "dev"]
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(passages), size=max(0, min(wanted - len(dev), len(passages))),
                        replace=False)  # fmt: skip
    return dev + [passages[int(i)] for i in sorted(picked)]


def embed_queries(cache_dir: Path, queries: list[dict[str, Any]]) -> np.ndarray:
    """The queries' minilm-onnx vectors (float32, as ``embed_query`` gives them), cached
    in ``cache_dir`` by the texts' digest."""
    texts = [q["question"] for q in queries]
    key = hashlib.sha256(json.dumps(texts).encode()).hexdigest()[:16]
    cached = cache_dir / f"queries-{key}.npy"
    if cached.exists():
        return np.load(cached)
    from ragline.embeddings.minilm_onnx import MiniLMOnnxEmbedder

    embedder = MiniLMOnnxEmbedder()
    vectors = np.vstack([embedder.embed_query(text).vectors[0] for text in texts])
    vectors = vectors.astype(np.float32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(cached, vectors)
    return vectors
