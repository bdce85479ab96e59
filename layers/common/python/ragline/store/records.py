"""What the store hands out and takes in: plain frozen dataclasses, no driver types."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias
from uuid import UUID

from ragline.identity import DEFAULT_TENANT

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class ObjectVersion:
    """Which version of its S3 object a document is made from.

    In a versioned bucket the version id names it; otherwise the ETag and the last
    modified time (whole seconds, as S3 headers give it) do. ``sequencer`` is the S3
    event's, kept when the event named this very version.
    """

    etag: str | None = None
    version_id: str | None = None
    modified: datetime | None = None
    sequencer: str | None = None

    def same_as(self, other: ObjectVersion) -> bool:
        """Whether both name the same version of the object."""
        if self.version_id and other.version_id:
            return self.version_id == other.version_id
        return (self.etag, _seconds(self.modified)) == (other.etag, _seconds(other.modified))


def _seconds(moment: datetime | None) -> datetime | None:
    # Listings give milliseconds, HEAD and GET whole seconds: compare what both give.
    return moment.replace(microsecond=0) if moment else None


@dataclass(frozen=True)
class DocumentRecord:
    id: UUID
    collection: str
    source: str
    title: str | None
    format: str | None
    content_hash: str | None
    size_bytes: int | None
    metadata: dict[str, Any]
    status: str
    error: str | None
    chunk_count: int
    embedding_model: str | None
    created_at: datetime
    updated_at: datetime
    object_etag: str | None = None
    object_version_id: str | None = None
    object_modified: datetime | None = None
    object_sequencer: str | None = None
    tenant: str = DEFAULT_TENANT

    @property
    def object_version(self) -> ObjectVersion | None:
        """The version of the object the document was made from, when recorded."""
        if not (self.object_etag or self.object_version_id):
            return None
        return ObjectVersion(
            self.object_etag, self.object_version_id, self.object_modified, self.object_sequencer
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "collection": self.collection,
            "source": self.source,
            "title": self.title,
            "format": self.format,
            "content_hash": self.content_hash,
            "size_bytes": self.size_bytes,
            "metadata": self.metadata,
            "status": self.status,
            "error": self.error,
            "chunk_count": self.chunk_count,
            "embedding_model": self.embedding_model,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True)
class DocumentWrite:
    """What the ingest use case knows about a document it is about to store."""

    collection: str
    source: str
    title: str | None = None
    format: str | None = None
    content_hash: str | None = None
    size_bytes: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    version: ObjectVersion | None = None
    tenant: str = DEFAULT_TENANT  # the tenant whose collection it goes to


@dataclass(frozen=True)
class ChunkWrite:
    ordinal: int
    section: str
    text: str
    token_count: int
    metadata: dict[str, Any] = field(default_factory=dict)


class Precondition(Protocol):
    """What must hold for a conditional write to go ahead.

    The store asks it inside the write's transaction, with the source locked, giving it
    the document it holds for that source now (None: none); False refuses the write
    (SupersededError). The use case that writes says what it checks (the ingest's are in
    ``ingest/versions.py``); the store only asks.
    """

    def holds(self, stored: DocumentRecord | None) -> bool: ...


@dataclass(frozen=True)
class Ingested:
    """The document parsed, chunked and embedded: its chunks are replaced with these."""

    document: DocumentWrite
    chunks: Sequence[ChunkWrite]
    vectors: np.ndarray
    embedding_model: str

    @property
    def source(self) -> str:
        return self.document.source


@dataclass(frozen=True)
class NotIngested:
    """The document recorded as ``failed`` or ``skipped``, with the reason. Chunks of an
    earlier version go: the bucket no longer holds that content, so answers must not
    cite it."""

    document: DocumentWrite
    status: str
    error: str | None

    @property
    def source(self) -> str:
        return self.document.source


@dataclass(frozen=True)
class Reattributed:
    """The content is unchanged: the stored document takes this write's collection,
    metadata and object version and keeps its chunks and their vectors."""

    document: DocumentWrite

    @property
    def source(self) -> str:
        return self.document.source


@dataclass(frozen=True)
class Removed:
    """The document stored from ``source`` goes, with its chunks."""

    source: str


# What one conditional write (``Store.write``) does to the document stored from a source.
DocumentChange: TypeAlias = Ingested | NotIngested | Reattributed | Removed


@dataclass(frozen=True)
class RetrievedChunk:
    """A chunk found by a search. ``score`` is the search's own measure (higher is better)."""

    chunk_id: int
    document_id: UUID
    source: str
    title: str | None
    section: str
    text: str
    token_count: int
    score: float
    similarity: float | None = None  # cosine similarity to the query, when known
    # First and last page the chunk's text is printed on (PDF); None for formats without pages.
    page: int | None = None
    last_page: int | None = None
    # Where a chunk on several pages turns a page: (offset in text, page); the store
    # gives it as JSON text, read here.
    page_breaks: tuple[tuple[int, int], ...] = ()
    # The page holding the match to the query (set by the retriever); None: not known.
    match_page: int | None = None
    # The sources of other chunks with the same text, collapsed into this one.
    also_in: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        breaks: Any = self.page_breaks
        if isinstance(breaks, str):
            breaks = json.loads(breaks)
        turns = tuple((int(offset), int(page)) for offset, page in breaks or ())
        object.__setattr__(self, "page_breaks", turns)


@dataclass(frozen=True)
class Selection:
    """The chunks a search may return: all of the collection's (``document_ids`` None),
    or those of these documents, the ones a metadata filter matched. ``chunks``: how many
    there are; ``total``: how many chunks the vector index of the collection's dimension
    holds (None: not known), which tells how selective the search is."""

    chunks: int
    document_ids: list[UUID] | None = None
    total: int | None = None
    collection_chunks: int | None = None  # how many the whole collection holds


@dataclass(frozen=True)
class KeyRecord:
    """An API key as stored: never the key itself, only what lists and checks it."""

    id: str
    tenant: str
    scopes: list[str]
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "scopes": list(self.scopes),
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


@dataclass(frozen=True)
class StoredTurn:
    """One turn of a server-kept conversation: the question as asked, the standalone query
    it was searched for, and the answer."""

    n: int
    request_id: str
    question: str
    search_query: str
    answer: str
