"""Reconcile (``ragline sync``, the reconcile Lambda) with moto S3 and embedded PostgreSQL,
through psycopg and through the Data API driver (tests/support/data_api.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from ragline.ingest import S3ObjectReader, StoredObject
from ragline.ingest.reconcile import reconcile

from tests.support.s3 import BUCKET


def _doc(title: str) -> bytes:
    return f"# {title}\n\nThe {title.lower()} document says something about {title}.\n".encode()


pytestmark = pytest.mark.both_drivers


@pytest.fixture
def handler(
    s3: Any, database_environment: dict[str, str], cold_start: Callable[..., ModuleType]
) -> ModuleType:
    module = cold_start(
        "reconcile",
        **database_environment,
        RAGLINE_EMBEDDINGS="hash",
        POWERTOOLS_METRICS_DISABLED="true",
    )
    module.ingestor.store.connection().execute("TRUNCATE documents CASCADE")
    return module


class CountingReader(S3ObjectReader):
    """The S3 reader, counting the objects it reads in full."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.reads: list[str] = []

    def get(self, bucket: str, key: str) -> StoredObject | None:
        self.reads.append(key)
        return super().get(bucket, key)


def _next_second() -> None:
    """Wait for the clock's next second: S3 dates an object to the second, and the
    metadata-only change below is told from the stored version by that date."""
    start = int(time.time())
    while int(time.time()) == start:
        time.sleep(0.01)


def _sources(module: ModuleType) -> dict[str, str]:
    docs, _ = module.ingestor.store.list_documents(limit=100)
    return {d.source.removeprefix(f"s3://{BUCKET}/"): d.status for d in docs}


def test_reconcile_makes_the_store_match_the_bucket_after_lost_events(
    handler: ModuleType, s3: Any, lambda_context: Any
) -> None:
    # GIVEN a store in step with a bucket of four objects...
    ingestor = handler.ingestor
    for name in ("kept", "changed", "gone", "metadata"):
        s3.put_object(Bucket=BUCKET, Key=f"{name}.md", Body=_doc(name.title()))
        ingestor.sync_object(handler.reader, BUCKET, f"{name}.md")
    # ...then changes whose events were all lost: a new object, a changed one, a
    # deleted one, new metadata on the same bytes, and one with an invalid collection
    _next_second()
    s3.put_object(Bucket=BUCKET, Key="new.md", Body=_doc("New"))
    s3.put_object(Bucket=BUCKET, Key="changed.md", Body=_doc("Changed again"))
    s3.delete_object(Bucket=BUCKET, Key="gone.md")
    s3.put_object(Bucket=BUCKET, Key="metadata.md", Body=_doc("Metadata"), Metadata={"team": "ops"})
    s3.put_object(
        Bucket=BUCKET, Key="bad.md", Body=_doc("Bad"), Metadata={"collection": "no spaces!"}
    )

    # WHEN the reconcile Lambda runs on the bucket
    report = handler.lambda_handler({"bucket": BUCKET}, lambda_context)

    # THEN the store matches the bucket, and the report counts each outcome
    assert report["counts"] == {
        "ingested": 2,
        "unchanged": 1,
        "deleted": 1,
        "failed": 1,
        "updated": 1,
    }
    [failure] = report["failures"]
    assert failure["source"] == f"s3://{BUCKET}/bad.md"
    assert "invalid collection 'no spaces!'" in failure["error"]
    assert _sources(handler) == {
        "kept.md": "ingested",
        "changed.md": "ingested",
        "metadata.md": "ingested",
        "new.md": "ingested",
        "bad.md": "failed",
    }
    metadata = ingestor.store.find_document(f"s3://{BUCKET}/metadata.md")
    assert metadata.metadata["user"] == {"team": "ops"}
    assert ingestor.store.keyword_search("default", "changed again", 5)[0].source.endswith(
        "changed.md"
    )


def test_a_second_reconcile_reads_and_embeds_nothing(
    handler: ModuleType, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a bucket reconciled once
    for index in range(5):
        s3.put_object(Bucket=BUCKET, Key=f"docs/{index}.md", Body=_doc(f"Doc {index}"))
    reader = CountingReader(s3)
    first = reconcile(handler.ingestor, reader, BUCKET)
    assert first.counts["ingested"] == 5
    embedded: list[int] = []
    monkeypatch.setattr(
        handler.ingestor.embedder, "embed_documents", lambda texts: embedded.append(len(texts))
    )
    reader.reads.clear()

    # WHEN it is reconciled again
    second = reconcile(handler.ingestor, reader, BUCKET)

    # THEN every object is unchanged from the listing alone: none is read, none embedded
    assert second.summary() == "ingested 0, unchanged 5, deleted 0, failed 0"
    assert reader.reads == [] and embedded == []


def test_the_listing_is_read_page_by_page(s3: Any) -> None:
    for index in range(5):
        s3.put_object(Bucket=BUCKET, Key=f"p/{index}.txt", Body=b"x")
    s3.put_object(Bucket=BUCKET, Key="other.txt", Body=b"x")
    listed = list(S3ObjectReader(s3).list_objects(BUCKET, "p/", page_size=2))
    assert [item.key for item in listed] == [f"p/{index}.txt" for index in range(5)]
    assert all(item.size == 1 and item.etag and item.modified for item in listed)


def test_reconcile_of_a_prefix_leaves_other_documents_alone(handler: ModuleType, s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="a/one.md", Body=_doc("One"))
    s3.put_object(Bucket=BUCKET, Key="b/two.md", Body=_doc("Two"))
    reconcile(handler.ingestor, handler.reader, BUCKET)
    s3.delete_object(Bucket=BUCKET, Key="b/two.md")
    s3.delete_object(Bucket=BUCKET, Key="a/one.md")

    report = reconcile(handler.ingestor, handler.reader, BUCKET, prefix="a/")

    assert report.counts["deleted"] == 1
    assert _sources(handler) == {"b/two.md": "ingested"}


def test_the_lambda_refuses_an_event_without_a_bucket(
    handler: ModuleType, lambda_context: Any
) -> None:
    with pytest.raises(ValueError, match="bucket"):
        handler.lambda_handler({"prefix": "x"}, lambda_context)
