"""A first load with the vector index built after the rows, against row-by-row indexing,
and the ingest against a raw COPY of the same rows.

`ragline ingest` into a store holding no vectors of the embedder's size drops the
dimension's (empty) HNSW index, loads, then builds the index in one pass. This times the
same corpus both ways, each into a fresh embedded PostgreSQL, per embedder, in one run:

    python bench/bulk_load.py [--corpus DIR] [--embedders hash,minilm] [--files N]
                              [--concurrency 1,2]

Then, for the first embedder, the rows the ingest wrote (chunks with their vectors) are
written again by one raw COPY into a fresh database's chunks table, with its indexes but
without the BM25 triggers, both ways (HNSW row by row, and built after): the ingest
(reading, chunking, embedding, BM25 upkeep and all) against the bare write of its rows.

`--concurrency` lists the RAGLINE_INGEST_CONCURRENCY values to load with (documents
worked on at once), each both ways. `--files` caps the corpus per embedder as
`hash=0,minilm=80` (0: every file): MiniLM embeds about 26 chunks a second on the 2-core
development machine, so its share of the time is the model's, whatever the index does.
Figures, not a test: compare within a run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def fresh_database(server: str) -> tuple[str, str]:
    import psycopg

    name = f"bench_bulk_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name, re.sub(r"/postgres(\?|$)", f"/{name}\\1", server, count=1)


def load(
    server: str,
    files: list[Path],
    embedder: str,
    *,
    deferred: bool,
    concurrency: int = 1,
    keep: list[tuple] | None = None,
) -> dict[str, float]:
    """Ingest ``files`` into a fresh database, ``concurrency`` at a time, as `ragline
    ingest` does; the seconds spent loading and indexing. With ``keep``, the chunk rows
    written are appended to it."""
    import psycopg
    from ragline.config import Settings
    from ragline.embeddings import create_embedder
    from ragline.ingest import Ingestor
    from ragline.store import Store

    name, url = fresh_database(server)
    settings = Settings.from_env().with_overrides(
        database_url=url, embeddings=embedder, ingest_concurrency=concurrency
    )
    store = Store(settings)
    store.migrate()
    ingestor = Ingestor(settings, store, create_embedder(settings.embeddings, settings))
    dimensions = ingestor.embedder.dimensions
    try:
        started = time.perf_counter()
        if deferred:
            assert store.defer_vector_index(dimensions)
        chunks = sum(result.chunks for result in ingestor.ingest_files(files))
        loaded = time.perf_counter()
        if deferred:
            store.build_vector_index(dimensions)
        finished = time.perf_counter()
        if keep is not None:
            keep.extend(store.connection().execute(
                "SELECT d.source, c.ordinal, c.section, c.text, c.token_count, c.metadata,"
                " c.dimensions, c.embedding FROM chunks c JOIN documents d ON d.id = c.document_id"
                " ORDER BY c.id"
            ))  # fmt: skip
        return {"chunks": chunks, "load": loaded - started, "index": finished - loaded,
                "total": finished - started}  # fmt: skip
    finally:
        store.database.close()
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def raw_copy(server: str, rows: list[tuple], dimensions: int, *, deferred: bool) -> float:
    """The seconds one COPY of ``rows`` takes into a fresh database's chunks table (its
    documents written first, untimed), with no BM25 triggers; with ``deferred``, the HNSW
    index is built after the rows (and timed), as the bulk ingest builds it."""
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Jsonb
    from ragline.config import Settings
    from ragline.store import Store

    name, url = fresh_database(server)
    store = Store(Settings.from_env().with_overrides(database_url=url))
    store.migrate()
    store.ensure_collection("bench", "hash", dimensions)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            register_vector(conn)
            for trigger in ("inserted", "deleted", "updated"):
                conn.execute(f"ALTER TABLE chunks DISABLE TRIGGER bm25_chunks_{trigger}")
            documents: dict[str, uuid.UUID] = {}
            for row in rows:
                documents.setdefault(row[0], uuid.uuid4())
            with (
                conn.cursor() as cur,
                cur.copy("COPY documents (id, collection, source, status) FROM STDIN") as copy,
            ):
                for source, document in documents.items():
                    copy.write_row((document, "bench", source, "ingested"))
            if deferred:
                assert store.defer_vector_index(dimensions)
            started = time.perf_counter()
            with (
                conn.cursor() as cur,
                cur.copy(
                    "COPY chunks (document_id, collection, ordinal, section, text, token_count,"
                    " metadata, dimensions, embedding) FROM STDIN WITH (FORMAT BINARY)"
                ) as copy,
            ):
                copy.set_types(["uuid", "text", "int4", "text", "text", "int4", "jsonb", "int4",
                                "halfvec"])  # fmt: skip
                for source, *rest in rows:
                    ordinal, section, text, tokens, metadata, dims, vector = rest
                    copy.write_row((documents[source], "bench", ordinal, section, text, tokens,
                                    Jsonb(metadata), dims, vector))  # fmt: skip
            if deferred:
                store.build_vector_index(dimensions)
            return time.perf_counter() - started
    finally:
        store.database.close()
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpora" / "python-docs")
    parser.add_argument("--embedders", default="hash,minilm")
    parser.add_argument("--files", default="hash=0,minilm=80")
    parser.add_argument("--concurrency", default="1,2")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="ragline-bench-bulk-"))
    os.environ.update(RAGLINE_DATA_DIR=str(data_dir), POWERTOOLS_METRICS_DISABLED="true")
    from ragline.config import Settings
    from ragline.store.database import embedded_url

    server = embedded_url(Settings.from_env())
    caps = {k: int(v) for k, v in (item.split("=") for item in args.files.split(",") if item)}
    every = sorted(p for p in args.corpus.rglob("*.txt") if p.is_file())
    jobs = [int(c) for c in args.concurrency.split(",") if c.strip()]
    print(f"{'embedder':8} {'jobs':>4} {'files':>5} {'chunks':>6} {'row by row s':>13} "
          f"{'bulk: load s':>13} {'+ index s':>10} {'= total s':>10} {'speed-up':>9}")  # fmt: skip
    written: list[tuple] = []
    timings: dict[tuple[str, int], dict[str, float]] = {}
    for embedder in (e.strip() for e in args.embedders.split(",") if e.strip()):
        files = every[: caps.get(embedder) or len(every)]
        for concurrency in jobs:
            rows = load(server, files, embedder, deferred=False, concurrency=concurrency)
            bulk = load(server, files, embedder, deferred=True, concurrency=concurrency,
                        keep=None if written else written)  # fmt: skip
            timings[embedder, concurrency] = {"rows": rows["total"], "bulk": bulk["total"]}
            print(
                f"{embedder:8} {concurrency:4} {len(files):5} {int(bulk['chunks']):6} "
                f"{rows['total']:13.1f} {bulk['load']:13.1f} {bulk['index']:10.1f} "
                f"{bulk['total']:10.1f} {rows['total'] / bulk['total']:8.2f}x",
                flush=True,
            )
    if written:
        first = next(iter(timings))[0]
        dimensions = len(written[0][-1].to_list())
        print(f"\n{first}: the ingest against one raw COPY of the {len(written)} rows it wrote"
              " (no BM25 triggers); ingest speed as a share of the COPY's")  # fmt: skip
        print(f"{'HNSW':12} {'jobs':>4} {'ingest s':>9} {'raw COPY s':>11} {'ingest / COPY':>14}")
        for label, key, deferred in (("row by row", "rows", False),
                                     ("built after", "bulk", True)):  # fmt: skip
            copied = raw_copy(server, written, dimensions, deferred=deferred)
            for concurrency in jobs:
                ingest = timings[first, concurrency][key]
                print(f"{label:12} {concurrency:4} {ingest:9.1f} {copied:11.1f} "
                      f"{copied / ingest:13.2f}x", flush=True)  # fmt: skip
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
