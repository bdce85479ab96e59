"""Keyword search on the scale corpus: ragline's BM25 before and after a migration, beside
tantivy and bm25s, on the same chunks and queries, in one run (issue 23).

The first ``--chunks`` lines of the scale corpus (bench/scale_corpus.py, read-only) go into
a fresh database of an embedded PostgreSQL holding the migrations up to ``--before``
(hash-sized random vectors: the keyword path never reads them; no HNSW index is built,
so the chunks table below is its rows and B-tree indexes alone). Then, per phase:

* ``before``: bytes per chunk of the BM25 tables (postings and statistics) against the
  chunks table, and keyword latency per query, each query run by ragline and by each peer
  in turn (interleaved, so the machine's load falls on all alike);
* the remaining migrations are applied (timed), and ``after`` measures the same; the two
  phases' rankings are compared (same chunk ids in the same order, scores within 1e-9).

Peers: tantivy with its own English tokenizer (stemming), tantivy fed ragline's own
tokens (the lexemes of each chunk's tsvector, each repeated by its count, and the query's
lexemes), bm25s with its own tokenizer and fed ragline's tokens. Both use Lucene's BM25
(k1 1.2, b 0.75), as ragline does; overlap@10 against ragline is printed beside them.

    pip install -e ".[bench]"   # tantivy and bm25s (MIT), kept out of the layer
    python bench/keyword_search.py [--chunks 100000] [--queries 300] [--before 9]
    python bench/keyword_search.py --before 0 --baseline main   # bm25_search then and now

Figures, not a test: compare within a run (`nice -n 10`; load average printed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_store import migrate_upto, write_chunks

SCALE = Path.home() / ".cache" / "ragline" / "scale"
COLLECTION = "scale"
DIMENSIONS = 384
BM25_TABLES = ("bm25_postings", "bm25_blocks", "bm25_terms", "bm25_collections")


def corpus(path: Path, limit: int) -> Iterator[dict[str, Any]]:
    with path.open() as lines:
        for n, line in enumerate(lines):
            if n >= limit:
                return
            yield json.loads(line)


def queries(path: Path, limit: int) -> list[str]:
    """The dev sets' questions first, then passage-derived queries, ``limit`` in all."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows.sort(key=lambda row: row["kind"] != "dev")
    return [row["question"] for row in rows[:limit]]


def dev_questions(path: Path) -> int:
    """How many of the queries are the dev sets' questions (they come first)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sum(row["kind"] == "dev" for row in rows)


def load(conn: Any, chunks: list[dict[str, Any]], batch: int) -> float:
    """Write the chunks, ``batch`` to a statement (each its own transaction), with one
    document per path and random vectors (the keyword path never reads them); the seconds
    it took."""
    rng = np.random.default_rng(0)
    vectors = (rng.standard_normal(DIMENSIONS) for _ in chunks)
    return write_chunks(conn, COLLECTION, chunks, vectors, model="random", batch=batch)


def sizes(conn: Any, n: int) -> dict[str, float]:
    """Bytes per chunk: the chunks table (rows, TOAST, indexes) and the BM25 tables."""

    def total(table: str) -> int:
        row = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
        if row[0] is None:
            return 0
        return int(conn.execute("SELECT pg_total_relation_size(%s)", (table,)).fetchone()[0])

    bm25 = {table: total(table) / n for table in BM25_TABLES}
    return {"chunks": total("chunks") / n, "bm25": sum(bm25.values()), **bm25}


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


class Peers:
    """The keyword peers, indexed once over the same chunks."""

    def __init__(
        self,
        texts: Iterable[str],
        tokens: Iterable[list[str] | str],
        workdir: Path,
        enabled: bool = True,
        with_bm25s: bool = True,
    ) -> None:
        """``texts`` and ``tokens`` (lists of lexemes, or lexemes joined by spaces) are
        read once, in chunk order; a tantivy index already in ``workdir`` is reused."""
        self.runs: dict[str, Callable[[str, list[str], int], list[int]]] = {}
        if not enabled:
            return
        import tantivy

        if with_bm25s:  # read twice: kept
            texts, tokens = list(texts), [t.split() if isinstance(t, str) else t for t in tokens]

        started = time.perf_counter()
        builder = tantivy.SchemaBuilder()
        builder.add_integer_field("id", stored=True, fast=True)
        builder.add_text_field("body", tokenizer_name="en_stem")
        builder.add_text_field("lexemes", tokenizer_name="whitespace")
        schema = builder.build()
        kept = (workdir / "meta.json").exists()
        workdir.mkdir(parents=True, exist_ok=True)
        index = tantivy.Index(schema, path=str(workdir))
        if not kept:
            writer = index.writer(heap_size=256_000_000, num_threads=1)
            for n, (text, lexemes) in enumerate(zip(texts, tokens, strict=True)):
                words = lexemes if isinstance(lexemes, str) else " ".join(lexemes)
                writer.add_document(tantivy.Document(id=n, body=text, lexemes=words))
            writer.commit()
            writer.wait_merging_threads()
        index.reload()
        searcher = index.searcher()
        print(f"  tantivy {'opened' if kept else 'indexed'} in"
              f" {time.perf_counter() - started:.1f} s", file=sys.stderr)  # fmt: skip

        def hits(query: Any, k: int) -> list[int]:
            found = searcher.search(query, k).hits
            return [searcher.doc(address)["id"][0] for _, address in found]

        def tantivy_own(text: str, _lexemes: list[str], k: int) -> list[int]:
            words = re.sub(r"[^\w]+", " ", text).strip()
            if not words:
                return []
            return hits(index.parse_query(words, ["body"]), k)

        def tantivy_fed(_text: str, lexemes: list[str], k: int) -> list[int]:
            if not lexemes:
                return []
            clauses = [(tantivy.Occur.Should, tantivy.Query.term_query(schema, "lexemes", t))
                       for t in lexemes]  # fmt: skip
            return hits(tantivy.Query.boolean_query(clauses), k)

        self.runs = {
            "tantivy, its own tokenizer": tantivy_own,
            "tantivy, fed ragline's tokens": tantivy_fed,
        }
        if not with_bm25s:
            return
        assert isinstance(texts, list) and isinstance(tokens, list)
        import bm25s  # only when asked for (--no-bm25s runs without it)

        started = time.perf_counter()
        own = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
        own.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
        fed = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
        fed.index(tokens, show_progress=False)
        print(f"  bm25s indexed in {time.perf_counter() - started:.1f} s", file=sys.stderr)

        def bm25s_own(text: str, _lexemes: list[str], k: int) -> list[int]:
            tokenized = bm25s.tokenize([text], stopwords="en", show_progress=False)
            if not tokenized.ids[0]:
                return []
            found, scores = own.retrieve(tokenized, k=min(k, len(texts)), show_progress=False,
                                         n_threads=1)  # fmt: skip
            return [int(i) for i, s in zip(found[0], scores[0], strict=True) if s > 0]

        def bm25s_fed(_text: str, lexemes: list[str], k: int) -> list[int]:
            known = [t for t in lexemes if t in fed.vocab_dict]
            if not known:
                return []
            found, scores = fed.retrieve([known], k=min(k, len(texts)), show_progress=False,
                                         n_threads=1)  # fmt: skip
            return [int(i) for i, s in zip(found[0], scores[0], strict=True) if s > 0]

        self.runs["bm25s, its own tokenizer"] = bm25s_own
        self.runs["bm25s, fed ragline's tokens"] = bm25s_fed


def baseline_search(conn: Any, revision: str) -> None:
    """``bm25_search`` as migration 0010 defined it at ``revision`` (git), created beside
    the current one as ``bm25_search_baseline``: both read the same blocks."""
    path = "layers/common/python/ragline/store/migrations/0010_bm25_blocks.sql"
    text = subprocess.run(
        ["git", "show", f"{revision}:{path}"], check=True, capture_output=True, text=True
    ).stdout
    found = re.search(r"CREATE OR REPLACE FUNCTION bm25_search\(.*?\n\$\$;", text, re.S)
    if found is None:
        raise SystemExit(f"no bm25_search in {path} at {revision}")
    conn.execute(found.group(0).replace("bm25_search(", "bm25_search_baseline(", 1).encode())


def sql_search(conn: Any, function: str) -> Callable[[str, int], list[tuple[int, float]]]:
    def run(question: str, k: int) -> list[tuple[int, float]]:
        rows = conn.execute(
            f"SELECT chunk_id, score FROM {function}(%s, %s, %s)", (COLLECTION, question, k)
        )
        return [(int(i), float(s)) for i, s in rows]

    return run


SQL, CLIENT = "ragline SQL (bm25_search)", "ragline client scorer"
SCORERS = {SQL: "sql", CLIENT: "client"}


def measure(store: Any, peers: Peers, questions: list[str], lexemes: list[list[str]],
            position: dict[int, int], k: int, repeat: int,
            functions: dict[str, Callable[[str, int], list[tuple[int, float]]]] | None = None,
            ) -> dict[str, Any]:  # fmt: skip
    """Each query by ragline (its SQL scorer and its client scorer, each through
    ``keyword_search``, result rows included) and each peer in turn, best of ``repeat``;
    latencies in ms, ragline's rankings, the postings' bytes the client scorer read, and
    each peer's overlap@k with the exact ranking. ``functions``: search functions called
    in SQL alone, timed in the same turn, their rankings kept too."""
    from ragline.store import bm25, search

    functions = functions or {}
    conn = store.connection()
    blocks = conn.execute("SELECT to_regclass('bm25_blocks') IS NOT NULL").fetchone()[0]
    scorers = SCORERS if blocks else {SQL: "sql"}  # the client reads 0010's blocks
    times: dict[str, list[float]] = {name: [] for name in scorers}
    times.update({name: [] for name in functions})
    times.update({name: [] for name in peers.runs})
    overlap: dict[str, list[float]] = {name: [] for name in [CLIENT, *peers.runs]}
    rankings: dict[str, list[list[tuple[int, float]]]] = {name: [] for name in SCORERS}
    by_function: dict[str, list[list[tuple[int, float]]]] = {name: [] for name in functions}
    transferred: list[int] = []
    for question, terms in zip(questions, lexemes, strict=True):
        for name, function in functions.items():
            best = float("inf")
            for _ in range(repeat):
                started = time.perf_counter()
                ranked = function(question, k)
                best = min(best, time.perf_counter() - started)
            times[name].append(best * 1000)
            by_function[name].append([(position[i], score) for i, score in ranked])
        for name, scorer in scorers.items():
            best = float("inf")
            for _ in range(repeat):
                started = time.perf_counter()
                found = search.keyword_search(conn, COLLECTION, question, k, scorer=scorer)
                best = min(best, time.perf_counter() - started)
            times[name].append(best * 1000)
            rankings[name].append([(position[c.chunk_id], c.score) for c in found])
        postings = bm25.fetch(conn, COLLECTION, question) if blocks else None
        if postings is not None:
            bm25.rank(postings, k)  # the blocks of common terms it reads too
        transferred.append(postings.nbytes if postings else 0)
        ours = {n for n, _ in rankings[SQL][-1]}
        if ours and blocks:
            client = {n for n, _ in rankings[CLIENT][-1]}
            overlap[CLIENT].append(len(ours & client) / len(ours))
        for name, run in peers.runs.items():
            best = float("inf")
            for _ in range(repeat):
                started = time.perf_counter()
                theirs = run(question, terms, k)
                best = min(best, time.perf_counter() - started)
            times[name].append(best * 1000)
            if ours:
                overlap[name].append(len(ours & set(theirs)) / len(ours))
    return {"times": times, "overlap": overlap, "rankings": rankings[SQL],
            "client": rankings[CLIENT], "functions": by_function,
            "bytes": transferred}  # fmt: skip


def report(phase: str, result: dict[str, Any], size: dict[str, float], dev: int = 0) -> None:
    load = os.getloadavg()
    print(f"\n[{phase}] load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"  bytes per chunk: chunks table {size['chunks']:,.0f}, BM25 {size['bm25']:,.0f}"
          f" ({size['bm25'] / size['chunks']:.2f}x the chunks table: "
          + ", ".join(f"{t} {size[t]:,.0f}" for t in BM25_TABLES if size[t]) + ")")  # fmt: skip
    sent = sorted(result["bytes"])
    print(f"  postings read by the client scorer per query: p50 {statistics.median(sent):,.0f}"
          f" B, p95 {sent[min(len(sent) - 1, int(0.95 * len(sent)))]:,.0f} B,"
          f" max {sent[-1]:,.0f} B")  # fmt: skip
    times = result["times"]
    sql = percentiles(times[SQL])
    client = percentiles(times[CLIENT]) if CLIENT in times else sql
    print(f"  {'search':32} {'p50 ms':>8} {'p95 ms':>8} {'SQL / it':>14} {'client / it':>14}"
          f" {'overlap@k':>10}")  # fmt: skip
    for name, samples in times.items():
        p50, p95 = percentiles(samples)
        ratios = [f"{ours[0] / p50:5.1f}x/{ours[1] / p95:5.1f}x" for ours in (sql, client)]
        agree = result["overlap"].get(name)
        shared = f"{statistics.mean(agree):.3f}" if agree else ""
        print(f"  {name:32} {p50:8.2f} {p95:8.2f} {ratios[0]:>14} {ratios[1]:>14} {shared:>10}")
    if 0 < dev < len(times[SQL]):  # the dev sets' questions, then the passage spans
        print(f"  by kind (p50/p95 ms): {'dev questions':>18} {'passage spans':>18}")
        for name, samples in times.items():
            kinds = [percentiles(samples[:dev]), percentiles(samples[dev:])]
            print(f"  {name:32} " + " ".join(f"{a:8.2f}/{b:<8.2f}" for a, b in kinds))
    if result["client"]:
        print("  client scorer against SQL: "
              + same_rankings(result["rankings"], result["client"]))  # fmt: skip


def same_rankings(
    before: list[list[tuple[int, float]]], after: list[list[tuple[int, float]]]
) -> str:
    identical = sum(
        [i for i, _ in a] == [i for i, _ in b]
        and all(abs(x - y) <= 1e-9 * max(abs(x), 1) for (_, x), (_, y) in zip(a, b, strict=True))
        for a, b in zip(before, after, strict=True)
    )
    overlaps = [
        len({i for i, _ in a} & {i for i, _ in b}) / len(a)
        for a, b in zip(before, after, strict=True)
        if a
    ]
    return (
        f"{identical}/{len(before)} identical rankings, overlap@k {statistics.mean(overlaps):.4f}"
    )


def lexeme_strings(conn: Any) -> Iterator[str]:
    """Each chunk's tsvector as tokens (each lexeme repeated by its count, joined by
    spaces), in chunk id order, streamed from a server-side cursor."""
    with conn.transaction(), conn.cursor(name="lexemes") as cur:
        cur.itersize = 5000
        cur.execute(
            "SELECT (SELECT coalesce(string_agg(repeat(u.lexeme || ' ',"
            " coalesce(array_length(u.positions, 1), 1)), ''), '') FROM unnest(c.tsv) u)"
            " FROM chunks c ORDER BY c.id"
        )
        for (text,) in cur:
            yield text


def texts_of(path: Path, limit: int) -> Iterator[str]:
    for chunk in corpus(path, limit):
        yield " ".join(chunk["section"]) + "\n" + chunk["text"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2000, help="chunks per COPY statement")
    parser.add_argument(
        "--before",
        type=int,
        default=9,
        help="the last migration of the 'before' phase (0: no before phase)",
    )
    parser.add_argument("--scale-dir", type=Path, default=SCALE)
    parser.add_argument("--no-peers", action="store_true", help="ragline alone: no tantivy, bm25s")
    parser.add_argument("--no-bm25s", action="store_true", help="tantivy alone as the peer")
    parser.add_argument(
        "--baseline",
        help="a git revision: its 0010 bm25_search timed beside the current one, in SQL alone",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        help="a directory keeping the loaded database (its embedded PostgreSQL) and the"
        " tantivy index, reused by the next run with the same --chunks (implies --before 0)",
    )
    parser.add_argument(
        "--load-only", action="store_true", help="with --keep: load and index, then stop"
    )
    args = parser.parse_args()
    if args.keep is not None:
        args.before = 0
        data_dir = args.keep.expanduser().resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
    elif args.load_only:
        parser.error("--load-only needs --keep")
    else:
        data_dir = Path(tempfile.mkdtemp(prefix="ragline-bench-keyword-"))
    os.environ.update(RAGLINE_DATA_DIR=str(data_dir), POWERTOOLS_METRICS_DISABLED="true")
    import psycopg
    from pgvector.psycopg import register_vector
    from ragline.config import Settings
    from ragline.store import Store
    from ragline.store.database import embedded_url

    server = embedded_url(Settings.from_env())
    name = f"bench_keyword_{args.chunks}" if args.keep else f"bench_keyword_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{name}"')
    url = re.sub(r"/postgres(\?|$)", f"/{name}\\1", server, count=1)
    conn = None
    try:
        questions = queries(args.scale_dir / "queries.jsonl", args.queries)
        dev = min(dev_questions(args.scale_dir / "queries.jsonl"), len(questions))
        conn = psycopg.connect(url, autocommit=True)
        marker = conn.execute("SELECT to_regclass('bench_loaded') IS NOT NULL").fetchone()
        loaded = bool(exists and marker and marker[0])
        if not loaded:
            migrate_upto(conn, args.before or 10**6)
            register_vector(conn)
            conn.execute("INSERT INTO collections (name, embedding_model, dimensions)"
                         " VALUES (%s, 'random', %s)", (COLLECTION, DIMENSIONS))  # fmt: skip
            chunks = list(corpus(args.scale_dir / "chunks.jsonl", args.chunks))
            seconds = load(conn, chunks, args.batch)
            del chunks
            print(f"{args.chunks:,} chunks loaded in {seconds:.1f} s ({args.chunks / seconds:,.0f}"
                  f" chunks/s, {args.batch} a statement), migrations up to {args.before}",
                  flush=True)  # fmt: skip
            conn.execute("VACUUM ANALYZE")
            if args.keep:
                conn.execute("CREATE TABLE bench_loaded (chunks integer, seconds float8)")
                conn.execute("INSERT INTO bench_loaded VALUES (%s, %s)", (args.chunks, seconds))
        ids = [row[0] for row in conn.execute("SELECT id FROM chunks ORDER BY id")]
        position = {chunk_id: n for n, chunk_id in enumerate(ids)}
        lexemes = [[row[0] for row in conn.execute(
            "SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', %s))", (q,))]
            for q in questions]  # fmt: skip
        peers = Peers(
            texts_of(args.scale_dir / "chunks.jsonl", args.chunks),
            lexeme_strings(conn),
            data_dir / f"tantivy-{args.chunks}",
            enabled=not args.no_peers,
            with_bm25s=not args.no_bm25s,
        )
        if args.load_only:
            return 0
        store = Store(Settings.from_env().with_overrides(database_url=url))
        store._migrated = True  # the phases decide which migrations are applied
        results = []
        if args.before:
            before = measure(store, peers, questions, lexemes, position, args.top_k, args.repeat)
            report(f"before: migrations up to {args.before}", before, sizes(conn, len(ids)), dev)
            results.append(before)
            started = time.perf_counter()
            applied = Store(store.settings).migrate()
            print(f"\nmigrations {applied} applied in {time.perf_counter() - started:.1f} s")
            conn.execute("VACUUM ANALYZE")
        elif args.keep:
            started = time.perf_counter()
            applied = Store(store.settings).migrate()
            if applied:
                print(f"migrations {applied} applied to the kept database in"
                      f" {time.perf_counter() - started:.1f} s")  # fmt: skip
                conn.execute("VACUUM ANALYZE")
        functions = {}
        if args.baseline:
            baseline_search(conn, args.baseline)
            functions = {
                f"bm25_search at {args.baseline} (SQL)": sql_search(conn, "bm25_search_baseline"),
                "bm25_search (SQL)": sql_search(conn, "bm25_search"),
            }
        after = measure(
            store, peers, questions, lexemes, position, args.top_k, args.repeat, functions
        )
        report("after: every migration", after, sizes(conn, len(ids)), dev)
        if args.baseline:
            old, new = after["functions"].values()
            print(f"\nbm25_search at {args.baseline} against now: " + same_rankings(old, new))
        if results:
            print(
                "\nbefore against after: "
                + same_rankings(results[0]["rankings"], after["rankings"])
            )
        store.database.close()
    finally:
        if conn is not None:
            conn.close()
        if args.keep is None:
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
