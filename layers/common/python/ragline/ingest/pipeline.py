"""The ingest pipeline: read the object, parse, chunk, embed, store.

Every S3 event, created or removed, means "make the store match this key as the bucket
holds it now": the object is read again, so events that arrive late or out of order
converge on the bucket's current state instead of replaying stale history.

Reading "now" is not enough when two invocations handle one key at once: the one that
read the older version may commit last. So every write of an S3 document is made
conditional: inside its transaction, with the source locked, it goes ahead only if the
store already holds this very version or the bucket still holds it (a HEAD). Otherwise a
newer version won the race, and the write is dropped as ``superseded``. A delete goes
ahead only if the bucket still lacks the object.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ragline.documents import chunk_document
from ragline.documents.budgets import Budgets
from ragline.documents.chunking import SECTION_SEPARATOR
from ragline.documents.isolation import parse_within_budgets
from ragline.documents.sanitize import clean_text
from ragline.embeddings import Embedder, get_embedder
from ragline.errors import (
    DocumentParseError,
    RaglineError,
    SupersededError,
    UnsupportedDocumentError,
)
from ragline.ingest.attributes import document_key, is_sidecar, sidecar_key
from ragline.records import IngestResult
from ragline.schemas import COLLECTION_PATTERN
from ragline.store import ChunkWrite, DocumentWrite, Store, get_store, transient_error

if TYPE_CHECKING:
    from ragline.config import Settings
    from ragline.ingest.events import ObjectChange
    from ragline.ingest.objects import ObjectReader
    from ragline.store import DocumentRecord, ObjectVersion
    from ragline.store.documents import WriteGuard

_COLLECTION = re.compile(COLLECTION_PATTERN)
_MAX_REASON_CHARS = 2000


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
        self.budgets = Budgets.from_settings(settings)

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

    def sync_object(
        self, reader: ObjectReader, bucket: str, key: str, *, event: ObjectChange | None = None
    ) -> IngestResult:
        """Make the store match ``s3://bucket/key`` as the bucket holds it now.

        ``event``, the S3 notification that asked for it, contributes its sequencer when it
        names the version read.

        A metadata sidecar (``<key>.metadata.json``) is not a document: a change to it
        makes the store match its document, whose attributes it is part of (content
        unchanged: ``updated``, without re-embedding). An invalid sidecar adds no
        attributes; the document is still stored, and the result is ``failed`` for the
        sidecar's source with the reason (DocumentFailedError).
        """
        if is_sidecar(key):
            return self._sync_document(reader, bucket, document_key(key), None)
        return self._sync_document(reader, bucket, key, event)

    def _sync_document(
        self, reader: ObjectReader, bucket: str, key: str, event: ObjectChange | None
    ) -> IngestResult:
        obj = reader.get(bucket, key)
        if obj is None:
            return self.delete_source(
                f"s3://{bucket}/{key}", guard=lambda _: reader.head(bucket, key) is None
            )
        if event is not None:
            obj = obj.with_event(event.sequencer, event.etag, event.version_id)
        metadata = obj.document_metadata()
        guard = _still_current(
            obj.version,
            lambda: reader.head(bucket, key),
            obj.sidecar_etag,
            lambda: reader.head(bucket, sidecar_key(key)),
        )
        if obj.size > self.settings.max_document_bytes:
            started = time.perf_counter()
            named = obj.collection
            collection = named if named and _COLLECTION.fullmatch(named) else None
            document = DocumentWrite(
                collection or self.settings.default_collection,
                obj.source,
                size_bytes=obj.size,
                metadata=metadata,
                version=obj.version,
            )
            reason = (
                f"object is {obj.size} bytes, over the limit of "
                f"{self.settings.max_document_bytes} (RAGLINE_MAX_DOCUMENT_BYTES)"
            )
            return self._failed(document, reason, started, guard)
        result = self.ingest_bytes(
            obj.source,
            obj.read(),
            name=key,
            collection=obj.collection,
            metadata=metadata,
            version=obj.version,
            guard=guard,
        )
        error = metadata.get("sidecar", {}).get("error")
        if error and result.status != "superseded":
            raise DocumentFailedError(
                replace(result, source=obj.sidecar_source, status="failed", error=error)
            )
        return result

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
        version: ObjectVersion | None = None,
        guard: WriteGuard | None = None,
    ) -> IngestResult:
        """Store one document from its bytes, replacing its previous version in one go.

        Unchanged content (same hash, same embedding model) is not parsed or embedded
        again; a new collection, metadata or object version is still applied to it
        (``updated``). Unsupported types are recorded as skipped. Content that cannot be
        parsed, or a collection name the API could never query, is recorded as failed and
        DocumentFailedError is raised; so is any error the pipeline did not foresee, unless
        it is transient (database, embedding provider, network: see :func:`_transient`),
        which propagates untouched so the caller can retry. A failed version withdraws the
        chunks of the previous one: its reason shows in /documents, and no answer cites
        content the bucket no longer holds. When ``guard`` refuses the write (a newer
        version of the object won), nothing is written and the result is ``superseded``.
        """
        started = time.perf_counter()
        content_hash = hashlib.sha256(data).hexdigest()
        base = DocumentWrite(
            collection=collection or self.settings.default_collection,
            source=source,
            content_hash=content_hash,
            size_bytes=len(data),
            metadata=metadata or {},
            version=version,
        )
        if collection is not None and not _COLLECTION.fullmatch(collection):
            reason = (
                f"invalid collection {collection!r}: a collection is 1-64 letters, digits, "
                "'_', '.' or '-', starting with a letter or digit"
            )
            return self._failed(base, reason, started, guard)
        collection = base.collection
        try:
            return self._ingest(base, data, name, guard, started)
        except SupersededError as exc:
            return IngestResult(
                source, "superseded", collection=collection, error=str(exc),
                latency_ms=_elapsed(started),
            )  # fmt: skip
        except DocumentFailedError:
            raise
        except Exception as exc:
            if _transient(exc):
                raise
            return self._failed(base, f"{type(exc).__name__}: {exc}", started, guard)

    def _ingest(
        self,
        base: DocumentWrite,
        data: bytes,
        name: str | None,
        guard: WriteGuard | None,
        started: float,
    ) -> IngestResult:
        source, collection, content_hash = base.source, base.collection, base.content_hash
        existing = self.store.find_document(source)
        if (
            existing is not None
            and existing.content_hash == content_hash
            and existing.status in {"ingested", "skipped"}
            and (existing.status == "skipped" or existing.embedding_model == self.embedder.name)
        ):
            status = "unchanged"
            if _applies_news(existing, base):
                if existing.status == "ingested" and existing.collection != collection:
                    self.store.ensure_collection(
                        collection, self.embedder.name, self.embedder.dimensions
                    )
                existing = self.store.update_document(base, guard=guard)
                status = "updated"
            return IngestResult(
                source,
                status,
                str(existing.id),
                collection,
                existing.chunk_count,
                latency_ms=_elapsed(started),
            )

        name = name or source.rsplit("/", 1)[-1]
        try:
            parsed = parse_within_budgets(name, data, self.budgets)
        except UnsupportedDocumentError as exc:
            record = self.store.mark_document(base, "skipped", str(exc), guard=guard)
            return IngestResult(
                source, "skipped", str(record.id), collection, error=str(exc),
                latency_ms=_elapsed(started),
            )  # fmt: skip
        except DocumentParseError as exc:
            return self._failed(base, str(exc), started, guard)

        chunks = chunk_document(parsed, max_tokens=self.chunk_tokens, overlap=self.chunk_overlap)
        if len(chunks) > self.budgets.chunks:
            reason = (
                f"the document makes {len(chunks):,} chunks, over the limit of "
                f"{self.budgets.chunks:,} (RAGLINE_MAX_CHUNKS)"
            )
            return self._failed(base, reason, started, guard)
        self.store.ensure_collection(collection, self.embedder.name, self.embedder.dimensions)
        vectors, tokens, seconds = self._embed([c.embedding_text(parsed.title) for c in chunks])
        document = replace(base, title=parsed.title, format=parsed.format)
        writes = [
            ChunkWrite(
                c.ordinal, SECTION_SEPARATOR.join(c.section), c.text, c.token_count, c.metadata
            )
            for c in chunks
        ]
        record = self.store.save_document(
            document, writes, vectors, embedding_model=self.embedder.name, guard=guard
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

    def delete_source(self, source: str, *, guard: WriteGuard | None = None) -> IngestResult:
        """Delete the document stored from ``source``, if any.

        ``guard`` (asked with the source locked) may refuse: the object came back.
        """
        started = time.perf_counter()
        try:
            document_id = self.store.delete_by_source(source, guard=guard)
        except SupersededError as exc:
            return IngestResult(source, "superseded", error=str(exc), latency_ms=_elapsed(started))
        status = "deleted" if document_id else "absent"
        return IngestResult(
            source, status, str(document_id) if document_id else None,
            latency_ms=_elapsed(started),
        )  # fmt: skip

    def _failed(
        self,
        document: DocumentWrite,
        reason: str,
        started: float,
        guard: WriteGuard | None = None,
    ) -> IngestResult:
        reason = clean_text(reason)[:_MAX_REASON_CHARS]
        try:
            record = self.store.mark_document(document, "failed", reason, guard=guard)
        except SupersededError as exc:
            return IngestResult(
                document.source, "superseded", collection=document.collection, error=str(exc),
                latency_ms=_elapsed(started),
            )  # fmt: skip
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


def _still_current(
    version: ObjectVersion,
    head: Callable[[], ObjectVersion | None],
    sidecar_etag: str | None = None,
    head_sidecar: Callable[[], ObjectVersion | None] | None = None,
) -> WriteGuard:
    """A guard that lets a write of ``version`` through when the store holds this very
    version already, or when the bucket still holds it (asked with the source locked, so
    a writer of a newer version waits for this one, then finds its own version current).
    With ``head_sidecar``, the sidecar read (``sidecar_etag``, None: none) must also still
    be the bucket's: of two writers that read different sidecars, the stale one loses."""

    def guard(stored: DocumentRecord | None) -> bool:
        if head_sidecar is not None:
            current_sidecar = head_sidecar()
            if (current_sidecar.etag if current_sidecar else None) != sidecar_etag:
                return False
        held = stored.object_version if stored is not None else None
        if held is not None and held.same_as(version):
            return True
        current = head()
        return current is not None and current.same_as(version)

    return guard


def _applies_news(existing: DocumentRecord, document: DocumentWrite) -> bool:
    """Whether an upload of unchanged content brings something the store lacks."""
    held = existing.object_version
    new_version = document.version is not None and (
        held is None or not held.same_as(document.version)
    )
    return (
        new_version
        or existing.collection != document.collection
        or existing.metadata != document.metadata
    )


def _transient(exc: Exception) -> bool:
    """Whether ``exc`` says nothing about the document: the database, the embedding
    provider, the network or the configuration failed, and a retry may well succeed.
    Anything else raised while ingesting a document is the document's failure."""
    if isinstance(exc, RaglineError) or transient_error(exc):
        return True
    if isinstance(exc, OSError | TimeoutError):
        return True
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover - botocore ships with every deployment
        return False
    return isinstance(exc, BotoCoreError | ClientError)


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
