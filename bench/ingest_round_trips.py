"""Round trips per S3 document: store calls, SQL statements and S3 HEADs for each outcome.

Runs the ingest pipeline on moto's S3 (in process) and the embedded PostgreSQL behind the
Data API driver (through the test adapter, tests/support/data_api.py), where every SQL
statement, BEGIN and COMMIT is one call: the round trips a Lambda on the Data API pays.
The collection is recorded before the figures are taken (a warm process caches it).

    python bench/ingest_round_trips.py
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "common" / "python")]

BUCKET = "bench-round-trips"
KEY = "handbook/travel.md"
V1 = b"# Travel\n\nBook trains through the portal. Version one.\n"
V2 = b"# Travel\n\nBook trains through the portal. Version two: economy only.\n"


class Counts:
    """Counts the store's public calls, the Data API calls and the S3 HEADs made."""

    def __init__(self) -> None:
        self.store: Counter[str] = Counter()
        self.sql: Counter[str] = Counter()
        self.heads = 0

    def row(self) -> str:
        store = ", ".join(f"{name} {n}" for name, n in sorted(self.store.items()))
        return (
            f"{sum(self.store.values()):>5} {sum(self.sql.values()):>5} {self.heads:>5}   {store}"
        )


@contextmanager
def counting(store: Any, reader: Any) -> Iterator[Counts]:
    """Count what ``store`` and ``reader`` are asked while the block runs."""
    counts = Counts()
    cls = type(store)
    database = store.database
    originals: dict[str, Callable[..., Any]] = {}
    for name, member in list(vars(cls).items()):
        if callable(member) and not name.startswith("_") and name != "connection":
            originals[name] = member

            def wrapper(self: Any, *a: Any, _name: str = name, **k: Any) -> Any:
                counts.store[_name] += 1
                return originals[_name](self, *a, **k)

            setattr(cls, name, wrapper)
    call, head = database.call, reader.head

    def counted_call(operation: str, **request: Any) -> Any:
        counts.sql[operation] += 1
        return call(operation, **request)

    def counted_head(bucket: str, key: str) -> Any:
        counts.heads += 1
        return head(bucket, key)

    database.call, reader.head = counted_call, counted_head
    try:
        yield counts
    finally:
        database.call, reader.head = call, head
        for name, member in originals.items():
            setattr(cls, name, member)


class StaleReader:
    """A reader whose GET returns the object as read earlier (a late invocation)."""

    def __init__(self, reader: Any, obj: Any) -> None:
        self._reader, self._obj = reader, obj

    def get(self, bucket: str, key: str) -> Any:
        return self._obj

    def head(self, bucket: str, key: str) -> Any:
        return self._reader.head(bucket, key)


def main() -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="ragline-bench-round-trips-"))
    os.environ.update(
        RAGLINE_DATA_DIR=str(data_dir),
        POWERTOOLS_METRICS_DISABLED="true",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    import boto3
    from moto import mock_aws
    from ragline.config import Settings
    from ragline.embeddings import create_embedder
    from ragline.ingest import Ingestor, S3ObjectReader
    from ragline.store import Store
    from ragline.store.database import embedded_url

    from tests.support.data_api import driver_settings
    from tests.support.databases import create_database

    url = create_database(embedded_url(Settings.from_env()), "bench_round_trips")
    with mock_aws(), driver_settings(url, "data-api") as base:
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        settings = base.with_overrides(embeddings="hash")
        store = Store(settings)
        store.migrate()
        embedder = create_embedder(settings.embeddings, settings)
        ingestor = Ingestor(settings, store, embedder)
        store.ensure_collection(settings.default_collection, embedder.name, embedder.dimensions)
        reader = S3ObjectReader(s3)

        def sync(label: str, on: Any = reader) -> None:
            with counting(store, on) as counts:
                try:
                    status = ingestor.sync_object(on, BUCKET, KEY).status
                except Exception as exc:  # a failed document raises; its counts still stand
                    status = type(exc).__name__
            print(f"{label:34} {status:11} {counts.row()}")

        print(f"{'':34} {'status':11} {'store':>5} {'SQL':>5} {'HEAD':>5}   store calls")
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=V1)
        sync("new document")
        sync("unchanged (same event again)")
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=V1, Metadata={"team": "ops"})
        sync("same bytes, new metadata")
        stale = reader.get(BUCKET, KEY)
        assert stale is not None
        stale_bytes = stale.read()
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=V2)
        sync("changed content")
        late = StaleReader(reader, replace(stale, read=lambda: stale_bytes))
        sync("superseded (late read of the old)", late)
        s3.delete_object(Bucket=BUCKET, Key=KEY)
        sync("deleted")
        store.database.close()
    shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
