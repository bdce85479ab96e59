"""Is this event still current? The ingest's decisions about object versions.

Every S3 event means "make the store match this key as the bucket holds it now", so a
write is only right while the version it read is still the bucket's. Two places decide:

- before any work, :func:`plan`: with what the store holds, is there anything to do
  (``UNCHANGED``), only attributes to apply (``REATTRIBUTE``: same content, no parse or
  embedding), or the whole pipeline to run (``INGEST``)?
- at the write, :class:`StillCurrent` and :class:`StillGone`, the preconditions the store
  asks inside its transaction with the source locked. The lock is what makes a race safe:
  of two writers of one key, the second waits, then finds the first's version stored;
  the HEAD it makes under the lock tells whether its own version is still the bucket's.

Plain data and functions: the store sees only ``Precondition.holds``; the bucket is
reached through the ``head`` callables a precondition is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import TYPE_CHECKING, Protocol

from ragline.ingest.attributes import sidecar_key
from ragline.store import ObjectVersion

if TYPE_CHECKING:
    from ragline.ingest.objects import ListedObject, StoredObject
    from ragline.store import DocumentRecord, DocumentWrite

# Asks the bucket for the current version of one key (None: the bucket lacks it).
Head = Callable[[], ObjectVersion | None]


class Heads(Protocol):
    """All a precondition asks of the bucket (an ``ObjectReader`` answers it)."""

    def head(self, bucket: str, key: str) -> ObjectVersion | None: ...


class Plan(Enum):
    """What a write of a document must do, given what the store holds."""

    UNCHANGED = "unchanged"  # the store holds this content, attributes and version
    REATTRIBUTE = "reattribute"  # same content: new collection, metadata or version only
    INGEST = "ingest"  # parse, chunk, embed and save


def plan(stored: DocumentRecord | None, document: DocumentWrite, embedding_model: str) -> Plan:
    """What storing ``document`` takes, given the document ``stored`` for its source."""
    if stored is None or not same_content(stored, document, embedding_model):
        return Plan.INGEST
    return Plan.REATTRIBUTE if brings_news(stored, document) else Plan.UNCHANGED


def same_content(stored: DocumentRecord, document: DocumentWrite, embedding_model: str) -> bool:
    """Whether ``stored`` holds this content, fully processed: same hash, ingested with
    the same embedding model, or skipped (its type is still unsupported)."""
    if stored.content_hash != document.content_hash:
        return False
    if stored.status == "skipped":
        return True
    return stored.status == "ingested" and stored.embedding_model == embedding_model


def brings_news(stored: DocumentRecord, document: DocumentWrite) -> bool:
    """Whether an upload of unchanged content brings something the store lacks: another
    object version, collection or metadata."""
    held = stored.object_version
    new_version = document.version is not None and (
        held is None or not held.same_as(document.version)
    )
    return (
        new_version
        or stored.collection != document.collection
        or stored.metadata != document.metadata
    )


def version_still_current(read: ObjectVersion, held: ObjectVersion | None, head: Head) -> bool:
    """Whether a write of the version ``read`` may go ahead: the store holds this very
    version already (``held``), or the bucket still holds it (``head`` is asked only
    then)."""
    if held is not None and held.same_as(read):
        return True
    current = head()
    return current is not None and current.same_as(read)


def sidecar_still_current(read_etag: str | None, current: ObjectVersion | None) -> bool:
    """Whether the sidecar read (its ETag; None: there was none) is still the bucket's
    (``current``; None: it has none)."""
    return (current.etag if current is not None else None) == read_etag


def listing_unchanged(stored: DocumentRecord, listed: ListedObject, embedding_model: str) -> bool:
    """Whether ``stored`` holds the version a bucket listing shows, fully processed (a
    reconcile leaves it alone without reading the object)."""
    held = stored.object_version
    if held is None or stored.size_bytes != listed.size:
        return False
    if not held.same_as(ObjectVersion(etag=listed.etag, modified=listed.modified)):
        return False
    if stored.status == "skipped":
        return True
    return stored.status == "ingested" and stored.embedding_model == embedding_model


@dataclass(frozen=True)
class StillCurrent:
    """The precondition of a write of ``version``: the version, and the sidecar read with
    it (``sidecar_etag``), are still current.

    With ``head_sidecar``, the sidecar must still be the one read: of two writers that
    read different sidecars, the stale one loses. Then the object: the store holds this
    very version, or the bucket still does.
    """

    version: ObjectVersion
    head: Head
    sidecar_etag: str | None = None
    head_sidecar: Head | None = None

    @classmethod
    def of(cls, obj: StoredObject, reader: Heads) -> StillCurrent:
        """The precondition of a write of ``obj`` as read, asking ``reader`` for HEADs."""
        return cls(
            obj.version,
            partial(reader.head, obj.bucket, obj.key),
            obj.sidecar_etag,
            partial(reader.head, obj.bucket, sidecar_key(obj.key)),
        )

    def holds(self, stored: DocumentRecord | None) -> bool:
        if self.head_sidecar is not None and not sidecar_still_current(
            self.sidecar_etag, self.head_sidecar()
        ):
            return False
        held = stored.object_version if stored is not None else None
        return version_still_current(self.version, held, self.head)


@dataclass(frozen=True)
class StillGone:
    """The precondition of a delete: the bucket still lacks the object (it may have been
    uploaded again since it was found missing)."""

    head: Head

    @classmethod
    def of(cls, reader: Heads, bucket: str, key: str) -> StillGone:
        return cls(partial(reader.head, bucket, key))

    def holds(self, stored: DocumentRecord | None) -> bool:
        return self.head() is None
