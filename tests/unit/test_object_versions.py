"""Is this event still current? ``ingest/versions.py`` alone: no bucket, no database.

The bucket is a recording stand-in for ``ObjectReader.head``; the stored document is a
``DocumentRecord`` built here, as the store would hand it to a precondition.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from ragline.ingest import ListedObject, StoredObject
from ragline.ingest.versions import (
    Plan,
    StillCurrent,
    StillGone,
    listing_unchanged,
    plan,
    version_still_current,
)
from ragline.store import DocumentRecord, DocumentWrite, ObjectVersion

SOURCE = "s3://bucket/handbook/travel.md"
MODIFIED = datetime(2026, 3, 1, 9, 30, 15, tzinfo=UTC)
V1 = ObjectVersion(etag="e1", modified=MODIFIED)
V2 = ObjectVersion(etag="e2", modified=MODIFIED.replace(minute=31))


def _stored(version: ObjectVersion | None = V1, **fields: Any) -> DocumentRecord:
    values: dict[str, Any] = {
        "id": uuid4(),
        "collection": "default",
        "source": SOURCE,
        "title": "Travel",
        "format": "markdown",
        "content_hash": "h1",
        "size_bytes": 120,
        "metadata": {"s3": {"key": "handbook/travel.md"}},
        "status": "ingested",
        "error": None,
        "chunk_count": 2,
        "embedding_model": "hash",
        "created_at": MODIFIED,
        "updated_at": MODIFIED,
        "object_etag": version.etag if version else None,
        "object_version_id": version.version_id if version else None,
        "object_modified": version.modified if version else None,
    }
    values.update(fields)
    return DocumentRecord(**values)


def _write(version: ObjectVersion | None = V1, **fields: Any) -> DocumentWrite:
    values: dict[str, Any] = {
        "collection": "default",
        "source": SOURCE,
        "content_hash": "h1",
        "metadata": {"s3": {"key": "handbook/travel.md"}},
        "version": version,
    }
    values.update(fields)
    return DocumentWrite(**values)


class Bucket:
    """Answers HEADs with the versions it is given, and counts them."""

    def __init__(self, **current: ObjectVersion | None) -> None:
        self.current = current
        self.heads: list[str] = []

    def head(self, bucket: str, key: str) -> ObjectVersion | None:
        self.heads.append(key)
        return self.current.get(key.replace("/", "_").replace(".", "_"))


# --- plan: what storing a document takes ------------------------------------------------


def test_a_document_the_store_lacks_is_ingested() -> None:
    assert plan(None, _write(), "hash") is Plan.INGEST


def test_the_same_content_version_and_attributes_is_unchanged() -> None:
    # GIVEN the store holds this content, from this version, with these attributes
    # WHEN the same upload is planned, THEN there is nothing to do
    assert plan(_stored(), _write(), "hash") is Plan.UNCHANGED


@pytest.mark.parametrize(
    "write",
    [
        _write(V2),  # another version of the object, same bytes
        _write(collection="finance"),
        _write(metadata={"s3": {"key": "handbook/travel.md"}, "tags": {"team": "ops"}}),
    ],
    ids=["version", "collection", "metadata"],
)
def test_unchanged_content_with_new_attributes_is_reattributed(write: DocumentWrite) -> None:
    assert plan(_stored(), write, "hash") is Plan.REATTRIBUTE


@pytest.mark.parametrize(
    "stored",
    [
        _stored(content_hash="h0"),  # other content
        _stored(embedding_model="minilm"),  # embedded by another model
        _stored(status="failed"),  # never made it: try again
    ],
    ids=["content", "model", "failed"],
)
def test_content_not_fully_processed_is_ingested_again(stored: DocumentRecord) -> None:
    assert plan(stored, _write(), "hash") is Plan.INGEST


def test_a_skipped_document_stays_skipped_whatever_the_model() -> None:
    # GIVEN a document skipped (no loader for its type), with no embedding model
    stored = _stored(status="skipped", embedding_model=None)
    # WHEN the same bytes come again, THEN they are not parsed again
    assert plan(stored, _write(), "hash") is Plan.UNCHANGED


def test_a_local_file_without_a_version_keeps_the_stored_one() -> None:
    # GIVEN a document stored from an S3 version, written again with no version (a file)
    # THEN the missing version is no news
    assert plan(_stored(), _write(None), "hash") is Plan.UNCHANGED


# --- the precondition of a write: still current? ------------------------------------------


def test_a_version_the_store_already_holds_needs_no_head() -> None:
    bucket = Bucket(handbook_travel_md=V2)
    assert version_still_current(V1, V1, lambda: bucket.head("bucket", "handbook/travel.md"))
    assert bucket.heads == []


def test_a_version_the_store_lacks_goes_ahead_only_if_the_bucket_still_holds_it() -> None:
    assert version_still_current(V2, V1, lambda: V2)
    assert not version_still_current(V2, V1, lambda: ObjectVersion(etag="e3"))
    assert not version_still_current(V2, None, lambda: None)  # deleted since the read


def test_versions_compare_by_version_id_when_both_have_one() -> None:
    read = ObjectVersion(etag="same", version_id="v1", modified=MODIFIED)
    later = ObjectVersion(etag="same", version_id="v2", modified=MODIFIED)
    assert not version_still_current(read, None, lambda: later)


def _object(**fields: Any) -> StoredObject:
    values: dict[str, Any] = {
        "bucket": "bucket",
        "key": "handbook/travel.md",
        "size": 120,
        "read": lambda: b"",
        "etag": V2.etag,
        "modified": V2.modified,
    }
    values.update(fields)
    return StoredObject(**values)


def test_an_older_read_loses_to_the_newer_version_in_the_bucket() -> None:
    # GIVEN ingest A read v2, and meanwhile v3 was uploaded and stored
    v3 = ObjectVersion(etag="e3", modified=MODIFIED.replace(minute=32))
    bucket = Bucket(handbook_travel_md=v3)
    check = StillCurrent.of(_object(), bucket)
    # WHEN A's write asks its precondition with v3 stored, THEN it is refused
    assert not check.holds(_stored(v3))
    assert bucket.heads == ["handbook/travel.md.metadata.json", "handbook/travel.md"]


def test_the_newer_read_goes_ahead_over_an_older_stored_version() -> None:
    # GIVEN the store holds v1 and the bucket v2, which this ingest read
    bucket = Bucket(handbook_travel_md=V2)
    # WHEN its write asks, THEN it goes ahead
    assert StillCurrent.of(_object(), bucket).holds(_stored(V1))


def test_a_write_read_with_a_replaced_sidecar_is_refused() -> None:
    # GIVEN an object read with sidecar "s1", whose sidecar is now "s2"
    bucket = Bucket(
        handbook_travel_md=V2,
        handbook_travel_md_metadata_json=ObjectVersion(etag="s2"),
    )
    check = StillCurrent.of(_object(sidecar=b"{}", sidecar_etag="s1"), bucket)
    # WHEN asked, THEN refused before the object is even looked at
    assert not check.holds(_stored(V2))
    assert bucket.heads == ["handbook/travel.md.metadata.json"]
    # AND a read of the current sidecar goes ahead, as does one without any sidecar
    assert replace(check, sidecar_etag="s2").holds(_stored(V2))
    assert not replace(check, sidecar_etag=None).holds(_stored(V2))
    assert StillCurrent.of(_object(), Bucket(handbook_travel_md=V2)).holds(None)


def test_a_delete_goes_ahead_only_while_the_object_is_gone() -> None:
    gone = StillGone.of(Bucket(), "bucket", "handbook/travel.md")
    back = StillGone.of(Bucket(handbook_travel_md=V2), "bucket", "handbook/travel.md")
    assert gone.holds(_stored())
    assert not back.holds(_stored())


# --- a listing: what a reconcile may leave alone ------------------------------------------


def test_a_listing_of_the_stored_version_is_unchanged() -> None:
    # GIVEN a listing with milliseconds (HEAD and GET give whole seconds)
    listed = ListedObject("handbook/travel.md", 120, "e1", MODIFIED.replace(microsecond=250000))
    assert listing_unchanged(_stored(), listed, "hash")
    assert not listing_unchanged(_stored(), replace(listed, etag="e2"), "hash")
    assert not listing_unchanged(_stored(), replace(listed, size=121), "hash")
    assert not listing_unchanged(_stored(), listed, "minilm")
    assert not listing_unchanged(_stored(None), listed, "hash")
