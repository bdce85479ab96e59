"""A first load with the vector index built after the rows, against row-by-row indexing.

`ragline ingest` into a store holding no vectors of the embedder's size drops the
dimension's (empty) HNSW index, loads, then builds the index in one pass. This times the
same corpus both ways, each into a fresh embedded PostgreSQL, per embedder, in one run:

    python bench/bulk_load.py [--corpus DIR] [--embedders hash,minilm] [--files N]

`--files` caps the corpus per embedder as `hash=0,minilm=80` (0: every file): MiniLM
embeds about 26 chunks a second on the 2-core development machine, so its share of the
time is the model's, whatever the index does. Figures, not a test: compare within a run.
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


def load(server: str, files: list[Path], embedder: str, *, deferred: bool) -> dict[str, float]:
    """Ingest ``files`` into a fresh database; the seconds spent loading and indexing."""
    import psycopg
    from ragline.config import Settings
    from ragline.embeddings import create_embedder
    from ragline.ingest import Ingestor
    from ragline.store import Store

    name = f"bench_bulk_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = re.sub(r"/postgres(\?|$)", f"/{name}\\1", server, count=1)
    settings = Settings.from_env().with_overrides(database_url=url, embeddings=embedder)
    store = Store(settings)
    store.migrate()
    ingestor = Ingestor(settings, store, create_embedder(settings.embeddings, settings))
    dimensions = ingestor.embedder.dimensions
    try:
        started = time.perf_counter()
        if deferred:
            assert store.defer_vector_index(dimensions)
        chunks = 0
        for path in files:
            chunks += ingestor.ingest_file(path).chunks
        loaded = time.perf_counter()
        if deferred:
            store.build_vector_index(dimensions)
        finished = time.perf_counter()
        return {"chunks": chunks, "load": loaded - started, "index": finished - loaded,
                "total": finished - started}  # fmt: skip
    finally:
        store.database.close()
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpora" / "python-docs")
    parser.add_argument("--embedders", default="hash,minilm")
    parser.add_argument("--files", default="hash=0,minilm=80")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="ragline-bench-bulk-"))
    os.environ.update(RAGLINE_DATA_DIR=str(data_dir), POWERTOOLS_METRICS_DISABLED="true")
    from ragline.config import Settings
    from ragline.store.database import embedded_url

    server = embedded_url(Settings.from_env())
    caps = {k: int(v) for k, v in (item.split("=") for item in args.files.split(",") if item)}
    every = sorted(p for p in args.corpus.rglob("*.txt") if p.is_file())
    print(f"{'embedder':8} {'files':>5} {'chunks':>6} {'row by row s':>13} "
          f"{'bulk: load s':>13} {'+ index s':>10} {'= total s':>10} {'speed-up':>9}")  # fmt: skip
    for embedder in (e.strip() for e in args.embedders.split(",") if e.strip()):
        files = every[: caps.get(embedder) or len(every)]
        rows = load(server, files, embedder, deferred=False)
        bulk = load(server, files, embedder, deferred=True)
        print(
            f"{embedder:8} {len(files):5} {int(bulk['chunks']):6} {rows['total']:13.1f} "
            f"{bulk['load']:13.1f} {bulk['index']:10.1f} {bulk['total']:10.1f} "
            f"{rows['total'] / bulk['total']:8.2f}x",
            flush=True,
        )
    shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
