"""Vector recall against exact search, and its latency, per HNSW ef_search (and build).

Builds, or reuses from ``--data-dir``, a collection of about ``--chunks`` chunks in the
embedded PostgreSQL: the Python docs (../shared/corpora/python-docs, about 10k chunks)
ingested with the ``hash`` embedder through the real pipeline, then again as perturbed
replicas until the count is reached. Replica r > 0 of a document has a share
(``--perturb``) of its words replaced by other words of the same document, so every
chunk has near-duplicates, as versioned or mirrored documentation has.

Queries are the evaluation questions (../shared/eval/*.jsonl) and a seeded sample of
chunk texts. For each, the exact top 10 comes from a sequential scan (index scans off);
then, for each ef_search, ``Store.vector_search`` runs every query and the script prints
recall@10 against exact (a result counts when its distance is within the 10th exact
distance, so ties between duplicates are not misses), the share of queries whose exact
nearest chunk is among the results, and p50/p95 latency. ``--builds m:ef_construction,...``
rebuilds the index with those parameters and prints its build time, size and curve.
Figures, not a test: the machine is shared, so compare within one run.

    python bench/vector_recall.py [--data-dir .ragline/bench-vector-recall] [--chunks 100000]
        [--ef 40,64,100,200,400,800] [--builds 16:64,32:128] [--shared-buffers 1GB]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
COLLECTION = "vector-recall"
EXACT_K = 10
TIE = 1e-6  # distances this close to the 10th exact one count as found
_WORD = re.compile(r"^[A-Za-z]{3,}$")


def perturbed(text: str, share: float, rng: random.Random) -> str:
    """``text`` with ``share`` of its plain words replaced by other words of the text.

    Lines and markup stay where they are, so the document parses and chunks like the
    original; only the words differ, as in a revised copy.
    """
    lines = text.split("\n")
    vocabulary = sorted({w for line in lines for w in line.split(" ") if _WORD.match(w)})
    if not vocabulary:
        return text
    out = []
    for line in lines:
        words = line.split(" ")
        for i, word in enumerate(words):
            if _WORD.match(word) and rng.random() < share:
                words[i] = rng.choice(vocabulary)
        out.append(" ".join(words))
    return "\n".join(out)


def build(ingestor: Any, corpus: Path, target: int, share: float) -> tuple[int, float]:
    """Ingest replicas of the corpus until the collection holds ``target`` chunks.

    Re-running resumes: documents already stored with the same content are unchanged.
    Returns the chunk count and the seconds spent ingesting (0 when nothing was needed).
    """
    files = sorted(p for p in corpus.rglob("*.txt") if p.is_file())
    started = time.perf_counter()
    replica, count = 0, _count(ingestor.store)
    while count < target:
        stored = 0
        for path in files:
            rel = path.relative_to(corpus).as_posix()
            text = path.read_text(encoding="utf-8", errors="replace")
            if replica:
                text = perturbed(text, share, random.Random(f"{replica}/{rel}"))
            try:
                result = ingestor.ingest_bytes(
                    f"bench://replica-{replica}/{rel}",
                    text.encode(),
                    name=path.name,
                    collection=COLLECTION,
                )
                stored += result.status == "ingested"
            except Exception as exc:  # a document that fails is left out, not a crash
                print(f"  {rel}: {type(exc).__name__}", file=sys.stderr)
        replica += 1
        count = _count(ingestor.store)
        if stored:
            elapsed = time.perf_counter() - started
            print(f"  replica {replica - 1}: {count} chunks, {elapsed:.0f} s", flush=True)
        elif replica > 1000:
            raise SystemExit("the corpus yields no chunks")
    return count, (time.perf_counter() - started) if replica else 0.0


def _count(store: Any) -> int:
    row = (
        store.connection()
        .execute("SELECT count(*) FROM chunks WHERE collection = %s", (COLLECTION,))
        .fetchone()
    )
    return int(row[0])


def queries(store: Any, eval_dir: Path, sample: int, seed: int) -> list[tuple[str, str]]:
    """(kind, text): every evaluation question, then a seeded sample of chunk texts."""
    found = [
        ("question", json.loads(line)["question"])
        for path in sorted(eval_dir.glob("*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    rows = (
        store.connection()
        .execute(
            "SELECT text FROM chunks WHERE collection = %s ORDER BY md5(id::text || %s) LIMIT %s",
            (COLLECTION, str(seed), sample),
        )
        .fetchall()
    )
    return found + [("chunk", row[0]) for row in rows]


def exact_neighbours(store: Any, vector: Any) -> list[tuple[int, float]]:
    """The exact top 10 (id, cosine distance): a sequential scan, the index switched off."""
    from psycopg import sql

    dims = sql.Literal(int(vector.shape[0]))
    conn = store.connection()
    with conn.transaction():
        conn.execute("SET LOCAL enable_indexscan = off")
        conn.execute("SET LOCAL enable_bitmapscan = off")
        rows = conn.execute(
            sql.SQL(
                "SELECT id, embedding::vector({dims}) <=> %s::vector({dims}) AS distance"
                " FROM chunks WHERE dimensions = {dims} AND collection = %s"
                " ORDER BY distance, id LIMIT %s"
            ).format(dims=dims),
            (vector, COLLECTION, EXACT_K),
        ).fetchall()
    return [(int(r[0]), float(r[1])) for r in rows]


def index_name(dimensions: int) -> str:
    return f"chunks_embedding_hnsw_{dimensions}"


def index_info(store: Any, dimensions: int) -> tuple[str, int]:
    """The index's definition and its size in bytes."""
    row = (
        store.connection()
        .execute(
            "SELECT pg_get_indexdef(c.oid), pg_relation_size(c.oid) FROM pg_class c"
            " WHERE c.relname = %s",
            (index_name(dimensions),),
        )
        .fetchone()
    )
    return (row[0], int(row[1])) if row else ("(none)", 0)


def rebuild(store: Any, dimensions: int, m: int, ef_construction: int) -> float:
    """Drop and build the dimension's HNSW index with these parameters; return seconds."""
    from psycopg import sql

    conn = store.connection()
    conn.execute("SET maintenance_work_mem = '1GB'")  # the whole graph fits: no spill
    conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(index_name(dimensions))))
    started = time.perf_counter()
    conn.execute(
        sql.SQL(
            "CREATE INDEX {index} ON chunks USING hnsw ((embedding::vector({dims}))"
            " vector_cosine_ops) WITH (m = {m}, ef_construction = {efc})"
            " WHERE dimensions = {dims}"
        ).format(
            index=sql.Identifier(index_name(dimensions)),
            dims=sql.Literal(dimensions),
            m=sql.Literal(m),
            efc=sql.Literal(ef_construction),
        )
    )
    seconds = time.perf_counter() - started
    conn.execute("ANALYZE chunks")
    return seconds


def plan(store: Any, vector: Any, ef_search: int) -> str:
    """Which scan the planner picks for the search's nearest-chunks statement at this
    ef_search, under the settings the search sets.

    pgvector costs an HNSW scan by its ef_search, so past some value the planner would
    prefer a sequential scan (exact, but as slow as the exact search above) had the
    search not kept the walk the plan (``ragline.store.search.HNSW_SETTINGS``).
    """
    from psycopg import sql
    from ragline.store.search import HNSW_SETTINGS, hnsw_settings, nearest_query

    conn = store.connection()
    with conn.transaction():
        conn.execute(HNSW_SETTINGS, hnsw_settings(ef_search, EXACT_K, 20000, "relaxed_order"))
        rows = conn.execute(
            sql.SQL("EXPLAIN ") + nearest_query(int(vector.shape[0]), exact=False, documents=False),
            {"q": vector, "c": COLLECTION, "k": EXACT_K, "docs": None},
        ).fetchall()
    text = " ".join(row[0] for row in rows)
    return "hnsw" if "hnsw" in text else "seq" if "Seq Scan" in text else "other"


def curve(
    store: Any,
    vectors: list[Any],
    exact: list[list[tuple[int, float]]],
    ef_values: list[int],
    repeats: int,
) -> None:
    """Print recall@10, nearest-found share and latency for each ef_search."""
    print(f"  {'ef_search':>9} {'recall@10':>9} {'nn found':>8} {'p50 ms':>7} {'p95 ms':>7}  plan")
    for ef in ef_values:
        for vector in vectors[:20]:  # warm the cache and the plan
            store.vector_search(COLLECTION, vector, EXACT_K, ef_search=ef)
        recalls, nearest, latencies = [], 0, []
        for vector, truth in zip(vectors, exact, strict=True):
            for _ in range(repeats):
                started = time.perf_counter()
                results = store.vector_search(COLLECTION, vector, EXACT_K, ef_search=ef)
                latencies.append((time.perf_counter() - started) * 1000)
            distances = [1.0 - float(r.similarity) for r in results]
            bound = truth[-1][1] + TIE
            recalls.append(sum(d <= bound for d in distances) / len(truth))
            nearest += any(d <= truth[0][1] + TIE for d in distances)
        cuts = statistics.quantiles(latencies, n=100)
        print(
            f"  {ef:>9} {statistics.fmean(recalls):>9.3f} {nearest / len(vectors):>8.1%}"
            f" {cuts[49]:>7.2f} {cuts[94]:>7.2f}  {plan(store, vectors[0], ef)}",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".ragline" / "bench-vector-recall")
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpora" / "python-docs")
    parser.add_argument("--eval-dir", type=Path, default=SHARED / "eval")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--perturb", type=float, default=0.1, help="share of words replaced")
    parser.add_argument("--sample", type=int, default=300, help="chunk texts used as queries")
    parser.add_argument("--ef", default="40,64,100,200,400,800")
    parser.add_argument("--builds", default="", help="m:ef_construction pairs to rebuild with")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per query")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument(
        "--shared-buffers",
        default="",
        help="e.g. 1GB: the embedded server's buffer cache from this run on (an existing"
        " data dir) or the next (a new one); the default 128MB holds less than the index",
    )
    args = parser.parse_args()
    settings_file = args.data_dir / "pgdata" / "postgresql.auto.conf"
    if args.shared_buffers and settings_file.exists():  # read when the server starts
        kept = [
            line
            for line in settings_file.read_text().splitlines()
            if not line.startswith("shared_buffers")
        ]
        kept.append(f"shared_buffers = '{args.shared_buffers}'")
        settings_file.write_text("\n".join(kept) + "\n")
    ef_values = [int(v) for v in args.ef.split(",")]
    builds = [tuple(int(x) for x in pair.split(":")) for pair in args.builds.split(",") if pair]

    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # figures, not EMF lines
    from ragline.config import Settings
    from ragline.ingest import Ingestor

    settings = Settings.from_env().with_overrides(
        data_dir=args.data_dir, database_url=None, embeddings="hash"
    )
    ingestor = Ingestor.from_settings(settings)
    store, embedder = ingestor.store, ingestor.embedder
    print(f"data dir {args.data_dir}; embedder {embedder.name} ({embedder.dimensions} dims)")
    count, seconds = build(ingestor, args.corpus, args.chunks, args.perturb)
    if seconds:
        print(f"ingested through the pipeline (index built insert by insert) in {seconds:.0f} s")
    conn = store.connection()
    conn.execute("ANALYZE chunks")
    definition, size = index_info(store, embedder.dimensions)
    shared_buffers = conn.execute("SHOW shared_buffers").fetchone()[0]  # type: ignore[index]
    print(f"{count} chunks; index {size / 2**20:.0f} MiB; shared_buffers {shared_buffers}")
    print(f"  {definition}")

    asked = queries(store, args.eval_dir, args.sample, args.seed)
    vectors = [embedder.embed_query(text).vectors[0] for _, text in asked]
    kinds = {kind: sum(k == kind for k, _ in asked) for kind, _ in asked}
    print(f"{len(asked)} queries ({', '.join(f'{n} {k}s' for k, n in kinds.items())})")
    # The exact answers depend only on the rows and the queries: kept beside the data.
    key = hashlib.sha256(json.dumps([count, asked]).encode()).hexdigest()[:16]
    cached = args.data_dir / f"exact-{key}.json"
    if cached.exists():
        exact = [[(int(i), float(d)) for i, d in rows] for rows in json.loads(cached.read_text())]
    else:
        started = time.perf_counter()
        exact = [exact_neighbours(store, vector) for vector in vectors]
        exact_ms = (time.perf_counter() - started) * 1000 / len(vectors)
        print(f"exact top {EXACT_K} by sequential scan: {exact_ms:.0f} ms a query")
        cached.write_text(json.dumps(exact))
    print(f"\nthe index as it stands (RAGLINE_HNSW_EF_SEARCH default {settings.hnsw_ef_search})")
    curve(store, vectors, exact, ef_values, args.repeats)
    for m, ef_construction in builds:
        seconds = rebuild(store, embedder.dimensions, m, ef_construction)
        _, size = index_info(store, embedder.dimensions)
        print(
            f"\nrebuilt m={m} ef_construction={ef_construction}:"
            f" {seconds:.0f} s, {size / 2**20:.0f} MiB"
        )
        curve(store, vectors, exact, ef_values, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
