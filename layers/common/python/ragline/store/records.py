"""What the store hands out and takes in: plain frozen dataclasses, no driver types."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID


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


@dataclass(frozen=True)
class ChunkWrite:
    ordinal: int
    section: str
    text: str
    token_count: int
    metadata: dict[str, Any] = field(default_factory=dict)


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
