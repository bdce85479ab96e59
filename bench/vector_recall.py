"""Vector search on real MiniLM vectors: recall@10 against exact search and latency per
HNSW ef_search, ragline beside its peers, and bytes per chunk, float32 against halfvec.

The collection is a uniform sample of the scale corpus (bench/scale_corpus.py: distinct
chunks of text on this machine, their minilm-onnx vectors cached as float16): the first
n chunks of its seeded order, for each n of ``--sizes`` (capped at what is embedded so
far; the count used is printed). Each is written straight into the tables with COPY, text
and all, as an ingest would leave them (the BM25 upkeep triggers off: keyword search is
not measured here), then its HNSW index is built once (m 16, ef_construction 64).

Queries: every dev-set question of queries.jsonl and a seeded sample of its
passage-derived queries, embedded with minilm-onnx (cached beside the data). The exact
top 10 of each is computed in numpy over the stored vectors; a result counts when its
distance is within the 10th exact one (ties between near-duplicates are not misses).

For each ef_search the systems run one query after another, interleaved, so they share
the machine's load:

* ``ragline``: ``Store.vector_search`` (halfvec, the chunks table, rows and all);
* ``pg halfvec``: the same index by plain SQL (nearest ids only, no ragline code);
* ``pg float32``: plain SQL on a copy of the chunks table whose column is vector (the
  schema before migration 0011) with its own vector HNSW index;
* ``faiss``: faiss IndexHNSWFlat (float32, M 16, efConstruction 64, efSearch = ef_search),
  inner product over the normalized vectors (cosine);
* ``pg binary``: pgvector's binary quantization, an HNSW index over the sign bits
  (``binary_quantize``, Hamming), its ef_search nearest re-scored by cosine on the
  stored halfvec (not what ragline runs: measured to see whether it earns its place).

Printed as recall@10, p50 and p95 ms, and ragline's time divided by the peer's. Then
bytes per chunk: the chunks table and its HNSW index as float32 and as halfvec, and the
binary index; binary quantization's ceiling (the exact Hamming top N re-scored by
cosine, in numpy: what a perfect binary index would give); half precision's own recall cost
(exact search over the stored values against float32 originals drawn within half an ulp
of them: the cache keeps float16); and the exact-scan cliff check: ragline at
ef_search 1000 at the smallest size, and the same statement with sorting allowed (the
plan before the fix). Figures, not a test: the machine is shared, compare within a run.

    python bench/vector_recall.py [--sizes 10000,100000] [--ef 40,100,200,400]
        [--queries 400] [--data-dir .ragline/bench-vector-recall]
        [--build-memory 1GB] [--skip float32,binary,migration,ceilings]
    (needs the bench extra: pip install -e ".[bench]")
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from scale_corpus import DEFAULT_OUT, embedded, read_chunks  # noqa: E402
from scale_store import database, embed_queries, load_queries, write_chunks  # noqa: E402

COLLECTION = "vector-recall"
MODEL = "minilm-onnx"
DIMENSIONS = 384
K = 10
TIE = 1e-4  # distances this close to the 10th exact one count as found (half precision)
F32 = "bench_chunks_f32"
# What --skip may leave out: the float32 copy and its index (pg float32, and migration
# 0011's cost, which rewrites that copy), the binary index (pg binary) and binary
# quantization's numpy ceiling, the half-precision check, and faiss (minutes to build).
OPTIONAL = ("float32", "binary", "migration", "ceilings", "faiss")
BUILD_MEMORY = "1GB"  # maintenance_work_mem of every index build (--build-memory)


def exact_top(stored: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Cosine distances of the exact top K per query, nearest first: (queries, K)."""
    norms = np.linalg.norm(stored, axis=1)
    distances = []
    for start in range(0, len(queries), 64):
        q = queries[start : start + 64]
        sims = (q @ stored.T) / np.outer(np.linalg.norm(q, axis=1), norms)
        top = np.partition(-sims, K, axis=1)[:, :K]
        distances.append(np.sort(1.0 + top, axis=1))
    return np.vstack(distances)


def recall(found: list[float], truth: np.ndarray) -> float:
    bound = float(truth[-1]) + TIE
    return sum(d <= bound for d in found[:K]) / K


def load(store: Any, ids: np.ndarray, vectors: np.ndarray, float32: bool = True) -> float:
    """Write the sample into chunks (and its float32 copy, with ``float32``) unless it is
    there; seconds."""

    conn = store.connection()
    held = conn.execute("SELECT count(*) FROM chunks WHERE collection = %s", (COLLECTION,))
    if held.fetchone()[0] == len(ids):
        return 0.0
    started = time.perf_counter()
    store.ensure_collection(COLLECTION, MODEL, DIMENSIONS)
    chunks = read_chunks(DEFAULT_OUT, ids)
    with conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")  # no BM25 upkeep
        conn.execute("DELETE FROM chunks WHERE collection = %s", (COLLECTION,))
        conn.execute("DELETE FROM documents WHERE collection = %s", (COLLECTION,))
        conn.execute(f"DROP INDEX IF EXISTS chunks_embedding_hnsw_{DIMENSIONS}")
        conn.execute(f"DROP TABLE IF EXISTS {F32}")
        write_chunks(conn, COLLECTION, chunks, vectors, model=MODEL)
    if float32:
        float32_copy(conn)
    conn.execute(f"SET maintenance_work_mem = '{BUILD_MEMORY}'")
    built = time.perf_counter()
    store.build_vector_index(DIMENSIONS)
    print(f"  HNSW build: halfvec {time.perf_counter() - built:.1f} s")
    if float32:
        built = time.perf_counter()
        conn.execute(
            f"CREATE INDEX {F32}_hnsw ON {F32} USING hnsw ((embedding::vector({DIMENSIONS}))"
            f" vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
        )
        print(f"  HNSW build: float32 {time.perf_counter() - built:.1f} s")
        conn.execute(f"ANALYZE {F32}")
    conn.execute("ANALYZE chunks")
    return time.perf_counter() - started


def float32_copy(conn: Any) -> None:
    """The schema before 0011: the same rows with a float32 column."""
    with conn.transaction():
        conn.execute(f"CREATE TABLE {F32} (LIKE chunks INCLUDING DEFAULTS INCLUDING GENERATED)")
        conn.execute(f"ALTER TABLE {F32} ALTER COLUMN embedding TYPE vector")
        conn.execute(
            f"INSERT INTO {F32} (id, document_id, collection, ordinal, section, text,"
            " token_count, metadata, dimensions, embedding) SELECT id, document_id, collection,"
            " ordinal, section, text, token_count, metadata, dimensions, embedding::vector"
            " FROM chunks WHERE collection = %s",
            (COLLECTION,),
        )


def sizes(store: Any) -> dict[str, float]:
    conn = store.connection()

    def size(expression: str) -> float:
        return float(conn.execute(f"SELECT {expression}").fetchone()[0])

    def relation(name: str) -> float:  # 0 when it was not built (--skip)
        return size(f"coalesce(pg_relation_size(to_regclass('{name}')), 0)")

    n = size(f"count(*) FROM chunks WHERE collection = '{COLLECTION}'")
    found = {
        "halfvec table": size("pg_table_size('chunks')") / n,
        "halfvec HNSW": relation(f"chunks_embedding_hnsw_{DIMENSIONS}") / n,
        "halfvec column": size(
            f"avg(pg_column_size(embedding)) FROM chunks WHERE collection = '{COLLECTION}'"
        ),
        "other chunk indexes": (
            size("pg_indexes_size('chunks')")
            - relation(f"chunks_embedding_hnsw_{DIMENSIONS}")
            - relation(BINARY)
        )
        / n,
    }
    if relation(BINARY):
        found["binary HNSW"] = relation(BINARY) / n
    if relation(F32):
        found["float32 table"] = size(f"pg_table_size('{F32}')") / n
        found["float32 HNSW"] = relation(f"{F32}_hnsw") / n
        found["float32 column"] = size(f"avg(pg_column_size(embedding)) FROM {F32}")
    return found


BINARY = f"chunks_binary_hnsw_{DIMENSIONS}"


def binary_index(store: Any) -> None:
    """pgvector's binary quantization: an HNSW index over the sign bits (Hamming)."""
    conn = store.connection()
    if conn.execute("SELECT to_regclass(%s)", (BINARY,)).fetchone()[0] is None:
        started = time.perf_counter()
        conn.execute(f"SET maintenance_work_mem = '{BUILD_MEMORY}'")
        conn.execute(
            f"CREATE INDEX {BINARY} ON chunks USING hnsw ((binary_quantize(embedding)"
            f"::bit({DIMENSIONS})) bit_hamming_ops) WITH (m = 16, ef_construction = 64)"
            f" WHERE dimensions = {DIMENSIONS}"
        )
        print(f"  binary HNSW build: {time.perf_counter() - started:.1f} s")


def rescored(conn: Any) -> Any:
    """ef_search candidates by Hamming distance through the binary index, re-scored by
    cosine on the stored halfvec: the top 10."""
    query = (
        f"SELECT embedding::halfvec({DIMENSIONS}) <=> %(q)s::halfvec({DIMENSIONS}) AS d FROM ("
        f" SELECT embedding FROM chunks WHERE dimensions = {DIMENSIONS} AND collection = %(c)s"
        f" ORDER BY binary_quantize(embedding)::bit({DIMENSIONS})"
        f" <~> binary_quantize(%(q)s::halfvec({DIMENSIONS}))::bit({DIMENSIONS}) LIMIT %(n)s) c"
        f" ORDER BY d LIMIT {K}"
    )

    def run(vector: np.ndarray, candidates: int) -> list[float]:
        params = {"q": vector, "c": COLLECTION, "n": candidates}
        return [float(r[0]) for r in conn.execute(query, params, prepare=True)]

    return run


def raw(conn: Any, table: str, cast: str) -> Any:
    query = (
        f"SELECT embedding::{cast}({DIMENSIONS}) <=> %(q)s::{cast}({DIMENSIONS}) AS d"
        f" FROM {table} WHERE dimensions = {DIMENSIONS} AND collection = %(c)s"
        f" ORDER BY embedding::{cast}({DIMENSIONS}) <=> %(q)s::{cast}({DIMENSIONS}) LIMIT {K}"
    )

    def run(vector: np.ndarray) -> list[float]:
        return [
            float(r[0]) for r in conn.execute(query, {"q": vector, "c": COLLECTION}, prepare=True)
        ]

    return run


def measure(
    store: Any,
    faiss_index: Any,
    queries: np.ndarray,
    truth: np.ndarray,
    ef_values: list[int],
    skip: set[str] = frozenset(),  # type: ignore[assignment]
) -> None:
    raw_conn = store.connection()  # plain SQL outside a transaction: session settings

    def ragline(v: np.ndarray, ef: int) -> list[float]:
        return [1.0 - r.similarity for r in store.vector_search(COLLECTION, v, K, ef_search=ef)]

    half = raw(raw_conn, "chunks", "halfvec")

    def faiss_search(v: np.ndarray, ef: int) -> list[float]:
        faiss_index.hnsw.efSearch = ef
        scores, _ = faiss_index.search((v / np.linalg.norm(v))[None, :], K)
        return [1.0 - float(s) for s in scores[0]]

    systems = {"ragline": ragline, "pg halfvec": lambda v, ef: half(v)}
    if "float32" not in skip:
        full = raw(raw_conn, F32, "vector")
        systems["pg float32"] = lambda v, ef: full(v)
    if faiss_index is not None:
        systems["faiss"] = faiss_search
    if "binary" not in skip:
        systems["pg binary"] = rescored(raw_conn)  # ef_search candidates re-scored
    print(f"  {'system':<11} {'ef':>4} {'recall@10':>9} {'p50 ms':>7} {'p95 ms':>7}"
          f"  {'ragline ÷ system (p50 / p95)':>28}")  # fmt: skip
    for ef in ef_values:
        raw_conn.execute(f"SET hnsw.ef_search = {ef}")
        for v in queries[:20]:  # warm caches and plans
            for run in systems.values():
                run(v, ef)
        times: dict[str, list[float]] = {name: [] for name in systems}
        recalls: dict[str, list[float]] = {name: [] for name in systems}
        for n, (v, t) in enumerate(zip(queries, truth, strict=True)):
            names = list(systems)
            names = names[n % len(names) :] + names[: n % len(names)]  # rotate who goes first
            for name in names:
                started = time.perf_counter()
                found = systems[name](v, ef)
                times[name].append((time.perf_counter() - started) * 1000)
                recalls[name].append(recall(found, t))
        cuts = {name: statistics.quantiles(times[name], n=100) for name in systems}
        base = cuts["ragline"]
        for name in systems:
            c = cuts[name]
            ratio = (
                "" if name == "ragline" else f"{base[49] / c[49]:.2f}x / {base[94] / c[94]:.2f}x"
            )
            print(f"  {name:<11} {ef:>4} {statistics.fmean(recalls[name]):>9.3f}"
                  f" {c[49]:>7.2f} {c[94]:>7.2f}  {ratio:>28}", flush=True)  # fmt: skip
    raw_conn.execute("RESET hnsw.ef_search")


def cliff(store: Any, queries: np.ndarray) -> None:
    """ragline at ef_search 1000, and its statement planned with sorting allowed (before
    the fix): the plan each takes and its latency."""
    from psycopg import sql
    from ragline.store.search import HNSW_SETTINGS, hnsw_settings, nearest_query

    conn = store.connection()
    query = nearest_query(DIMENSIONS, exact=False, documents=False)
    for label, sort in (("ragline (enable_sort off)", "off"), ("sorting allowed (before)", "on")):
        latencies, plan = [], ""
        for v in queries[:60]:
            params = {"q": v, "c": COLLECTION, "k": K, "docs": None}
            with conn.transaction():
                conn.execute(HNSW_SETTINGS, hnsw_settings(1000, K, 20000, "relaxed_order"))
                conn.execute(f"SET LOCAL enable_sort = {sort}")
                if not plan:
                    text = " ".join(r[0] for r in conn.execute(sql.SQL("EXPLAIN ") + query, params))
                    plan = "hnsw walk" if "hnsw" in text else "seq scan + sort"
                started = time.perf_counter()
                conn.execute(query, params).fetchall()
                latencies.append((time.perf_counter() - started) * 1000)
        cuts = statistics.quantiles(latencies, n=100)
        print(f"  ef_search 1000, {label}: {plan}, p50 {cuts[49]:.1f} ms, p95 {cuts[94]:.1f} ms")


def migration_cost(store: Any) -> None:
    """What migration 0011 costs this collection: the float32 copy's column rewritten to
    halfvec and its HNSW index rebuilt, in a transaction rolled back afterwards."""
    conn = store.connection()
    started = time.perf_counter()
    with conn.transaction(force_rollback=True):
        conn.execute(f"SET LOCAL maintenance_work_mem = '{BUILD_MEMORY}'")
        conn.execute(f"DROP INDEX {F32}_hnsw")
        conn.execute(
            f"ALTER TABLE {F32} ALTER COLUMN embedding TYPE halfvec USING embedding::halfvec"
        )
        rewritten = time.perf_counter() - started
        conn.execute(
            f"CREATE INDEX {F32}_hnsw ON {F32} USING hnsw ((embedding::halfvec({DIMENSIONS}))"
            f" halfvec_cosine_ops) WITH (m = 16, ef_construction = 64)"
        )
        seconds = time.perf_counter() - started
    print(
        f"  migration 0011 on this collection: rewrite {rewritten:.1f} s,"
        f" with the index rebuilt {seconds:.1f} s (maintenance_work_mem {BUILD_MEMORY})"
    )


def binary_quantization(stored: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> None:
    """recall@10 after exact Hamming top-N on sign bits, re-scored by cosine."""
    bits = np.packbits(stored > 0, axis=1)
    unit = stored / np.linalg.norm(stored, axis=1, keepdims=True)
    popcount = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1)
    depths = (40, 100, 200, 400, 1000)
    scores: dict[int, list[float]] = {n: [] for n in depths}
    for v, t in zip(queries, truth, strict=True):
        hamming = popcount[np.bitwise_xor(bits, np.packbits(v > 0))].sum(axis=1)
        order = np.argsort(hamming, kind="stable")
        for n in depths:
            top = order[:n]
            d = np.sort(1.0 - unit[top] @ (v / np.linalg.norm(v)))[:K]
            scores[n].append(recall(list(d), t))
    line = [f"{n}: {statistics.fmean(scores[n]):.3f}" for n in depths]
    print(f"  binary (sign bits, exact Hamming top N, re-scored): {', '.join(line)}")


def half_precision_cost(stored: np.ndarray, queries: np.ndarray, seed: int) -> None:
    """Recall@10 of exact search over the half-precision values against float32
    originals drawn uniformly within half an ulp of each (what rounding could have lost)."""
    half = stored.astype(np.float16)
    spacing = np.spacing(half).astype(np.float32)
    rng = np.random.default_rng(seed)
    original = stored + (rng.random(stored.shape, dtype=np.float32) - 0.5) * spacing
    truth = exact_top(original, queries)
    unit = stored / np.linalg.norm(stored, axis=1, keepdims=True)
    o_unit = original / np.linalg.norm(original, axis=1, keepdims=True)
    kept = []
    for v, t in zip(queries, truth, strict=True):
        q16 = v.astype(np.float16).astype(np.float32)
        top = np.argsort(1.0 - unit @ (q16 / np.linalg.norm(q16)))[:K]
        # the found chunks' distances under the float32 originals, the full query
        d = np.sort(1.0 - o_unit[top] @ (v / np.linalg.norm(v)))
        kept.append(recall(list(d), t))
    print(f"  half precision alone (exact search, stored and query rounded): recall@10"
          f" {statistics.fmean(kept):.4f}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".ragline" / "bench-vector-recall")
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--ef", default="40,100,200,400")
    parser.add_argument("--queries", type=int, default=400, help="dev questions + passages")
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument(
        "--build-memory", default="1GB",
        help="maintenance_work_mem for each HNSW build (a 1M-chunk graph needs over 1GB)",
    )  # fmt: skip
    parser.add_argument(
        "--skip", default="",
        help=f"parts left out, comma-separated, of: {', '.join(OPTIONAL)} (each is minutes"
        " at 1M chunks: an index build, or numpy over every vector per query)",
    )  # fmt: skip
    parser.add_argument(
        "--search-latency-keep", type=Path, metavar="DIR",
        help="measure on the databases bench/search_latency.py --keep DIR kept (a size's"
        " 'scale' collection, the same first n chunks with BM25 and the HNSW index ragline"
        " builds): nothing is loaded or built here, and float32, binary and migration are"
        " left out (a million chunks loads and indexes once for both benches)",
    )  # fmt: skip
    args = parser.parse_args()
    skip = {part.strip() for part in args.skip.split(",") if part.strip()}
    if skip - set(OPTIONAL):
        parser.error(
            f"--skip takes {', '.join(OPTIONAL)}, not {', '.join(sorted(skip - set(OPTIONAL)))}"
        )
    global BUILD_MEMORY, COLLECTION
    BUILD_MEMORY = args.build_memory
    if args.search_latency_keep is not None:
        skip |= {"float32", "binary", "migration"}
        COLLECTION = "scale"  # bench/search_latency.py's
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    import faiss
    from ragline.config import Settings
    from ragline.store import Store

    faiss.omp_set_num_threads(1)  # one query on one core, as PostgreSQL answers it
    args.data_dir.mkdir(parents=True, exist_ok=True)
    available = json.loads((DEFAULT_OUT / "progress.json").read_text())["done"]
    asked = load_queries(DEFAULT_OUT, args.queries, args.seed)
    queries = embed_queries(args.data_dir, asked)
    dev = sum(q["kind"] == "dev" for q in asked)
    print(f"{len(asked)} queries ({dev} dev-set questions, {len(asked) - dev} passage-derived);"
          f" {available:,} chunks embedded so far")  # fmt: skip
    ef_values = [int(v) for v in args.ef.split(",")]
    for n, wanted in enumerate(int(s) for s in args.sizes.split(",")):
        count = min(wanted, available)
        ids, vectors = embedded(DEFAULT_OUT, count)
        print(f"\n== {count:,} chunks (a uniform sample of the scale corpus) ==")
        if args.search_latency_keep is not None:
            name = f"search_latency_{wanted}"
            with database(name, args.search_latency_keep) as (url, existed):
                store = Store(Settings.from_env().with_overrides(database_url=url))
                held = store.connection().execute(
                    "SELECT count(*) FROM chunks WHERE collection = %s", (COLLECTION,)
                )
                if not existed or (held.fetchone() or [0])[0] != count:
                    parser.error(
                        f"{args.search_latency_keep} keeps no complete {name}: run"
                        f" bench/search_latency.py --sizes {wanted} --keep first"
                    )
                options = store.connection().execute(
                    "SELECT reloptions FROM pg_class WHERE relname = %s",
                    (f"chunks_embedding_hnsw_{DIMENSIONS}",),
                )
                print(
                    f"  the database bench/search_latency.py kept in {args.search_latency_keep},"
                    f" its HNSW index built with {(options.fetchone() or [None])[0] or 'defaults'}"
                )
                one_size(store, n, count, vectors, queries, ef_values, skip, args.seed)
                store.database.close()
            continue
        settings = Settings.from_env().with_overrides(
            data_dir=args.data_dir / f"n{wanted}", database_url=None, embeddings="hash"
        )
        store = Store(settings)
        seconds = load(store, ids, np.asarray(vectors, dtype=np.float32), "float32" not in skip)
        if seconds:
            print(f"  loaded by COPY, indexes built: {seconds:.0f} s")
        if "binary" not in skip:
            binary_index(store)
        one_size(store, n, count, vectors, queries, ef_values, skip, args.seed)
    return 0


def one_size(
    store: Any,
    n: int,
    count: int,
    vectors: Any,
    queries: np.ndarray,
    ef_values: list[int],
    skip: set[str],
    seed: int,
) -> None:
    """Every measure of one size, on its loaded and indexed collection."""
    import faiss

    stored = np.asarray(vectors, dtype=np.float32)  # exactly the halfvec values stored
    truth = exact_top(stored, queries)
    faiss_index = None
    if "faiss" not in skip:
        faiss_index = faiss.IndexHNSWFlat(DIMENSIONS, 16, faiss.METRIC_INNER_PRODUCT)
        faiss_index.hnsw.efConstruction = 64
        started = time.perf_counter()
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # the build on every core, as PostgreSQL's
        faiss_index.add(stored / np.linalg.norm(stored, axis=1, keepdims=True))
        faiss.omp_set_num_threads(1)
        print(f"  faiss HNSW build: {time.perf_counter() - started:.1f} s")
    measure(store, faiss_index, queries, truth, ef_values, skip)
    per_chunk = sizes(store)
    print("  bytes per chunk: " + ", ".join(f"{k} {v:,.0f}" for k, v in per_chunk.items()))
    if faiss_index is not None:
        held = faiss.serialize_index(faiss_index).nbytes / count
        print(f"  faiss HNSW (in memory, float32): {held:,.0f}")
    if "ceilings" not in skip:
        binary_quantization(stored, queries, truth)
        half_precision_cost(stored, queries, seed)
    if not {"float32", "migration"} & skip:
        migration_cost(store)
    if n == 0:
        cliff(store, queries)


if __name__ == "__main__":
    sys.exit(main())
