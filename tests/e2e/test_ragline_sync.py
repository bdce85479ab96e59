"""``ragline sync`` and ``ragline dlq redrive`` against a running ``ragline dev``.

Events are lost on purpose by switching the bucket's notifications off around the
changes, as a restart, a crash mid-batch or a long outage would lose them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.e2e.support import DevProcess, http_json, run_ragline, wait_until

pytestmark = pytest.mark.slow

DEADLINE = 30.0


def _documents(api: str) -> dict[str, dict[str, Any]]:
    status, body = http_json("GET", f"{api}/documents?limit=200")
    assert status == 200, body
    return {document["source"]: document for document in body["documents"]}


@contextmanager
def _events_lost(s3: Any, bucket: str) -> Iterator[None]:
    """Changes made inside send no event to the ingest queue."""
    configuration = s3.get_bucket_notification_configuration(Bucket=bucket)
    configuration.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    try:
        yield
    finally:
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration=configuration
        )


def test_sync_repairs_what_lost_events_left_behind(
    dev_stack: DevProcess, endpoints: dict[str, str], s3: Any
) -> None:
    # GIVEN a document ingested through its event
    api, bucket = endpoints["api"], endpoints["bucket"]
    orphan, missed = f"s3://{bucket}/sync/orphan.md", f"s3://{bucket}/sync/missed.md"
    s3.put_object(Bucket=bucket, Key="sync/orphan.md", Body=b"# Orphan\n\nSoon gone.\n")
    wait_until(lambda: orphan in _documents(api), timeout=DEADLINE, what="the first document")
    # AND then its object deleted and another uploaded, both events lost
    with _events_lost(s3, bucket):
        s3.delete_object(Bucket=bucket, Key="sync/orphan.md")
        s3.put_object(
            Bucket=bucket, Key="sync/missed.md", Body=b"# Missed\n\nThe heron nests in May.\n"
        )

    # WHEN `ragline sync` runs against the running stack, twice
    first = run_ragline("sync", "--data-dir", str(dev_stack.data_dir), "--prefix", "sync/")
    second = run_ragline("sync", "--data-dir", str(dev_stack.data_dir), "--prefix", "sync/")

    # THEN the store matches the bucket, and the second run finds nothing to do
    assert first.returncode == 0, first.stdout + first.stderr
    assert "ingested 1, unchanged 0, deleted 1, failed 0" in first.stdout
    assert "ingested 0, unchanged 1, deleted 0, failed 0" in second.stdout
    documents = _documents(api)
    assert orphan not in documents and documents[missed]["status"] == "ingested"
    status, body = http_json("POST", f"{api}/retrieve", {"query": "heron nests", "top_k": 3})
    assert status == 200 and body["results"][0]["source"] == missed


def test_dlq_redrive_sends_dead_letters_back_to_be_ingested(
    dev_stack: DevProcess, endpoints: dict[str, str], s3: Any, sqs: Any
) -> None:
    # GIVEN an object whose event rests in the DLQ (as after an outage)
    api, bucket = endpoints["api"], endpoints["bucket"]
    source = f"s3://{bucket}/redrive/late.md"
    with _events_lost(s3, bucket):
        s3.put_object(Bucket=bucket, Key="redrive/late.md", Body=b"# Late\n\nOtters at dawn.\n")
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": "redrive/late.md"}},
    }
    sqs.send_message(QueueUrl=endpoints["dlq"], MessageBody=json.dumps({"Records": [record]}))

    # WHEN the DLQ is redriven
    result = run_ragline("dlq", "redrive", "--data-dir", str(dev_stack.data_dir))

    # THEN the message went back to the queue and the stack ingested its object
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("1 messages moved")
    wait_until(
        lambda: _documents(api).get(source, {}).get("status") == "ingested",
        timeout=DEADLINE,
        what="the redriven object to be ingested",
    )
