"""Search latency on the scale corpus: keyword, vector and hybrid search through ragline's
own retrieval code, at each of --sizes, with bytes per chunk, in one run (issue 23).

For each size n, the first n chunks embedded of the scale corpus (bench/scale_corpus.py,
read-only: a uniform sample of distinct chunks of the text on this machine, with their
real minilm-onnx vectors) go into a database of an embedded PostgreSQL holding every
migration: a document per file and the chunks by COPY, 2,000 to a statement, the BM25
triggers on (as an ingest keeps them), the HNSW index left out during the load and built
after it as ragline builds it (``Store.build_vector_index``: RAGLINE_HNSW_M,
RAGLINE_HNSW_EF_CONSTRUCTION), then VACUUM ANALYZE. A size beyond the chunks embedded
so far is refused before anything is loaded. ``--keep DIR`` keeps each size's database
under DIR and reuses it on the next run; without it, they are scratch.

Queries: the dev sets' questions of queries.jsonl and a seeded sample of its
passage-derived queries (--queries in all), their minilm-onnx query vectors computed
once beforehand (cached): the search is timed, not the model. Each query is sent as the
query function sends it (``Retriever.search``, the settings' fusion and weights, no
reranker) in each mode, keyword (BM25), vector (HNSW at the default ef_search) and
hybrid (its keyword half on a second thread, RAGLINE_HYBRID_PARALLEL, and one half after
the other), the modes taking turns per query, and each query's fastest of --repeat rounds
counts, so another process's burst on a shared machine does not set the percentiles.
Then bytes per chunk: the chunks table (heap and TOAST), its HNSW index, its other
indexes, and the BM25 tables. The load average is printed with each size.

The OR-of-words ``ts_rank_cd`` search that BM25 replaced is no longer timed: it scored
every chunk holding any query word, about 1 s a query at 100k chunks (2 s at p95), which
would make this bench minutes longer at 100k and hours at 1M.

    python bench/scale_corpus.py ...   # the corpus and its vectors (see that script)
    nice -n 10 python bench/search_latency.py --sizes 10000,100000 [--keep DIR]
        [--top-k 20] [--repeat 3] [--queries 400]

Figures, not a test: compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from scale_corpus import DEFAULT_OUT, embedded, read_chunks  # noqa: E402
from scale_store import (  # noqa: E402
    DIMENSIONS,
    MODEL,
    database,
    drop_database,
    embed_queries,
    load_queries,
    write_chunks,
)

COLLECTION = "scale"
MODES = ("keyword", "vector", "hybrid")
HNSW_INDEX = f"chunks_embedding_hnsw_{DIMENSIONS}"


def parse_sizes(text: str, available: int) -> list[int]:
    """The sizes of ``--sizes`` ("10000,100000"), each a positive number of chunks no
    larger than the ``available`` embedded so far; ValueError saying what is wrong."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(
            f"--sizes must be numbers of chunks separated by commas, not {text!r}"
        ) from None
    if not sizes or min(sizes) <= 0:
        raise ValueError(f"--sizes must be positive numbers of chunks, not {text!r}")
    beyond = [size for size in sizes if size > available]
    if beyond:
        raise ValueError(
            f"--sizes {', '.join(f'{s:,}' for s in beyond)}: only {available:,} chunks of the"
            " scale corpus are embedded so far (python bench/scale_corpus.py embed adds more)"
        )
    return sizes


def percentiles(samples: Sequence[float]) -> tuple[float, float]:
    """(p50, p95) of the samples: the median, and the sample at 95% of the sorted list
    (nearest rank)."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[round(0.95 * (len(ordered) - 1))]


def time_interleaved(
    runs: dict[str, Callable[[int], Any]],
    count: int,
    repeat: int,
    warm: int = 5,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Seconds per query and run: ``runs[name](n)`` sends query n. The first ``warm``
    queries go once untimed (caches, plans); then ``repeat`` rounds over the queries,
    each query sent by every run in turn, who goes first rotating, and each query's
    fastest round kept."""
    names = list(runs)
    for n in range(min(warm, count)):
        for name in names:
            runs[name](n)
    best = {name: [float("inf")] * count for name in names}
    for round_ in range(repeat):
        for n in range(count):
            shift = (n + round_) % len(names)
            for name in names[shift:] + names[:shift]:
                started = clock()
                runs[name](n)
                best[name][n] = min(best[name][n], clock() - started)
    return best


def bytes_per_chunk(conn: Any, n: int) -> dict[str, float]:
    """The chunks table (heap and TOAST), its HNSW index, its other indexes, and every
    BM25 table (rows, TOAST and indexes), each divided by the ``n`` chunks stored."""

    def value(query: str) -> float:
        return float(conn.execute(query).fetchone()[0] or 0)

    hnsw = value(
        "SELECT sum(pg_relation_size(i.indexrelid)) FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam"
        " WHERE i.indrelid = 'chunks'::regclass AND a.amname = 'hnsw'"
    )
    parts = {
        "chunks table": value("SELECT pg_table_size('chunks')"),
        "HNSW index": hnsw,
        "other chunk indexes": value("SELECT pg_indexes_size('chunks')") - hnsw,
        "BM25 tables": value(
            "SELECT sum(pg_total_relation_size(oid)) FROM pg_class"
            " WHERE relname LIKE 'bm25%' AND relkind IN ('r', 'm')"
        ),
    }
    per_chunk = {name: size / n for name, size in parts.items()}
    per_chunk["all"] = sum(per_chunk.values())
    return per_chunk


def load(store: Any, count: int) -> float:
    """The first ``count`` embedded scale chunks into the store's (empty) database,
    ready to search; seconds."""
    started = time.perf_counter()
    ids, vectors = embedded(DEFAULT_OUT, count)
    chunks = read_chunks(DEFAULT_OUT, ids)
    print(f"  read {count:,} chunks and vectors: {time.perf_counter() - started:.1f} s")
    store.defer_vector_index(DIMENSIONS)  # a bulk load: the index is built after it
    store.ensure_collection(COLLECTION, MODEL, DIMENSIONS)
    conn = store.connection()
    seconds = write_chunks(conn, COLLECTION, chunks, vectors)
    print(f"  COPY with BM25 upkeep: {seconds:.1f} s ({count / seconds:,.0f} chunks/s)")
    built = time.perf_counter()
    store.build_vector_index(DIMENSIONS)
    print(f"  HNSW index built: {time.perf_counter() - built:.1f} s")
    conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def loaded(store: Any, count: int) -> bool:
    """Whether a kept database holds exactly these chunks with their index."""
    conn = store.connection()
    held = conn.execute("SELECT count(*) FROM chunks WHERE collection = %s", (COLLECTION,))
    index = conn.execute("SELECT to_regclass(%s)", (HNSW_INDEX,)).fetchone()[0]
    return held.fetchone()[0] == count and index is not None


def precomputed_embedder(texts: list[str], vectors: np.ndarray) -> Any:
    """minilm-onnx as the query function holds it, answering from vectors computed
    beforehand (the same ``embed_query`` vectors): the search is timed, not the model."""
    from ragline.embeddings.base import Embedder, EmbeddingResult
    from ragline.embeddings.minilm_onnx import MiniLMOnnxEmbedder

    by_text = dict(zip(texts, vectors, strict=True))

    class Precomputed(Embedder):
        name = MiniLMOnnxEmbedder.name
        fusion_weight = MiniLMOnnxEmbedder.fusion_weight

        def embed_batch(self, batch: list[str]) -> EmbeddingResult:
            return EmbeddingResult(np.vstack([by_text[t] for t in batch]), 0, True)

    return Precomputed(DIMENSIONS)


def measure(store: Any, embedder: Any, texts: list[str], top_k: int, repeat: int) -> None:
    from ragline.retrieval import Retriever

    settings = store.settings
    retrievers = {
        parallel: Retriever(
            store,
            embedder,
            fusion=settings.fusion,
            vector_weight=settings.fusion_vector_weight,
            parallel=parallel,
        )
        for parallel in (True, False)
    }

    def run(mode: str) -> Callable[[int], Any]:
        retriever = retrievers[mode != "hybrid, one after the other"]
        kind = mode.split(",")[0]
        return lambda n: retriever.search(texts[n], collection=COLLECTION, top_k=top_k, mode=kind)

    modes = (*MODES, "hybrid, one after the other")
    times = time_interleaved({mode: run(mode) for mode in modes}, len(texts), repeat)
    labels = {
        "keyword": "keyword (BM25)",
        "vector": f"vector (HNSW, ef_search {settings.hnsw_ef_search})",
        "hybrid": f"hybrid ({settings.fusion} fusion, in parallel)",
        "hybrid, one after the other": "hybrid, one half after the other",
    }
    print(f"  {'search':40} {'p50 ms':>8} {'p95 ms':>8}")
    for mode in modes:
        p50, p95 = percentiles(times[mode])
        print(f"  {labels[mode]:40} {p50 * 1000:8.2f} {p95 * 1000:8.2f}", flush=True)


def report(store: Any, embedder: Any, texts: list[str], size: int, top_k: int, repeat: int) -> None:
    one, five, fifteen = os.getloadavg()
    print(f"  load average {one:.2f} {five:.2f} {fifteen:.2f}")
    measure(store, embedder, texts, top_k, repeat)
    one, five, fifteen = os.getloadavg()
    print(f"  load average after {one:.2f} {five:.2f} {fifteen:.2f}")
    per_chunk = bytes_per_chunk(store.connection(), size)
    print("  bytes per chunk: " + ", ".join(f"{k} {v:,.0f}" for k, v in per_chunk.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="chunks, comma-separated")
    parser.add_argument("--keep", type=Path, help="keep (and reuse) each size's database here")
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--queries", type=int, default=400, help="dev questions + passages")
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--cache", type=Path, default=ROOT / ".ragline" / "bench-search-latency",
                        help="where the queries' vectors are cached")  # fmt: skip
    args = parser.parse_args()
    if args.top_k <= 0 or args.repeat <= 0 or args.queries <= 0:
        parser.error("--top-k, --repeat and --queries must be positive")
    available = json.loads((DEFAULT_OUT / "progress.json").read_text())["done"]
    try:
        sizes = parse_sizes(args.sizes, available)
    except ValueError as exc:
        parser.error(str(exc))
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    from ragline.config import Settings
    from ragline.store import Store

    asked = load_queries(DEFAULT_OUT, args.queries, args.seed)
    texts = [q["question"] for q in asked]
    embedder = precomputed_embedder(texts, embed_queries(args.cache, asked))
    dev = sum(q["kind"] == "dev" for q in asked)
    print(f"{len(asked)} queries ({dev} dev-set questions, {len(asked) - dev} passage-derived),"
          f" top {args.top_k}, fastest of {args.repeat} per query;"
          f" {available:,} chunks embedded so far")  # fmt: skip
    for size in sizes:
        name = f"search_latency_{size}"
        print(f"\n== {size:,} chunks (a uniform sample of the scale corpus, minilm-onnx) ==")
        for _attempt in range(2):
            with database(name, args.keep) as (url, existed):
                store = Store(Settings.from_env().with_overrides(database_url=url))
                if existed and not loaded(store, size):
                    print(f"  the database kept in {args.keep} is incomplete: loading it again")
                    store.database.close()
                    drop_database(name, args.keep)
                    continue
                if existed:
                    print(f"  reusing the database kept in {args.keep}")
                else:
                    print(f"  loaded in {load(store, size):.0f} s")
                report(store, embedder, texts, size, args.top_k, args.repeat)
                store.database.close()
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
