"""Two ingests of one key at once (moto S3, embedded PostgreSQL): the newer version wins,
through psycopg and through the Data API driver (tests/support/data_api.py).

Each test holds one real ingest at a chosen point with a hook, runs a second ingest of
the same key to completion, then lets the first finish: the order of commits is the
unlucky one, and the store must still end up holding what the bucket holds.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from ragline.ingest import IngestResult, StoredObject
from ragline.store import ObjectVersion

from tests.support.s3 import BUCKET

KEY = "handbook/travel.md"
SOURCE = f"s3://{BUCKET}/{KEY}"
V2 = b"# Travel\n\nBook trains through the portal. Version two: economy class only.\n"
V3 = b"# Travel\n\nBook trains through the portal. Version three: first class allowed.\n"
TIMEOUT = 30.0


pytestmark = pytest.mark.both_drivers


@pytest.fixture
def ingest(
    s3: Any, database_environment: dict[str, str], cold_start: Callable[..., ModuleType]
) -> ModuleType:
    module = cold_start("ingest", **database_environment, RAGLINE_EMBEDDINGS="hash")
    module.ingestor.store.connection().execute("TRUNCATE documents CASCADE")
    return module


class Held:
    """Runs ``work`` in a thread that stops where the test's hook calls :meth:`pause`,
    until :meth:`release`."""

    def __init__(self, work: Callable[[], IngestResult]) -> None:
        self._work = work
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._paused = threading.Event()
        self._released = threading.Event()
        self.result: IngestResult | None = None
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.result = self._work()
        except BaseException as exc:  # reported by finish(), in the test's thread
            self.error = exc
        finally:
            self._paused.set()  # never leave the test waiting on a thread that died

    def start(self) -> None:
        self._thread.start()
        assert self._paused.wait(TIMEOUT), "the held ingest never reached its hook"
        assert self.error is None, self.error

    def pause(self) -> None:
        """Called from the hook, in the held thread."""
        if threading.current_thread() is self._thread:
            self._paused.set()
            assert self._released.wait(TIMEOUT)

    def finish(self) -> IngestResult:
        self._released.set()
        self._thread.join(TIMEOUT)
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def _stored(ingest: ModuleType) -> tuple[Any, list[str]]:
    store = ingest.ingestor.store
    conn = store.connection()
    rows = conn.execute("SELECT id FROM documents WHERE source = %s", (SOURCE,)).fetchall()
    assert len(rows) <= 1
    record = store.find_document(SOURCE)
    texts = [
        r[0]
        for r in conn.execute(
            "SELECT c.text FROM chunks c JOIN documents d ON d.id = c.document_id"
            " WHERE d.source = %s ORDER BY c.ordinal",
            (SOURCE,),
        )
    ]
    return record, texts


def test_an_ingest_that_read_an_older_version_and_commits_last_changes_nothing(
    ingest: ModuleType, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN ingest A, which has read v2 and is held after embedding it, before its commit
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=V2)
    embedder = ingest.ingestor.embedder
    original = embedder.embed_documents
    a = Held(lambda: ingest.ingestor.sync_object(ingest.reader, BUCKET, KEY))

    def embed_then_pause(texts: list[str]) -> Any:
        result = original(texts)
        a.pause()
        return result

    monkeypatch.setattr(embedder, "embed_documents", embed_then_pause)
    a.start()

    # WHEN v3 is uploaded and ingest B stores it, then A commits
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=V3)
    b = ingest.ingestor.sync_object(ingest.reader, BUCKET, KEY)
    late = a.finish()

    # THEN B's v3 stays, whole and once; A's write was refused as superseded
    assert b.status == "ingested"
    assert late.status == "superseded"
    record, texts = _stored(ingest)
    assert record.content_hash == hashlib.sha256(V3).hexdigest()
    assert record.status == "ingested" and record.chunk_count == len(texts) == 1
    assert "first class allowed" in texts[0]
    head = s3.head_object(Bucket=BUCKET, Key=KEY)
    assert record.object_etag == head["ETag"].strip('"')
    assert ingest.ingestor.store.keyword_search("default", "economy", 5) == []


def test_an_older_ingest_that_commits_first_is_replaced_by_the_newer(
    ingest: ModuleType, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN ingest B of v3 held before its commit, while A has stored v2
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=V2)
    assert ingest.ingestor.sync_object(ingest.reader, BUCKET, KEY).status == "ingested"
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=V3)
    embedder = ingest.ingestor.embedder
    original = embedder.embed_documents
    b = Held(lambda: ingest.ingestor.sync_object(ingest.reader, BUCKET, KEY))

    def embed_then_pause(texts: list[str]) -> Any:
        result = original(texts)
        b.pause()
        return result

    monkeypatch.setattr(embedder, "embed_documents", embed_then_pause)
    b.start()

    # WHEN B commits
    result = b.finish()

    # THEN v3 replaced v2: the guard lets the version the bucket holds through
    assert result.status == "ingested"
    record, texts = _stored(ingest)
    assert record.content_hash == hashlib.sha256(V3).hexdigest() and len(texts) == 1


class _PausingReader:
    """The handler's reader, with a hook after each read of the object."""

    def __init__(self, reader: Any, after_get: Callable[[StoredObject | None], None]) -> None:
        self._reader = reader
        self._after_get = after_get

    def get(self, bucket: str, key: str) -> StoredObject | None:
        obj = self._reader.get(bucket, key)
        self._after_get(obj)
        return obj

    def head(self, bucket: str, key: str) -> ObjectVersion | None:
        return self._reader.head(bucket, key)


def test_a_late_delete_never_removes_a_newer_upload(ingest: ModuleType, s3: Any) -> None:
    # GIVEN a stored object that is deleted, and delete D that has seen it gone and is held
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=V2)
    ingest.ingestor.sync_object(ingest.reader, BUCKET, KEY)
    s3.delete_object(Bucket=BUCKET, Key=KEY)
    d: Held
    reader = _PausingReader(ingest.reader, lambda obj: d.pause())
    d = Held(lambda: ingest.ingestor.sync_object(reader, BUCKET, KEY))
    d.start()

    # WHEN the object is uploaded again and ingested, then D commits
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=V3)
    again = ingest.ingestor.sync_object(ingest.reader, BUCKET, KEY)
    late = d.finish()

    # THEN the re-upload stays: the delete checked the bucket under the lock and gave up
    assert again.status == "ingested"
    assert late.status == "superseded"
    record, texts = _stored(ingest)
    assert record is not None and record.content_hash == hashlib.sha256(V3).hexdigest()
    assert len(texts) == 1


def test_a_delete_of_an_object_that_is_gone_still_deletes(ingest: ModuleType, s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=V2)
    ingest.ingestor.sync_object(ingest.reader, BUCKET, KEY)
    s3.delete_object(Bucket=BUCKET, Key=KEY)
    assert ingest.ingestor.sync_object(ingest.reader, BUCKET, KEY).status == "deleted"
    assert _stored(ingest) == (None, [])
