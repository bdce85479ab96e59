"""The ingest Lambda with recorded SQS events, moto S3 and embedded PostgreSQL, through
psycopg and through the Data API driver (tests/support/data_api.py)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from tests.support.s3 import BUCKET

KEY = "handbook/Vacation Policy.md"
POLICY = b"""# Vacation policy

## Allowance
Employees get 25 vacation days each year. Unused days expire in March.

## Booking
Book vacation in the HR portal at least two weeks ahead.
"""


pytestmark = pytest.mark.both_drivers


def _sqs_event(template: dict[str, Any], *keys_and_names: tuple[str, str]) -> dict[str, Any]:
    """The recorded event, with one record per (key, event name)."""
    record = template["Records"][0]
    records = []
    for index, (key, name) in enumerate(keys_and_names):
        item = copy.deepcopy(record)
        item["messageId"] = f"msg-{index}"
        body = json.loads(item["body"])
        body["Records"][0]["eventName"] = name
        body["Records"][0]["s3"]["object"]["key"] = key.replace(" ", "+")
        item["body"] = json.dumps(body)
        records.append(item)
    return {"Records": records}


def _documents(ingest: ModuleType) -> dict[str, Any]:
    docs, _ = ingest.ingestor.store.list_documents(limit=100)
    return {d.source: d for d in docs}


def test_created_object_is_ingested_with_chunks(
    ingest: ModuleType, s3: Any, event: Callable[[str], dict[str, Any]], lambda_context: Any
) -> None:
    # GIVEN an object in the bucket and the S3 notification for it
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=POLICY, Metadata={"team": "hr"})
    # WHEN the ingest Lambda gets the recorded SQS batch
    response = ingest.lambda_handler(event("sqs_s3_object_created"), lambda_context)
    # THEN nothing failed and the document is stored with its chunks and heading paths
    assert response == {"batchItemFailures": []}
    doc = _documents(ingest)[f"s3://{BUCKET}/{KEY}"]
    assert (doc.status, doc.title, doc.format, doc.collection) == (
        "ingested",
        "Vacation policy",
        "markdown",
        "default",
    )
    assert doc.chunk_count == 2
    assert doc.metadata["user"] == {"team": "hr"}
    conn = ingest.ingestor.store.connection()
    rows = conn.execute(
        "SELECT section FROM chunks WHERE document_id = %s ORDER BY ordinal", (doc.id,)
    )
    sections = [r[0] for r in rows]
    assert sections == ["Vacation policy > Allowance", "Vacation policy > Booking"]


def test_unchanged_content_is_not_embedded_again(
    ingest: ModuleType,
    s3: Any,
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=POLICY)
    ingest.lambda_handler(event("sqs_s3_object_created"), lambda_context)
    before = _documents(ingest)[f"s3://{BUCKET}/{KEY}"]
    calls: list[int] = []
    original = ingest.ingestor.embedder.embed_documents

    def counting(texts: list[str]) -> Any:
        calls.append(len(texts))
        return original(texts)

    monkeypatch.setattr(ingest.ingestor.embedder, "embed_documents", counting)

    # WHEN the same content is delivered again
    response = ingest.lambda_handler(event("sqs_s3_object_created"), lambda_context)

    # THEN no embedding call is made and the document row is untouched
    assert response == {"batchItemFailures": []}
    assert calls == []
    assert _documents(ingest)[f"s3://{BUCKET}/{KEY}"].updated_at == before.updated_at

    # AND changed content replaces the chunks in one go
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=POLICY + b"\n## Carry-over\nFive days carry over.\n")
    ingest.lambda_handler(event("sqs_s3_object_created"), lambda_context)
    after = _documents(ingest)[f"s3://{BUCKET}/{KEY}"]
    assert after.id == before.id and after.chunk_count == 3 and calls == [3]


def test_removed_object_deletes_document_and_chunks(
    ingest: ModuleType, s3: Any, event: Callable[[str], dict[str, Any]], lambda_context: Any
) -> None:
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=POLICY)
    ingest.lambda_handler(event("sqs_s3_object_created"), lambda_context)
    s3.delete_object(Bucket=BUCKET, Key=KEY)

    response = ingest.lambda_handler(event("sqs_s3_object_removed"), lambda_context)

    assert response == {"batchItemFailures": []}
    assert f"s3://{BUCKET}/{KEY}" not in _documents(ingest)
    conn = ingest.ingestor.store.connection()
    assert conn.execute("SELECT count(*) FROM chunks").fetchone() == (0,)


def test_late_removed_event_for_a_recreated_object_keeps_it(
    ingest: ModuleType, s3: Any, event: Callable[[str], dict[str, Any]], lambda_context: Any
) -> None:
    # GIVEN an object deleted and uploaded again, whose removal event arrives last
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=POLICY)
    ingest.lambda_handler(event("sqs_s3_object_removed"), lambda_context)
    # THEN the store follows the bucket, which still holds the object
    assert _documents(ingest)[f"s3://{BUCKET}/{KEY}"].status == "ingested"


def test_test_event_is_ignored(
    ingest: ModuleType, event: Callable[[str], dict[str, Any]], lambda_context: Any
) -> None:
    before = len(_documents(ingest))
    assert ingest.lambda_handler(event("sqs_s3_test_event"), lambda_context) == {
        "batchItemFailures": []
    }
    assert len(_documents(ingest)) == before


def test_one_bad_record_never_fails_the_others(
    ingest: ModuleType, s3: Any, event: Callable[[str], dict[str, Any]], lambda_context: Any
) -> None:
    # GIVEN a batch with a good document, a corrupt one, an unsupported one and junk
    s3.put_object(Bucket=BUCKET, Key="good.md", Body=POLICY)
    s3.put_object(Bucket=BUCKET, Key="corrupt.html", Body=b"\x89PNG\r\n\x1a\n\x00\x00binary")
    s3.put_object(Bucket=BUCKET, Key="photo.png", Body=b"\x89PNG")
    batch = _sqs_event(
        event("sqs_s3_object_created"),
        ("good.md", "ObjectCreated:Put"),
        ("corrupt.html", "ObjectCreated:Put"),
        ("photo.png", "ObjectCreated:Put"),
    )
    junk = copy.deepcopy(batch["Records"][0])
    junk["messageId"], junk["body"] = "msg-junk", "this is not an S3 notification"
    batch["Records"].append(junk)

    # WHEN the Lambda processes the batch
    response = ingest.lambda_handler(batch, lambda_context)

    # THEN only the corrupt document and the junk message are reported for redelivery
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == [
        "msg-1",
        "msg-junk",
    ]
    docs = _documents(ingest)
    assert docs[f"s3://{BUCKET}/good.md"].status == "ingested"
    corrupt = docs[f"s3://{BUCKET}/corrupt.html"]
    assert corrupt.status == "failed" and "NUL" in (corrupt.error or "")
    skipped = docs[f"s3://{BUCKET}/photo.png"]
    assert skipped.status == "skipped" and "unsupported document type '.png'" in (
        skipped.error or ""
    )


def test_oversized_object_is_failed_with_the_reason(
    s3: Any,
    database_environment: dict[str, str],
    cold_start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
) -> None:
    ingest = cold_start("ingest", **database_environment, RAGLINE_MAX_DOCUMENT_BYTES="2048")
    s3.put_object(Bucket=BUCKET, Key="big.txt", Body=b"word " * 1000)
    batch = _sqs_event(event("sqs_s3_object_created"), ("big.txt", "ObjectCreated:Put"))
    response = ingest.lambda_handler(batch, lambda_context)
    assert response["batchItemFailures"] == [{"itemIdentifier": "msg-0"}]
    big = _documents(ingest)[f"s3://{BUCKET}/big.txt"]
    assert big.status == "failed" and "over the limit of 2048" in (big.error or "")


def test_collection_the_api_could_never_query_fails_the_document_with_the_reason(
    ingest: ModuleType, s3: Any, event: Callable[[str], dict[str, Any]], lambda_context: Any
) -> None:
    # GIVEN an object whose collection metadata breaks the API's collection pattern
    s3.put_object(Bucket=BUCKET, Key="bad.md", Body=POLICY, Metadata={"collection": "bad name!"})
    batch = _sqs_event(event("sqs_s3_object_created"), ("bad.md", "ObjectCreated:Put"))
    # WHEN the Lambda processes its event
    response = ingest.lambda_handler(batch, lambda_context)
    # THEN the message fails and the document is failed with the reason, not ingested
    assert response["batchItemFailures"] == [{"itemIdentifier": "msg-0"}]
    doc = _documents(ingest)[f"s3://{BUCKET}/bad.md"]
    assert doc.status == "failed" and doc.chunk_count == 0
    assert "invalid collection 'bad name!'" in (doc.error or "")


def test_new_metadata_on_identical_bytes_applies_without_embedding(
    ingest: ModuleType,
    s3: Any,
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a document ingested with some user metadata into one collection
    source = f"s3://{BUCKET}/{KEY}"
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=POLICY, Metadata={"team": "hr"})
    ingest.lambda_handler(event("sqs_s3_object_created"), lambda_context)
    before = _documents(ingest)[source]
    calls: list[int] = []
    monkeypatch.setattr(
        ingest.ingestor.embedder, "embed_documents", lambda texts: calls.append(len(texts))
    )

    # WHEN the same bytes are uploaded again with new metadata and another collection
    s3.put_object(
        Bucket=BUCKET,
        Key=KEY,
        Body=POLICY,
        Metadata={"team": "people-ops", "collection": "handbook-2027"},
    )
    response = ingest.lambda_handler(event("sqs_s3_object_created"), lambda_context)

    # THEN nothing is embedded, and the metadata and the collection are the new ones
    assert response == {"batchItemFailures": []}
    assert calls == []
    after = _documents(ingest)[source]
    assert after.id == before.id and after.chunk_count == before.chunk_count
    assert after.metadata["user"] == {"team": "people-ops"}
    assert after.collection == "handbook-2027"
    # AND the chunks moved with it: keyword search finds them in the new collection only
    store = ingest.ingestor.store
    assert {c.source for c in store.keyword_search("handbook-2027", "vacation", 5)} == {source}
    assert [c for c in store.keyword_search("default", "vacation", 5) if c.source == source] == []


def test_the_event_sequencer_is_kept_only_when_the_event_names_the_version_read(
    ingest: ModuleType, s3: Any, event: Callable[[str], dict[str, Any]], lambda_context: Any
) -> None:
    # GIVEN two objects, and events naming the first's ETag but an older one for the second
    etags = {}
    for key in ("named.md", "replaced.md"):
        etags[key] = s3.put_object(Bucket=BUCKET, Key=key, Body=POLICY + key.encode())["ETag"]
    batch = _sqs_event(
        event("sqs_s3_object_created"),
        ("named.md", "ObjectCreated:Put"),
        ("replaced.md", "ObjectCreated:Put"),
    )
    for record, etag in zip(batch["Records"], (etags["named.md"], '"0123older"'), strict=True):
        body = json.loads(record["body"])
        s3_object = body["Records"][0]["s3"]["object"]
        s3_object.update(eTag=etag.strip('"'), sequencer="00AB12")
        s3_object.pop("versionId")  # the bucket is not versioned
        record["body"] = json.dumps(body)

    # WHEN the Lambda processes them
    assert ingest.lambda_handler(batch, lambda_context) == {"batchItemFailures": []}

    # THEN each document records the version it was made from, with the sequencer only
    # where the event was about that version
    docs = _documents(ingest)
    named, replaced = docs[f"s3://{BUCKET}/named.md"], docs[f"s3://{BUCKET}/replaced.md"]
    assert (named.object_etag, named.object_sequencer) == (etags["named.md"].strip('"'), "00AB12")
    assert (replaced.object_etag, replaced.object_sequencer) == (
        etags["replaced.md"].strip('"'),
        None,
    )
    assert named.object_modified is not None
