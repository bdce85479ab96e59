"""S3 event notifications inside SQS messages."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from ragline.errors import InvalidRequestError
from ragline.ingest import ObjectChange, object_changes


def test_created_event_key_is_url_decoded_once(event: Callable[[str], dict[str, Any]]) -> None:
    body = event("sqs_s3_object_created")["Records"][0]["body"]
    assert object_changes(body) == [
        ObjectChange("ObjectCreated:Put", "ragline-documents", "handbook/Vacation Policy.md")
    ]


def test_the_version_the_event_names_is_read(event: Callable[[str], dict[str, Any]]) -> None:
    [change] = object_changes(event("sqs_s3_object_created")["Records"][0]["body"])
    assert (change.sequencer, change.etag, change.version_id) == (
        "0055AED6DCD90281E5",
        "d41d8cd98f00b204e9800998ecf8427e",
        "096fKKXTRTtl3on89fVO.nfljtsv6qko",
    )


def test_percent_encoding_is_decoded_once() -> None:
    body = json.dumps(
        {
            "Records": [
                {
                    "eventName": "ObjectRemoved:Delete",
                    "s3": {"bucket": {"name": "b"}, "object": {"key": "a%2Bb%2520c+d.md"}},
                }
            ]
        }
    )
    assert object_changes(body)[0].key == "a+b%20c d.md"


def test_test_event_carries_no_changes(event: Callable[[str], dict[str, Any]]) -> None:
    assert object_changes(event("sqs_s3_test_event")["Records"][0]["body"]) == []


@pytest.mark.parametrize("body", ["not json", "[]", '{"hello": 1}', '{"Records": [{"s3": {}}]}'])
def test_foreign_messages_are_rejected(body: str) -> None:
    with pytest.raises(InvalidRequestError):
        object_changes(body)
