"""What the RDS Data API driver costs over psycopg, per query and per chunk written.

Both drivers run the same store against the same embedded PostgreSQL: psycopg over its
socket, the Data API driver through boto3 and the test adapter (tests/support/data_api.py),
which answers each call from the embedded server. So the figure is the driver's own
overhead (translating SQL and parameters, botocore serializing and validating, decoding
typed records) plus the adapter's; it leaves out the network hop to the Data API
endpoint and the service's own time, which only an AWS account can measure.

    python bench/data_api_overhead.py [--documents 40] [--repeat 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "common" / "python")]

WORDS = [
    "policy",
    "leave",
    "travel",
    "budget",
    "audit",
    "review",
    "safety",
    "hiring",
    "otter",
    "river",
    "train",
    "office",
]


def text(n: int) -> bytes:
    """A document of a few sections, different for each ``n``."""
    sections = []
    for s in range(6):
        words = [WORDS[(n * 7 + s * 3 + i) % len(WORDS)] for i in range(180)]
        sections.append(f"## Section {s}\n\n" + " ".join(words) + ".")
    return (f"# Document {n}\n\n" + "\n\n".join(sections)).encode()


def median_ms(action: Callable[[], Any], repeat: int) -> float:
    action()  # warm: caches, plans
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(server: str, driver: str, documents: int, repeat: int) -> dict[str, float]:
    from ragline.embeddings import create_embedder
    from ragline.ingest import Ingestor
    from ragline.retrieval import Retriever
    from ragline.store import Store

    from tests.support.data_api import driver_settings
    from tests.support.databases import create_database

    url = create_database(server, f"bench_data_api_{driver}")
    with driver_settings(url, driver) as base:
        settings = base.with_overrides(embeddings="hash")
        store = Store(settings)
        store.migrate()
        embedder = create_embedder(settings.embeddings, settings)
        ingestor = Ingestor(settings, store, embedder)
        chunks = 0
        started = time.perf_counter()
        for n in range(documents):
            chunks += ingestor.ingest_bytes(f"s3://bench/doc-{n}.md", text(n)).chunks
        per_chunk = (time.perf_counter() - started) * 1000 / max(chunks, 1)
        retriever = Retriever(store, embedder)
        collection = settings.default_collection
        vector = embedder.embed_batch(["otter river budget"]).vectors[0]
        document = store.find_document("s3://bench/doc-0.md")
        assert document is not None
        figures = {
            "vector search": median_ms(lambda: store.vector_search(collection, vector, 5), repeat),
            "keyword search": median_ms(
                lambda: store.keyword_search(collection, "otter river budget", 5), repeat
            ),
            "hybrid search": median_ms(
                lambda: retriever.search("otter river budget", collection=collection, top_k=5),
                repeat,
            ),
            "document read": median_ms(lambda: store.get_document(document.id), repeat),
            "per chunk written": per_chunk,
        }
        store.database.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="ragline-bench-data-api-"))
    os.environ.update(
        RAGLINE_DATA_DIR=str(data_dir),
        POWERTOOLS_METRICS_DISABLED="true",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # never sent: the adapter answers every call
        AWS_DEFAULT_REGION="us-east-1",
    )
    from ragline.config import Settings
    from ragline.store.database import embedded_url

    server = embedded_url(Settings.from_env())
    psycopg_figures = measure(server, "psycopg", args.documents, args.repeat)
    data_api_figures = measure(server, "data-api", args.documents, args.repeat)
    print(f"{args.documents} documents; medians of {args.repeat} calls (ms)")
    print(f"{'':18} {'psycopg':>9} {'data-api':>9} {'overhead':>9}")
    for name, base in psycopg_figures.items():
        other = data_api_figures[name]
        print(f"{name:18} {base:9.2f} {other:9.2f} {other - base:+9.2f}")
    shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
