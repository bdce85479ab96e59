"""S3 event notifications as SQS delivers them: which objects changed.

Only the semantics of the message live here (the test event, URL-encoded keys, one
change per record); what a change means for the store is the pipeline's business.
Created and removed events are not told apart on purpose: both ask the pipeline to
make the store match the key as the bucket holds it now.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

from ragline.errors import InvalidRequestError


@dataclass(frozen=True)
class ObjectChange:
    """One S3 event notification record: which object changed, and how."""

    event_name: str
    bucket: str
    key: str
    # Which version the event is about, when S3 says (moto's events carry no sequencer);
    # details of the change, not what tells one change from another.
    sequencer: str | None = field(default=None, compare=False)
    etag: str | None = field(default=None, compare=False)
    version_id: str | None = field(default=None, compare=False)


def object_changes(message_body: str) -> list[ObjectChange]:
    """The object changes an SQS message from an S3 event notification carries.

    The ``s3:TestEvent`` S3 sends when notifications are configured carries none. Keys
    arrive URL-encoded (spaces as ``+``) and are decoded once. A body that is not an S3
    notification raises InvalidRequestError, so the message fails and is not lost.
    """
    try:
        body = json.loads(message_body)
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(f"message body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidRequestError("message body is not an S3 event notification")
    if body.get("Event") == "s3:TestEvent":
        return []
    if "Records" not in body:
        raise InvalidRequestError("message body is not an S3 event notification")
    changes = []
    for record in body["Records"]:
        try:
            obj = record["s3"]["object"]
            changes.append(
                ObjectChange(
                    event_name=record["eventName"],
                    bucket=record["s3"]["bucket"]["name"],
                    key=unquote_plus(obj["key"]),
                    sequencer=obj.get("sequencer"),
                    etag=obj.get("eTag"),
                    version_id=obj.get("versionId"),
                )
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidRequestError(f"S3 event record lacks {exc}") from exc
    return changes
