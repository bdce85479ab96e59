"""Dead-letter queue redrive, and a look at what rests there before moving it.

After an outage longer than the ingest queue's retries, every event rests in the DLQ.
Each message is deleted from the DLQ only after the queue has accepted its copy, so a
failure part-way (a throttled send, a lost connection) loses nothing: the messages not
yet sent are made visible again at once, and at worst a message is delivered twice,
which the ingest pipeline absorbs (it makes the store match the bucket, whatever the
event says).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

# SQS's maximum per receive and per batch call.
_BATCH = 10
# Long enough to send and delete one batch; the messages of a batch that failed are made
# visible again right away, so this only bounds a crash of the redriving process.
_VISIBILITY_SECONDS = 60


@dataclass(frozen=True)
class RedriveReport:
    """How many messages moved back to the queue, and how many stayed in the DLQ."""

    moved: int
    failed: int = 0


class RedriveError(RuntimeError):
    """The redrive stopped part-way; ``moved`` messages made it back before it did."""

    def __init__(self, message: str, moved: int) -> None:
        super().__init__(message)
        self.moved = moved


def redrive(
    sqs: Any,
    dlq_url: str,
    queue_url: str,
    *,
    limit: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> RedriveReport:
    """Move up to ``limit`` messages (default: all) from ``dlq_url`` to ``queue_url``.

    Bodies and message attributes are kept. ``on_batch`` gets the count of each batch
    moved. Messages the queue refuses stay in the DLQ and are counted as failed; an error
    from SQS itself stops the run with RedriveError, after making the batch in hand
    visible again.
    """
    moved = failed = 0
    while limit is None or moved + failed < limit:
        wanted = _BATCH if limit is None else min(_BATCH, limit - moved - failed)
        messages = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=wanted,
            VisibilityTimeout=_VISIBILITY_SECONDS,
            WaitTimeSeconds=1,  # a short poll may miss messages of a small queue
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            break
        try:
            sent = _send(sqs, queue_url, messages)
        except Exception as exc:
            _release(sqs, dlq_url, messages)
            raise RedriveError(f"sending to {queue_url} failed: {exc}", moved) from exc
        unsent = [m for m in messages if m["MessageId"] not in sent]
        if unsent:
            _release(sqs, dlq_url, unsent)
            failed += len(unsent)
        done = [m for m in messages if m["MessageId"] in sent]
        if done:
            sqs.delete_message_batch(
                QueueUrl=dlq_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ],
            )
            moved += len(done)
            if on_batch is not None:
                on_batch(len(done))
        if not done:  # the queue refuses every message: stop rather than spin
            break
    return RedriveReport(moved, failed)


@dataclass(frozen=True)
class DeadLetter:
    """One message resting in the DLQ: what it asks for, and how often it was tried."""

    message_id: str
    receive_count: int
    sent_at: datetime | None
    # (event name, s3:// source) per object change; empty for a body that is no S3 event
    changes: tuple[tuple[str, str], ...]
    # why it could not be read as an S3 event, when it could not
    unreadable: str | None = None


def peek(sqs: Any, dlq_url: str, *, limit: int = 100) -> list[DeadLetter]:
    """Up to ``limit`` messages of the DLQ, read without consuming them.

    Each batch is hidden while the next is read (so every message is seen once) and all
    are made visible again at the end, or at once if reading fails. A message received
    here counts one more receive in SQS's ``ApproximateReceiveCount``.
    """
    from ragline.errors import InvalidRequestError
    from ragline.ingest.events import object_changes

    seen: list[dict[str, Any]] = []
    letters: list[DeadLetter] = []
    try:
        while len(seen) < limit:
            messages = sqs.receive_message(
                QueueUrl=dlq_url,
                MaxNumberOfMessages=min(_BATCH, limit - len(seen)),
                VisibilityTimeout=_VISIBILITY_SECONDS,
                WaitTimeSeconds=1,
                AttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            ).get("Messages", [])
            if not messages:
                break
            seen.extend(messages)
            for message in messages:
                attributes = message.get("Attributes", {})
                sent = attributes.get("SentTimestamp")
                try:
                    changes = tuple(
                        (change.event_name, f"s3://{change.bucket}/{change.key}")
                        for change in object_changes(message["Body"])
                    )
                    unreadable = None
                except InvalidRequestError as exc:
                    changes, unreadable = (), str(exc)
                letters.append(
                    DeadLetter(
                        message_id=message["MessageId"],
                        # this look counted one receive; report those before it
                        receive_count=max(int(attributes.get("ApproximateReceiveCount", 1)) - 1, 0),
                        sent_at=datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None,
                        changes=changes,
                        unreadable=unreadable,
                    )
                )
    finally:
        for start in range(0, len(seen), _BATCH):
            _release(sqs, dlq_url, seen[start : start + _BATCH])
    return letters


def _send(sqs: Any, queue_url: str, messages: list[dict[str, Any]]) -> set[str]:
    """Send copies of ``messages``; return the ids of those the queue accepted."""
    entries = []
    for message in messages:
        entry: dict[str, Any] = {"Id": message["MessageId"], "MessageBody": message["Body"]}
        if message.get("MessageAttributes"):
            entry["MessageAttributes"] = message["MessageAttributes"]
        entries.append(entry)
    response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
    return {item["Id"] for item in response.get("Successful", [])}


def _release(sqs: Any, dlq_url: str, messages: list[dict[str, Any]]) -> None:
    """Make messages visible in the DLQ again now, rather than after the timeout."""
    sqs.change_message_visibility_batch(
        QueueUrl=dlq_url,
        Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for i, m in enumerate(messages)
        ],
    )
