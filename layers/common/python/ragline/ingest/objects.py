"""Objects as the bucket holds them now, and the reader that fetches them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


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

    @property
    def source(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

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


class ObjectReader(Protocol):
    def get(self, bucket: str, key: str) -> StoredObject | None:
        """The object, or None when the bucket no longer holds it."""


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
            etag=(response.get("ETag") or "").strip('"') or None,
            version_id=response.get("VersionId"),
        )
