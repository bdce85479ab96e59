"""Objects as the bucket holds them now, and the reader that fetches them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from ragline.store import ObjectVersion


@dataclass(frozen=True)
class StoredObject:
    """An object as the bucket holds it now."""

    bucket: str
    key: str
    size: int
    read: Callable[[], bytes]
    metadata: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    etag: str | None = None
    version_id: str | None = None
    modified: datetime | None = None
    sequencer: str | None = None

    @property
    def source(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def version(self) -> ObjectVersion:
        """Which version of the object this is."""
        return ObjectVersion(self.etag, self.version_id, self.modified, self.sequencer)

    def with_event(
        self, sequencer: str | None, etag: str | None, version_id: str | None
    ) -> StoredObject:
        """This object, with the sequencer of the S3 event when the event names this
        very version (a later version may have replaced the event's by the time of the read)."""
        names_it = (version_id and version_id == self.version_id) or (
            not version_id and etag and etag == self.etag
        )
        return replace(self, sequencer=sequencer) if sequencer and names_it else self

    @property
    def collection(self) -> str | None:
        """The collection its ``collection`` user metadata names, if any."""
        return self.metadata.get("collection") or None

    def document_metadata(self) -> dict[str, Any]:
        """What the document keeps of the object: where it came from, and the user
        metadata other than the collection."""
        s3: dict[str, Any] = {"bucket": self.bucket, "key": self.key}
        for name, value in (
            ("content_type", self.content_type),
            ("etag", self.etag),
            ("version_id", self.version_id),
        ):
            if value:
                s3[name] = value
        metadata: dict[str, Any] = {"s3": s3}
        user_metadata = {k: v for k, v in self.metadata.items() if k != "collection"}
        if user_metadata:
            metadata["user"] = user_metadata
        return metadata


@dataclass(frozen=True)
class ListedObject:
    """An object as a bucket listing shows it: enough to tell whether it changed."""

    key: str
    size: int
    etag: str | None
    modified: datetime | None


class ObjectReader(Protocol):
    def get(self, bucket: str, key: str) -> StoredObject | None:
        """The object, or None when the bucket no longer holds it."""

    def head(self, bucket: str, key: str) -> ObjectVersion | None:
        """The object's current version, or None when the bucket no longer holds it."""


class S3ObjectReader:
    """Reads objects with a boto3 S3 client (created lazily, reused)."""

    def __init__(self, client: Any | None = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("s3")
        return self._client

    def get(self, bucket: str, key: str) -> StoredObject | None:
        """The object, or None when the bucket no longer holds it."""
        try:
            response = self.client.get_object(Bucket=bucket, Key=key)
        except self.client.exceptions.NoSuchKey:
            return None
        body = response["Body"]
        return StoredObject(
            bucket=bucket,
            key=key,
            size=int(response.get("ContentLength", 0)),
            read=body.read,
            metadata={k.lower(): v for k, v in response.get("Metadata", {}).items()},
            content_type=response.get("ContentType"),
            etag=_etag(response),
            version_id=response.get("VersionId"),
            modified=response.get("LastModified"),
        )

    def list_objects(
        self, bucket: str, prefix: str = "", *, page_size: int = 1000
    ) -> Iterator[ListedObject]:
        """Every object under ``prefix``, a page of the listing at a time."""
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}
        )
        for page in pages:
            for item in page.get("Contents", []):
                yield ListedObject(
                    key=item["Key"],
                    size=int(item.get("Size", 0)),
                    etag=_etag(item),
                    modified=item.get("LastModified"),
                )

    def head(self, bucket: str, key: str) -> ObjectVersion | None:
        """The object's current version, or None when the bucket no longer holds it."""
        from botocore.exceptions import ClientError

        try:
            response = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            # HEAD has no body, so no NoSuchKey: a missing key is a bare 404.
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey"}:
                return None
            raise
        return ObjectVersion(
            etag=_etag(response),
            version_id=response.get("VersionId"),
            modified=response.get("LastModified"),
        )


def _etag(response: dict[str, Any]) -> str | None:
    return (response.get("ETag") or "").strip('"') or None
