"""Keyword and hybrid search latency at 10k and 100k chunks: BM25 against the OR-of-words
`ts_rank_cd` search it replaced, in one run.

Ingests a corpus (default ../shared/corpora/python-docs, about 10k chunks with the hash
embedder) into an embedded PostgreSQL under --data-dir (kept, so later runs reuse it),
times every question of the evaluation sets, then copies the documents until the
collection holds --scale times as many chunks and times them again. The copies make
many exact duplicates: every document frequency grows tenfold, as does each posting
list, which is the hard case for pruning. Each question is timed --repeat times and its
fastest run counts, so another process's burst on a shared machine does not set the
percentiles (--repeat 1 times each question once). Figures, not a test: compare within
one run.

    python bench/search_latency.py [--data-dir DIR] [--scale 10] [--top-k 20] [--repeat 3]
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

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
EVAL_SETS = [SHARED / "eval" / "python_docs_eval.jsonl", SHARED / "eval" / "git_docs_eval.jsonl"]

# The keyword search before BM25: every query word OR-ed, ranked by ts_rank_cd over a GIN index.
OR_OF_WORDS = (
    "WITH q AS (SELECT NULLIF(replace(plainto_tsquery('english', %(t)s)::text,"
    " ' & ', ' | '), '')::tsquery AS query)"
    " SELECT c.id, ts_rank_cd(c.tsv, q.query, 32) AS score"
    " FROM q, chunks c WHERE q.query IS NOT NULL AND c.collection = %(c)s AND c.tsv @@ q.query"
    " ORDER BY score DESC, c.id LIMIT %(k)s"
)


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{p50 * 1000:8.1f} {p95 * 1000:8.1f}"


def time_all(run: Any, questions: list[str], repeat: int) -> list[float]:
    """Each question's fastest of ``repeat`` runs (the runs go round the questions)."""
    for question in questions[:5]:  # warm the cache and the plans
        run(question)
    samples = [float("inf")] * len(questions)
    for _ in range(repeat):
        for n, question in enumerate(questions):
            started = time.perf_counter()
            run(question)
            samples[n] = min(samples[n], time.perf_counter() - started)
    return samples


def replicate(conn: Any, first: int, copies: int) -> None:
    """Copy every original document and its chunks ``copies`` more times, numbering the
    copies from ``first``, in one transaction each."""
    for n in range(first, first + copies):
        with conn.transaction():
            conn.execute(
                "CREATE TEMP TABLE copies ON COMMIT DROP AS SELECT id AS original,"
                " gen_random_uuid() AS copy FROM documents WHERE source NOT LIKE '%%#copy%%'"
            )
            conn.execute(
                "INSERT INTO documents (id, collection, source, title, format, content_hash,"
                " size_bytes, metadata, status, chunk_count, embedding_model)"
                " SELECT m.copy, collection, source || '#copy' || %s, title, format,"
                " content_hash, size_bytes, metadata, status, chunk_count, embedding_model"
                " FROM documents d JOIN copies m ON m.original = d.id",
                (n,),
            )
            conn.execute(
                "INSERT INTO chunks (document_id, collection, ordinal, section, text,"
                " token_count, metadata, dimensions, embedding)"
                " SELECT m.copy, collection, ordinal, section, text, token_count, metadata,"
                " dimensions, embedding FROM chunks c JOIN copies m ON m.original = c.document_id"
            )
        print(f"  copy {n + 1} written", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpora" / "python-docs")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".ragline-bench-search")
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ["RAGLINE_DATA_DIR"] = str(args.data_dir)
    os.environ["RAGLINE_EMBEDDINGS"] = "hash"
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    from ragline.config import get_settings
    from ragline.embeddings import get_embedder
    from ragline.ingest import Ingestor
    from ragline.retrieval import Retriever
    from ragline.store import get_store

    settings = get_settings()
    store = get_store(settings)
    conn = store.connection()
    collection = settings.default_collection
    if conn.execute("SELECT count(*) FROM chunks").fetchone()[0] == 0:
        ingestor = Ingestor.from_settings(settings)
        files = sorted(p for p in args.corpus.rglob("*.txt") if p.is_file())
        print(f"ingesting {len(files)} files from {args.corpus}", file=sys.stderr)
        for path in files:
            ingestor.ingest_file(path)
    # The index the OR-of-words search relied on, so the comparison is fair to it.
    conn.execute("CREATE INDEX IF NOT EXISTS bench_chunks_tsv ON chunks USING gin (tsv)")
    questions = [
        json.loads(line)["question"]
        for path in EVAL_SETS
        if path.exists()
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    retriever = Retriever(store, get_embedder(settings))
    k = args.top_k

    def report() -> None:
        chunks = conn.execute(
            "SELECT count(*) FROM chunks WHERE collection = %s", (collection,)
        ).fetchone()[0]
        conn.execute("ANALYZE")
        rows = {
            "keyword, OR of words + ts_rank_cd (before)": lambda q: conn.execute(
                OR_OF_WORDS, {"t": q, "c": collection, "k": k}
            ).fetchall(),
            "keyword, BM25": lambda q: store.keyword_search(collection, q, k),
            "vector (HNSW)": lambda q: retriever.search(
                q, collection=collection, top_k=k, mode="vector"
            ),
            "hybrid (vector + BM25)": lambda q: retriever.search(
                q, collection=collection, top_k=k, mode="hybrid"
            ),
        }
        print(
            f"\n{chunks:,} chunks, {len(questions)} questions, top {k},"
            f" best of {args.repeat} per question"
        )
        print(f"  {'search':44} {'p50 ms':>8} {'p95 ms':>8}")
        for name, run in rows.items():
            print(f"  {name:44} {percentiles(time_all(run, questions, args.repeat))}")

    report()
    if args.scale > 1:
        originals = conn.execute(
            "SELECT count(*) FROM documents WHERE source NOT LIKE '%#copy%'"
        ).fetchone()[0]
        documents = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
        have = documents // max(originals, 1)
        if args.scale > have:
            replicate(conn, have - 1, args.scale - have)
        conn.execute("VACUUM ANALYZE")
        report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
