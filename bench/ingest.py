"""Ingestion throughput: the whole pipeline against a raw COPY of the same vectors.

Ingests a corpus (default: ../shared/corpora/python-docs) with the ``hash`` embedder into
a fresh embedded PostgreSQL (or RAGLINE_DATABASE_URL), then COPYs the very rows it
stored into a table of the same shape and indexes, in one transaction, and prints
documents/s, chunks/s and the ratio of the two rates. Figures, not a pass/fail test: the
machine is shared, so compare the ratio within one run.

    python bench/ingest.py [CORPUS_DIR] [--limit N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "python-docs"

COPY_COLUMNS = (
    "document_id, collection, ordinal, section, text, token_count, metadata, dimensions, embedding"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=None, help="ingest at most N files")
    args = parser.parse_args()
    files = sorted(p for p in args.corpus.rglob("*") if p.is_file() and p.suffix == ".txt")
    files = files[: args.limit] if args.limit else files
    if not files:
        print(f"no .txt files under {args.corpus}", file=sys.stderr)
        return 2

    os.environ.setdefault("RAGLINE_DATA_DIR", tempfile.mkdtemp(prefix="ragline-bench-"))
    os.environ["RAGLINE_EMBEDDINGS"] = "hash"
    from ragline.config import get_settings
    from ragline.documents import chunk_document, parse_document
    from ragline.ingest import Ingestor

    settings = get_settings()
    ingestor = Ingestor.from_settings(settings)
    conn = ingestor.store.connection()
    conn.execute("TRUNCATE documents CASCADE")
    total_bytes = sum(p.stat().st_size for p in files)

    # Stage by stage, in memory, to show where the time goes.
    started = time.perf_counter()
    parsed = [(p, parse_document(p.name, p.read_bytes())) for p in files]
    size, overlap = settings.chunk_tokens, settings.chunk_overlap
    chunked = [(doc, chunk_document(doc, max_tokens=size, overlap=overlap)) for _, doc in parsed]
    parse_seconds = time.perf_counter() - started
    texts = [c.embedding_text(doc.title) for doc, chunks in chunked for c in chunks]
    started = time.perf_counter()
    ingestor.embedder.embed_documents(texts)
    embed_seconds = time.perf_counter() - started

    # The pipeline: parse, chunk, embed, and one transaction per document with COPY.
    started = time.perf_counter()
    statuses: dict[str, int] = {}
    for path in files:
        try:
            result = ingestor.ingest_file(path)
            statuses[result.status] = statuses.get(result.status, 0) + 1
        except Exception as exc:  # a failed document is a figure here, not a crash
            statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
    pipeline_seconds = time.perf_counter() - started
    chunk_count = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]  # type: ignore[index]

    # Raw COPY of the same rows into tables of the same shape: with the same indexes
    # (HNSW + GIN, the fair comparison) and with none (the ceiling).
    with conn.cursor(binary=True) as cur:
        cur.execute(f"SELECT {COPY_COLUMNS} FROM chunks ORDER BY id")
        rows = cur.fetchall()
    raw = {}
    for label, like in (
        ("indexed", "INCLUDING ALL"),
        ("unindexed", "INCLUDING IDENTITY INCLUDING GENERATED INCLUDING DEFAULTS"),
    ):
        conn.execute("DROP TABLE IF EXISTS bench_chunks")
        conn.execute(f"CREATE TABLE bench_chunks (LIKE chunks {like})")
        started = time.perf_counter()
        with (
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy(f"COPY bench_chunks ({COPY_COLUMNS}) FROM STDIN WITH (FORMAT BINARY)") as copy,
        ):
            copy.set_types(["uuid", "text", "int4", "text", "text", "int4", "jsonb", "int4",
                            "vector"])  # fmt: skip
            for row in rows:
                copy.write_row(row)
        raw[label] = time.perf_counter() - started
    conn.execute("DROP TABLE bench_chunks")

    pipeline_rate = chunk_count / pipeline_seconds
    print(f"corpus            {len(files)} files, {total_bytes / 1e6:.1f} MB, {chunk_count} chunks "
          f"({settings.chunk_tokens}-token chunks, {settings.chunk_overlap} overlap)")  # fmt: skip
    print(f"outcomes          {statuses}")
    print(f"parse + chunk     {parse_seconds:6.2f} s   {len(files) / parse_seconds:8.1f} docs/s")
    print(f"hash embedding    {embed_seconds:6.2f} s   {len(texts) / embed_seconds:8.1f} chunks/s")
    print(f"pipeline          {pipeline_seconds:6.2f} s   {len(files) / pipeline_seconds:8.1f} "
          f"docs/s   {pipeline_rate:8.1f} chunks/s")  # fmt: skip
    for label, seconds in raw.items():
        rate = chunk_count / seconds
        print(f"raw COPY {label:9} {seconds:6.2f} s   {rate:8.1f} chunks/s   "
              f"pipeline / raw = {pipeline_rate / rate:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
