"""Filtered vector search: recall@10 against exact search, and latency, per strategy.

Builds, or reuses from ``--data-dir``, a collection of ``--chunks`` synthetic chunks
(``--per-document`` per document) in the embedded PostgreSQL: 384-dimensional unit
vectors around ``--clusters`` random centres (as MiniLM's are 384-d and clustered by
topic), written straight into the tables with COPY, then the HNSW index built once.
Each document has an attribute ``bucket``, 0-99 at random, independent of its vectors:
``{"eq": {"key": "bucket", "value": 0}}`` selects 1% of the chunks, ``{"in": ...}`` of
ten buckets 10%.

For each selectivity, the exact top 10 of each query comes from a sequential scan of the
selected chunks. Then each strategy runs every query, and the script prints recall@10
against exact, how many results came back, and p50/p95 latency:

* ``hnsw relaxed_order`` (ragline before filters: the filter checked on each row the
  HNSW walk yields, iterative scans in relaxed order, pgvector's default scan budget of
  20,000 tuples), ``hnsw strict_order`` and ``hnsw off``: the filter made unindexable
  and sequential scans off, so the planner cannot fall back to an exact scan;
* ``hnsw relaxed_order, budget N``: the same with the scan budget raised to N (what
  RAGLINE_HNSW_MAX_SCAN_TUPLES sets for ragline's HNSW branch);
* ``ragline exact path (search only)``: ``vector_search`` over a selection already made;
* ``ragline (select + search)``: ``Store.select`` then ``Store.vector_search`` with the
  settings' defaults (exact up to RAGLINE_FILTER_EXACT_MAX_CHUNKS chunks, HNSW above).

Last, the same for a collection that holds 1% of the chunks (one document in a hundred
is written to its own collection) searched with no filter: the collection is a filter
on the shared index too.

Figures, not a test: the machine is shared, so compare within one run.

    python bench/filtered_recall.py [--data-dir .ragline/bench-filtered-recall]
        [--chunks 100000] [--queries 100] [--budgets 100000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
COLLECTION = "filtered-recall"
SMALL = "filtered-recall-1pct"  # a collection of 1% of the chunks, sharing the index
MODEL = "bench:synthetic"
DIMENSIONS = 384
K = 10


def build(store: Any, chunks: int, per_document: int, clusters: int, seed: int) -> float:
    """Write the synthetic collection unless it is there; the seconds it took (0: reused)."""
    conn = store.connection()
    held = conn.execute(
        "SELECT count(*) FROM chunks WHERE collection IN (%s, %s)", (COLLECTION, SMALL)
    ).fetchone()[0]
    if held == chunks:
        return 0.0
    started = time.perf_counter()
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Jsonb

    register_vector(conn)
    store.ensure_collection(COLLECTION, MODEL, DIMENSIONS)
    store.ensure_collection(SMALL, MODEL, DIMENSIONS)
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIMENSIONS)).astype(np.float32)
    documents = chunks // per_document
    with conn.transaction():
        conn.execute("DELETE FROM documents WHERE collection IN (%s, %s)", (COLLECTION, SMALL))
        # Built once after loading: inserting 100k vectors one by one into the graph is
        # several times slower than building it.
        conn.execute(f"DROP INDEX IF EXISTS chunks_embedding_hnsw_{DIMENSIONS}")
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY documents (collection, source, metadata, status, chunk_count,"
                " embedding_model) FROM STDIN"
            ) as copy,
        ):
            for d in range(documents):
                attributes = {"bucket": int(rng.integers(100)), "n": d}
                copy.write_row(
                    (COLLECTION, f"s3://bench/{d}.md", Jsonb({"attributes": attributes}),
                     "ingested", per_document, MODEL)
                )  # fmt: skip
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM documents WHERE collection = %s ORDER BY source", (COLLECTION,)
            )
        ]
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY chunks (document_id, collection, ordinal, text, token_count, dimensions,"
                " embedding) FROM STDIN WITH (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["uuid", "text", "int4", "text", "int4", "int4", "vector"])
            for document_id in ids:
                members = rng.integers(clusters, size=per_document)
                vectors = centres[members] + 0.6 * rng.standard_normal(
                    (per_document, DIMENSIONS)
                ).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                for ordinal, vector in enumerate(vectors):
                    copy.write_row(
                        (document_id, COLLECTION, ordinal, f"chunk {ordinal}", 2, DIMENSIONS,
                         vector)
                    )  # fmt: skip
        # One document in a hundred moves to its own collection: the case of a small
        # collection sharing its dimension's index with a large one, with no filter.
        conn.execute(
            "UPDATE documents SET collection = %s WHERE collection = %s"
            " AND (metadata -> 'attributes' ->> 'n')::int %% 100 = 50",
            (SMALL, COLLECTION),
        )
        conn.execute(
            "UPDATE chunks c SET collection = d.collection FROM documents d"
            " WHERE d.id = c.document_id AND d.collection = %s",
            (SMALL,),
        )
    conn.execute("SET maintenance_work_mem = '1GB'")
    conn.execute(
        f"CREATE INDEX chunks_embedding_hnsw_{DIMENSIONS} ON chunks USING hnsw"
        f" ((embedding::vector({DIMENSIONS})) vector_cosine_ops)"
        f" WITH (m = 16, ef_construction = 64) WHERE dimensions = {DIMENSIONS}"
    )
    conn.execute("ANALYZE documents")
    conn.execute("ANALYZE chunks")
    return time.perf_counter() - started


def exact(
    store: Any, vector: np.ndarray, documents: list[Any] | None, collection: str = COLLECTION
) -> list[int]:
    """The true 10 nearest selected chunks (None: the collection's), by a scan of them all
    (no index order)."""
    conn = store.connection()
    with conn.transaction():
        conn.execute("SET LOCAL enable_indexscan = off")
        rows = conn.execute(
            f"SELECT id FROM chunks WHERE collection = %s"
            f" AND (%s::uuid[] IS NULL OR document_id = ANY(%s))"
            f" ORDER BY embedding::vector({DIMENSIONS}) <=> %s::vector({DIMENSIONS}), id"
            f" LIMIT {K}",
            (collection, documents, documents, vector),
        ).fetchall()
    return [row[0] for row in rows]


def hnsw_only(
    store: Any,
    vector: np.ndarray,
    documents: list[Any] | None,
    mode: str,
    ef_search: int,
    max_scan_tuples: int = 20000,
    collection: str = COLLECTION,
) -> list[int]:
    """The filter checked on each row the HNSW walk yields, and nothing else allowed."""
    conn = store.connection()
    with conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")
        conn.execute(f"SET LOCAL hnsw.iterative_scan = {mode}")
        conn.execute(f"SET LOCAL hnsw.ef_search = {ef_search}")
        conn.execute(f"SET LOCAL hnsw.max_scan_tuples = {max_scan_tuples}")
        rows = conn.execute(
            f"SELECT id FROM chunks WHERE dimensions = {DIMENSIONS}"
            " AND (collection = %s) IS TRUE"
            " AND (%s::uuid[] IS NULL OR document_id = ANY(%s)) IS TRUE"
            f" ORDER BY embedding::vector({DIMENSIONS}) <=> %s::vector({DIMENSIONS}) LIMIT {K}",
            (collection, documents, documents, vector),
        ).fetchall()
    return [row[0] for row in rows]


def strategies(
    store: Any, spelled: dict[str, Any], selection: Any, ef: int, budgets: list[int]
) -> dict[str, Any]:
    """What each strategy runs for one query vector, by its name."""
    from ragline.filters import parse_filter
    from ragline.store import search as store_search

    documents = selection.document_ids or []
    where = parse_filter(spelled)

    def hnsw(mode: str, budget: int = 20000) -> Any:
        return lambda v: hnsw_only(store, v, documents, mode, ef, budget)

    def exact_path(v: np.ndarray) -> list[int]:
        found = store_search.vector_search(
            store.connection(), COLLECTION, v, K, ef_search=ef, selection=selection,
            exact_max_chunks=selection.chunks,
        )  # fmt: skip
        return [c.chunk_id for c in found]

    def ragline(v: np.ndarray) -> list[int]:
        chosen = store.select(COLLECTION, DIMENSIONS, where)
        return [c.chunk_id for c in store.vector_search(COLLECTION, v, K, selection=chosen)]

    runs = {f"hnsw {mode}": hnsw(mode) for mode in ("relaxed_order", "strict_order", "off")}
    for budget in budgets:
        runs[f"hnsw relaxed_order, budget {budget}"] = hnsw("relaxed_order", budget)
    runs["ragline exact path (search only)"] = exact_path
    runs["ragline (select + search)"] = ragline
    return runs


def measure(run: Any, vectors: list[np.ndarray], truth: list[list[int]]) -> str:
    recalls, counts, times = [], [], []
    for vector, expected in zip(vectors, truth, strict=True):
        started = time.perf_counter()
        found = run(vector)
        times.append((time.perf_counter() - started) * 1000)
        counts.append(len(found))
        recalls.append(len(set(found) & set(expected)) / max(len(expected), 1))
    p50 = statistics.median(times)
    p95 = statistics.quantiles(times, n=20)[18] if len(times) >= 20 else max(times)
    return (
        f"recall@10 {statistics.mean(recalls):.3f}  results {statistics.mean(counts):5.2f}"
        f"  p50 {p50:6.1f} ms  p95 {p95:6.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, default=ROOT / ".ragline" / "bench-filtered-recall"
    )
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--per-document", type=int, default=10)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--budgets", default="100000", help="HNSW scan budgets to try")
    parser.add_argument("--seed", type=int, default=10)
    args = parser.parse_args()

    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    from ragline.config import Settings
    from ragline.filters import parse_filter
    from ragline.store import Store

    settings = Settings.from_env().with_overrides(data_dir=args.data_dir, database_url=None)
    store = Store(settings)
    seconds = build(store, args.chunks, args.per_document, args.clusters, args.seed)
    if seconds:
        print(f"wrote {args.chunks} chunks and built the HNSW index in {seconds:.0f} s")
    print(
        f"{args.chunks} chunks in {args.chunks // args.per_document} documents; defaults:"
        f" RAGLINE_HNSW_EF_SEARCH {settings.hnsw_ef_search},"
        f" RAGLINE_FILTER_EXACT_MAX_CHUNKS {settings.filter_exact_max_chunks},"
        f" RAGLINE_HNSW_MAX_SCAN_TUPLES {settings.hnsw_max_scan_tuples}"
    )
    rng = np.random.default_rng(args.seed + 1)
    conn = store.connection()
    # Queries near stored chunks, as real questions are near the passages that answer them.
    sample = [
        row[0]
        for row in conn.execute(
            "SELECT embedding FROM chunks WHERE collection = %s ORDER BY random() LIMIT %s",
            (COLLECTION, args.queries),
        )
    ]
    vectors = []
    for stored in sample:
        vector = np.asarray(stored.to_numpy() if hasattr(stored, "to_numpy") else stored)
        vector = vector + 0.3 * rng.standard_normal(DIMENSIONS).astype(np.float32) / 20
        vectors.append((vector / np.linalg.norm(vector)).astype(np.float32))
    ef = settings.hnsw_ef_search
    budgets = [int(b) for b in args.budgets.split(",") if b]
    filters = {
        "1%": {"eq": {"key": "bucket", "value": 0}},
        "10%": {"in": {"key": "bucket", "value": list(range(10))}},
    }
    for label, spelled in filters.items():
        selection = store.select(COLLECTION, DIMENSIONS, parse_filter(spelled))
        documents = selection.document_ids or []
        started = time.perf_counter()
        for _ in range(20):
            store.select(COLLECTION, DIMENSIONS, parse_filter(spelled))
        select_ms = (time.perf_counter() - started) * 1000 / 20
        started = time.perf_counter()
        truth = [exact(store, v, documents) for v in vectors]
        exact_ms = (time.perf_counter() - started) * 1000 / len(vectors)
        print(
            f"\n{label} selectivity: {selection.chunks} chunks of {selection.total}"
            f" (Store.select {select_ms:.1f} ms; a scan of them all {exact_ms:.1f} ms a query)"
        )
        runs = strategies(store, spelled, selection, ef, budgets)
        for name, run in runs.items():
            run(vectors[0])  # warm the cache
            print(f"  {name:32} {measure(run, vectors, truth)}")
    collection_case(store, vectors, ef)
    return 0


def collection_case(store: Any, vectors: list[np.ndarray], ef: int) -> None:
    """A collection holding 1% of its dimension's index, searched with no filter."""
    selection = store.select(SMALL, DIMENSIONS, None)
    truth = [exact(store, v, None, SMALL) for v in vectors]
    print(f"\na collection of {selection.chunks} chunks of {selection.total}, no filter:")

    def hnsw(mode: str) -> Any:
        return lambda v: hnsw_only(store, v, None, mode, ef, collection=SMALL)

    def ragline(v: np.ndarray) -> list[int]:
        chosen = store.select(SMALL, DIMENSIONS, None)
        return [c.chunk_id for c in store.vector_search(SMALL, v, K, selection=chosen)]

    runs = {f"hnsw {mode}": hnsw(mode) for mode in ("relaxed_order", "strict_order", "off")}
    runs["ragline (select + search)"] = ragline
    for name, run in runs.items():
        run(vectors[0])
        print(f"  {name:32} {measure(run, vectors, truth)}")


if __name__ == "__main__":
    sys.exit(main())
