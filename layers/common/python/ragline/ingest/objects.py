"""Objects as the bucket holds them now, and the reader that fetches them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from ragline.ingest.attributes import (
    MAX_SIDECAR_BYTES,
    SidecarError,
    merge_attributes,
    parse_sidecar,
    sidecar_key,
)
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
    tags: dict[str, str] = field(default_factory=dict)
    # The bytes of the sidecar ``<key>.metadata.json`` and its ETag; None: there is none.
    sidecar: bytes | None = None
    sidecar_etag: str | None = None

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

    @property
    def sidecar_source(self) -> str:
        return f"s3://{self.bucket}/{sidecar_key(self.key)}"

    def sidecar_attributes(self) -> tuple[dict[str, Any] | None, str | None]:
        """The sidecar's attributes (None: no sidecar, or a broken one) and what is wrong
        with it, if anything."""
        if self.sidecar is None:
            return None, None
        try:
            return parse_sidecar(self.sidecar), None
        except SidecarError as exc:
            return None, f"invalid sidecar {self.sidecar_source}: {exc}"

    def document_metadata(self) -> dict[str, Any]:
        """What the document keeps of the object: where it came from, its user metadata
        (other than the collection), tags and sidecar as read, and ``attributes``, the
        merge of the three that filters select on. A broken sidecar adds nothing but its
        error."""
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
        if self.tags:
            metadata["tags"] = dict(self.tags)
        sidecar, error = self.sidecar_attributes()
        if self.sidecar is not None:
            metadata["sidecar"] = {"key": sidecar_key(self.key), "etag": self.sidecar_etag}
            if error:
                metadata["sidecar"]["error"] = error
        attributes = merge_attributes(user_metadata, self.tags, sidecar)
        if attributes:
            metadata["attributes"] = attributes
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
            from ragline.providers.clients import s3_client

            self._client = s3_client()
        return self._client

    def get(self, bucket: str, key: str) -> StoredObject | None:
        """The object, or None when the bucket no longer holds it."""
        try:
            response = self.client.get_object(Bucket=bucket, Key=key)
        except self.client.exceptions.NoSuchKey:
            return None
        body = response["Body"]
        tags = self._tags(bucket, key, response.get("VersionId"))
        sidecar, sidecar_etag = self._sidecar(bucket, key)
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
            tags=tags,
            sidecar=sidecar,
            sidecar_etag=sidecar_etag,
        )

    def _tags(self, bucket: str, key: str, version_id: str | None) -> dict[str, str]:
        """The object's tags (of the version read, in a versioned bucket)."""
        from botocore.exceptions import ClientError

        extra = {"VersionId": version_id} if version_id else {}
        try:
            response = self.client.get_object_tagging(Bucket=bucket, Key=key, **extra)
        except ClientError as exc:
            # Gone since the GET: the next event for the key makes the store match.
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NoSuchVersion"}:
                return {}
            raise
        return {tag["Key"]: tag["Value"] for tag in response.get("TagSet", [])}

    def _sidecar(self, bucket: str, key: str) -> tuple[bytes | None, str | None]:
        """The bytes of the object's sidecar (no more than one past the limit, so an
        oversized one is refused without being read whole) and its ETag."""
        try:
            response = self.client.get_object(Bucket=bucket, Key=sidecar_key(key))
        except self.client.exceptions.NoSuchKey:
            return None, None
        return response["Body"].read(MAX_SIDECAR_BYTES + 1), _etag(response)

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
