"""The poller: Lambda's SQS event source mapping, played locally.

It long-polls the queue, hands each batch to the ingest function as the Lambda SQS
event, reads the partial batch response and deletes only the successes. Failures stay
in the queue, come back once their visibility timeout expires, and after
``maxReceiveCount`` receives the queue's redrive policy moves them to the DLQ (moto
applies the policy on receive, as SQS does).
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ragline.dev.context import REGION, LambdaFunction

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import DeleteMessageBatchRequestEntryTypeDef

logger = logging.getLogger(__name__)

MAX_BATCH_SIZE = 10  # SQS returns at most 10 messages per receive


@dataclass(frozen=True)
class BatchOutcome:
    """What became of one batch: message ids handed over, deleted and left for redelivery."""

    received: tuple[str, ...] = ()
    succeeded: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    error: str | None = None


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """One message attribute in the event's spelling (camelCase, binary as base64)."""

    def encode(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    attribute: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [encode(item) for item in value.get("BinaryListValues", [])],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = encode(value["BinaryValue"])
    return attribute


def build_sqs_event(
    messages: Sequence[Mapping[str, Any]], queue_arn: str, region: str = REGION
) -> dict[str, Any]:
    """The event Lambda passes for a batch of messages from ``ReceiveMessage``."""
    records = []
    for message in messages:
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": {
                name: _message_attribute(value)
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": region,
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        records.append(record)
    return {"Records": records}


def failed_message_ids(response: Any, batch: Sequence[str]) -> set[str]:
    """The ids to leave in the queue, read from a partial batch response.

    As the event source mapping does: no ``batchItemFailures`` (or an empty list) means
    all succeeded; a malformed response, or an identifier that is empty or not in the
    batch, fails the whole batch.
    """
    if response is None:
        return set()
    if not isinstance(response, Mapping):
        return set(batch)
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return set(batch)
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, Mapping) else None
        if not identifier or identifier not in batch:
            return set(batch)
        failed.add(identifier)
    return failed


@dataclass
class SqsPoller:
    """Receives batches from one queue and invokes one function with them."""

    sqs: SQSClient
    queue_url: str
    queue_arn: str
    function: LambdaFunction
    batch_size: int = MAX_BATCH_SIZE
    wait_seconds: int = 1
    region: str = REGION
    _stopping: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch size must be between 1 and {MAX_BATCH_SIZE}")

    def poll_once(self) -> BatchOutcome:
        """Receive one batch (waiting up to ``wait_seconds``), invoke, delete the successes."""
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_seconds,
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return BatchOutcome()
        ids = [message["MessageId"] for message in messages]
        event = build_sqs_event(messages, self.queue_arn, self.region)
        error = None
        try:
            failed = failed_message_ids(self.function.invoke(event), ids)
        except Exception as exc:  # the handler's failure is the batch's outcome, as on Lambda
            logger.exception("%s failed; the batch of %d returns", self.function.name, len(ids))
            failed, error = set(ids), f"{type(exc).__name__}: {exc}"
        succeeded = [message for message in messages if message["MessageId"] not in failed]
        self._delete(succeeded)
        if failed:
            logger.warning(
                "%d of %d messages failed; they return after the visibility timeout",
                len(failed),
                len(ids),
            )
        return BatchOutcome(
            received=tuple(ids),
            succeeded=tuple(message["MessageId"] for message in succeeded),
            failed=tuple(i for i in ids if i in failed),
            error=error,
        )

    def _delete(self, messages: Sequence[Mapping[str, Any]]) -> None:
        if not messages:
            return
        entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
            for index, message in enumerate(messages)
        ]
        result = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        for failure in result.get("Failed", []):
            logger.error("could not delete message %s: %s", failure["Id"], failure.get("Message"))

    def run(self) -> None:
        """Poll until :meth:`stop`; a failing receive is logged and retried, never fatal."""
        while not self._stopping.is_set():
            try:
                self.poll_once()
            except Exception:  # the endpoint going away at shutdown, or a transient error
                if self._stopping.is_set():
                    return
                logger.exception("polling %s failed; retrying", self.queue_url)
                self._stopping.wait(1.0)

    def start(self) -> None:
        """Poll in a daemon thread."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self.run, name="ragline-sqs-poller", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the batch in hand (a long poll ends within ``wait_seconds``)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
