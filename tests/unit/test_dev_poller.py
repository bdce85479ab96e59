"""The local SQS event source mapping: batches, partial failures, redelivery, DLQ.

Runs against moto in server mode on a free port, as the local stack does.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from moto.server import ThreadedMotoServer
from ragline.dev.aws import client
from ragline.dev.context import LambdaFunction
from ragline.dev.poller import SqsPoller, build_sqs_event, failed_message_ids

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:ragline-ingest"


class RecordingHandler:
    """A fake ingest function: records every body it sees, fails those it is told to."""

    def __init__(self, fail_when: Callable[[str], bool] = lambda body: False) -> None:
        self.fail_when = fail_when
        self.raise_error: Exception | None = None
        self.bodies: list[str] = []
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        self.bodies.extend(record["body"] for record in event["Records"])
        if self.raise_error is not None:
            raise self.raise_error
        failures = [
            {"itemIdentifier": record["messageId"]}
            for record in event["Records"]
            if self.fail_when(record["body"])
        ]
        return {"batchItemFailures": failures}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def sqs(endpoint: str) -> Any:
    return client("sqs", endpoint)


@pytest.fixture
def queues(sqs: Any) -> tuple[str, str]:
    """A fresh queue (1 s visibility, 2 receives) and its DLQ, named uniquely per test."""
    suffix = uuid.uuid4().hex[:8]
    dlq_url = sqs.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})
    queue_url = sqs.create_queue(
        QueueName=f"ingest-{suffix}",
        Attributes={"VisibilityTimeout": "1", "RedrivePolicy": redrive},
    )["QueueUrl"]
    return queue_url, dlq_url


def _poller(sqs: Any, queue_url: str, handler: RecordingHandler) -> SqsPoller:
    return SqsPoller(
        sqs=sqs,
        queue_url=queue_url,
        queue_arn=QUEUE_ARN,
        function=LambdaFunction("ragline-ingest", handler),
        wait_seconds=1,
    )


def _dlq_bodies(sqs: Any, dlq_url: str) -> list[str]:
    messages = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10).get("Messages", [])
    return [message["Body"] for message in messages]


def test_successes_are_deleted_and_failures_redelivered_until_the_dlq(
    sqs: Any, queues: tuple[str, str]
) -> None:
    # GIVEN a queue holding three messages and a function that fails one of them
    queue_url, dlq_url = queues
    for body in ("good-1", "bad", "good-2"):
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    handler = RecordingHandler(fail_when=lambda body: body == "bad")
    poller = _poller(sqs, queue_url, handler)

    # WHEN the poller runs until the failing message has left the queue
    dead: list[str] = []
    deadline = time.monotonic() + 20
    while not dead and time.monotonic() < deadline:
        poller.poll_once()
        dead = _dlq_bodies(sqs, dlq_url)

    # THEN successes were handled once, the failure twice (maxReceiveCount), then dead-lettered
    assert dead == ["bad"]
    assert sorted(handler.bodies) == ["bad", "bad", "good-1", "good-2"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_the_redelivered_failure_carries_its_receive_count(
    sqs: Any, queues: tuple[str, str]
) -> None:
    # GIVEN a function that fails every message
    queue_url, _ = queues
    sqs.send_message(QueueUrl=queue_url, MessageBody="bad")
    handler = RecordingHandler(fail_when=lambda body: True)
    poller = _poller(sqs, queue_url, handler)

    # WHEN the poller runs until it has seen the message twice
    deadline = time.monotonic() + 20
    while len(handler.events) < 2 and time.monotonic() < deadline:
        poller.poll_once()

    # THEN the second delivery says so, as ApproximateReceiveCount does on AWS
    counts = [
        event["Records"][0]["attributes"]["ApproximateReceiveCount"] for event in handler.events
    ]
    assert counts == ["1", "2"]


def test_a_raising_function_fails_the_whole_batch(sqs: Any, queues: tuple[str, str]) -> None:
    # GIVEN two messages and a function that raises
    queue_url, _ = queues
    for body in ("one", "two"):
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    handler = RecordingHandler()
    handler.raise_error = RuntimeError("database unavailable")
    poller = _poller(sqs, queue_url, handler)

    # WHEN one batch is polled
    outcome = poller.poll_once()

    # THEN nothing was deleted: every message returns once its visibility timeout expires
    assert outcome.error == "RuntimeError: database unavailable"
    assert set(outcome.failed) == set(outcome.received)
    assert outcome.succeeded == ()
    handler.raise_error = None
    deadline = time.monotonic() + 20
    while len(handler.bodies) < 4 and time.monotonic() < deadline:
        poller.poll_once()
    assert sorted(handler.bodies) == ["one", "one", "two", "two"]


def test_records_have_the_lambda_sqs_event_shape(sqs: Any, queues: tuple[str, str]) -> None:
    # GIVEN a message with string and binary attributes
    queue_url, _ = queues
    sqs.send_message(
        QueueUrl=queue_url,
        MessageBody='{"Records": []}',
        MessageAttributes={
            "origin": {"DataType": "String", "StringValue": "test"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    handler = RecordingHandler()

    # WHEN it is polled
    _poller(sqs, queue_url, handler).poll_once()

    # THEN the function receives the record as Lambda's event source mapping builds it
    (record,) = handler.events[0]["Records"]
    assert set(record) >= {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == QUEUE_ARN
    assert record["awsRegion"] == "us-east-1"
    assert record["body"] == '{"Records": []}'
    assert {"ApproximateReceiveCount", "SentTimestamp", "SenderId"} <= set(record["attributes"])
    assert record["messageAttributes"]["origin"] == {
        "stringValue": "test",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert base64.b64decode(record["messageAttributes"]["blob"]["binaryValue"]) == b"\x00\x01"


def test_event_builder_keeps_every_message_in_order() -> None:
    # GIVEN two messages as ReceiveMessage returns them
    messages = [
        {"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": f"b{i}", "MD5OfBody": "x"}
        for i in range(2)
    ]

    # WHEN the event is built
    event = build_sqs_event(messages, QUEUE_ARN)

    # THEN there is one record per message, in order, with empty attribute maps
    assert [record["messageId"] for record in event["Records"]] == ["m0", "m1"]
    assert event["Records"][0]["attributes"] == {}
    assert event["Records"][0]["messageAttributes"] == {}


@pytest.mark.parametrize(
    ("response", "failed"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, {"a", "b"}),
        ({"batchItemFailures": [{"itemIdentifier": "unknown"}]}, {"a", "b"}),
        ({"batchItemFailures": [{}]}, {"a", "b"}),
        ({"batchItemFailures": "b"}, {"a", "b"}),
        ("not a mapping", {"a", "b"}),
    ],
)
def test_partial_batch_responses_are_read_as_the_event_source_mapping_does(
    response: Any, failed: set[str]
) -> None:
    # GIVEN a batch of messages a and b, and the function's response
    # WHEN the response is read
    # THEN the failures are the listed ids, or the whole batch when the response is invalid
    assert failed_message_ids(response, ["a", "b"]) == failed
