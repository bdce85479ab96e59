"""The ingest pipeline: read the object, parse, chunk, embed, store.

Every S3 event, created or removed, means "make the store match this key as the bucket
holds it now": the object is read again, so events that arrive late or out of order
converge on the bucket's current state instead of replaying stale history.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ragline.documents import chunk_document, parse_document
from ragline.documents.chunking import SECTION_SEPARATOR
from ragline.embeddings import Embedder, get_embedder
from ragline.errors import DocumentParseError, RaglineError, UnsupportedDocumentError
from ragline.records import IngestResult
from ragline.store import ChunkWrite, DocumentWrite, Store, get_store

if TYPE_CHECKING:
    from ragline.config import Settings
    from ragline.ingest.objects import ObjectReader


class DocumentFailedError(RaglineError):
    """The document was recorded as failed; raised so the message is retried, then DLQ'd."""

    def __init__(self, result: IngestResult) -> None:
        super().__init__(f"{result.source}: {result.error}")
        self.result = result


class Ingestor:
    """Parses, chunks, embeds and stores documents; deletes them when their object goes."""

    def __init__(self, settings: Settings, store: Store, embedder: Embedder) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder

    @classmethod
    def from_settings(cls, settings: Settings) -> Ingestor:
        return cls(settings, get_store(settings), get_embedder(settings))

    @property
    def chunk_tokens(self) -> int:
        """The chunk size: the setting, or less when the embedder reads less."""
        limit = self.embedder.max_input_tokens
        return min(self.settings.chunk_tokens, limit) if limit else self.settings.chunk_tokens

    @property
    def chunk_overlap(self) -> int:
        return min(self.settings.chunk_overlap, self.chunk_tokens // 2)

    def sync_object(self, reader: ObjectReader, bucket: str, key: str) -> IngestResult:
        """Make the store match ``s3://bucket/key`` as the bucket holds it now."""
        obj = reader.get(bucket, key)
        if obj is None:
            return self.delete_source(f"s3://{bucket}/{key}")
        collection = obj.collection or self.settings.default_collection
        metadata = obj.document_metadata()
        if obj.size > self.settings.max_document_bytes:
            started = time.perf_counter()
            document = DocumentWrite(collection, obj.source, size_bytes=obj.size, metadata=metadata)
            reason = (
                f"object is {obj.size} bytes, over the limit of "
                f"{self.settings.max_document_bytes} (RAGLINE_MAX_DOCUMENT_BYTES)"
            )
            return self._failed(document, reason, started)
        return self.ingest_bytes(
            obj.source, obj.read(), name=key, collection=collection, metadata=metadata
        )

    def ingest_file(self, path: Path, collection: str | None = None) -> IngestResult:
        """Ingest a local file; its source is its ``file://`` URI."""
        path = path.resolve()
        return self.ingest_bytes(
            path.as_uri(), path.read_bytes(), name=path.name, collection=collection
        )

    def ingest_bytes(
        self,
        source: str,
        data: bytes,
        *,
        name: str | None = None,
        collection: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> IngestResult:
        """Store one document from its bytes, replacing its previous version in one go.

        Unchanged content (same hash, same embedding model) is not parsed or embedded
        again. Unsupported types are recorded as skipped. Content that cannot be parsed is
        recorded as failed and DocumentFailedError is raised. Other errors (database,
        embedding provider) propagate untouched so the caller can retry.
        """
        started = time.perf_counter()
        collection = collection or self.settings.default_collection
        content_hash = hashlib.sha256(data).hexdigest()
        base = DocumentWrite(
            collection=collection,
            source=source,
            content_hash=content_hash,
            size_bytes=len(data),
            metadata=metadata or {},
        )
        existing = self.store.find_document(source)
        if (
            existing is not None
            and existing.content_hash == content_hash
            and existing.collection == collection
            and existing.status in {"ingested", "skipped"}
            and (existing.status == "skipped" or existing.embedding_model == self.embedder.name)
        ):
            return IngestResult(
                source,
                "unchanged",
                str(existing.id),
                collection,
                existing.chunk_count,
                latency_ms=_elapsed(started),
            )

        name = name or source.rsplit("/", 1)[-1]
        try:
            parsed = parse_document(name, data)
        except UnsupportedDocumentError as exc:
            record = self.store.mark_document(base, "skipped", str(exc))
            return IngestResult(
                source, "skipped", str(record.id), collection, error=str(exc),
                latency_ms=_elapsed(started),
            )  # fmt: skip
        except DocumentParseError as exc:
            return self._failed(base, str(exc), started)

        chunks = chunk_document(parsed, max_tokens=self.chunk_tokens, overlap=self.chunk_overlap)
        self.store.ensure_collection(collection, self.embedder.name, self.embedder.dimensions)
        vectors, tokens, seconds = self._embed([c.embedding_text(parsed.title) for c in chunks])
        document = DocumentWrite(
            collection=collection,
            source=source,
            title=parsed.title,
            format=parsed.format,
            content_hash=content_hash,
            size_bytes=len(data),
            metadata=metadata or {},
        )
        writes = [
            ChunkWrite(c.ordinal, SECTION_SEPARATOR.join(c.section), c.text, c.token_count)
            for c in chunks
        ]
        record = self.store.save_document(
            document, writes, vectors, embedding_model=self.embedder.name
        )
        return IngestResult(
            source,
            "ingested",
            str(record.id),
            collection,
            len(chunks),
            tokens,
            self.embedder.name,
            latency_ms=_elapsed(started),
            embedding_seconds=seconds,
        )

    def delete_source(self, source: str) -> IngestResult:
        """Delete the document stored from ``source``, if any."""
        started = time.perf_counter()
        document_id = self.store.delete_by_source(source)
        status = "deleted" if document_id else "absent"
        return IngestResult(
            source, status, str(document_id) if document_id else None,
            latency_ms=_elapsed(started),
        )  # fmt: skip

    def _failed(self, document: DocumentWrite, reason: str, started: float) -> IngestResult:
        record = self.store.mark_document(document, "failed", reason)
        result = IngestResult(
            document.source, "failed", str(record.id), document.collection, error=reason,
            latency_ms=_elapsed(started),
        )  # fmt: skip
        raise DocumentFailedError(result)

    def _embed(self, texts: list[str]) -> tuple[np.ndarray, int, float]:
        """The vectors, the tokens billed and the endpoint seconds held, for ``texts``."""
        if not texts:
            return np.zeros((0, self.embedder.dimensions), dtype=np.float32), 0, 0.0
        parts, tokens, seconds = [], 0, 0.0
        for batch in _batches(texts, self.settings.embedding_batch_size):
            result = self.embedder.embed_documents(batch)
            parts.append(result.vectors)
            tokens += result.tokens
            seconds += result.seconds
        return np.vstack(parts), tokens, seconds


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _elapsed(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


@lru_cache(maxsize=4)
def get_ingestor(settings: Settings | None = None) -> Ingestor:
    """The process's ingestor, created once (connections and models reused)."""
    from ragline.config import get_settings

    return Ingestor.from_settings(settings or get_settings())
