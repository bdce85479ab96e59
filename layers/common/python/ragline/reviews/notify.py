"""The event sent when an item enters the review queue, so a team can route it.

Always a log line (``review item queued``, with the item's id, tenant, reason, profile);
with RAGLINE_REVIEW_TOPIC_ARN also a message on that SNS topic, which a team subscribes
to (e-mail, a chat webhook, a queue). The message carries ids and labels, never the
question or the answer: whoever routes it reads those through the API with its own key.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragline.config import Settings

logger = logging.getLogger("ragline.reviews")
_PUBLISH_TIMEOUT_SECONDS = 3.0


def queued_event(row: dict[str, Any]) -> dict[str, Any]:
    """The event's body: what a router needs to pick a team, nothing confidential."""
    queued_at = row.get("queued_at")
    return {
        "type": "review.queued",
        "review_id": str(row["id"]),
        "tenant": row["tenant"],
        "request_id": row["request_id"],
        "reason": row["reason"],
        "profile": row["profile"],
        "collection": row["collection"],
        "held": row["held"],
        "model": row["model"],
        "prompt": row["prompt"],
        "queued_at": queued_at.isoformat() if queued_at is not None else None,
    }


class Notifier:
    """Announces queued items: a log line, and an SNS message when a topic is set."""

    def __init__(self, topic_arn: str | None) -> None:
        self.topic_arn = topic_arn

    @classmethod
    def from_settings(cls, settings: Settings) -> Notifier:
        return cls(settings.review_topic_arn)

    def queued(self, row: dict[str, Any]) -> None:
        """Announce one queued item; a failed publish is logged, the item stays queued."""
        event = queued_event(row)
        logger.info("review item queued: %s (%s)", event["review_id"], event["reason"],
                    extra={"review": event})  # fmt: skip
        if self.topic_arn is None:
            return
        # Imported here: a deployment without a topic never loads the AWS client module.
        from ragline.providers.clients import aws_client

        try:
            aws_client("sns", _PUBLISH_TIMEOUT_SECONDS).publish(
                TopicArn=self.topic_arn,
                Message=json.dumps(event),
                MessageAttributes={
                    "tenant": {"DataType": "String", "StringValue": event["tenant"]},
                    "reason": {"DataType": "String", "StringValue": event["reason"]},
                    "profile": {"DataType": "String", "StringValue": event["profile"]},
                },
            )
        except Exception:  # the queue is the record; the event is a courtesy
            logger.exception("could not publish review item %s to SNS", event["review_id"])
