"""The ingest pipeline: read the object, parse, chunk, embed, save.

Every S3 event, created or removed, means "make the store match this key as the bucket
holds it now": the object is read again, so events that arrive late or out of order
converge on the bucket's current state instead of replaying stale history.

A document goes through in a straight line: one read of what the store holds, a plan
(``versions.plan``: nothing to do, new attributes only, or the whole pipeline), parse ->
chunk -> embed, and one conditional write (``Store.write``). Reading "now" is not enough
when two invocations handle one key at once, so the write of an S3 document carries a
precondition from ``versions`` that the store asks inside its transaction, with the source
locked: the version read (and its sidecar) is still current. Otherwise a newer version
won the race, and the write is dropped as ``superseded``. A delete goes ahead only if the
bucket still lacks the object.

An object's key names its tenant (:func:`object_tenant`): ``tenants/<tenant>/...`` is
that tenant's, any other key the default tenant's. Its collection (the ``collection``
user metadata) must be one the tenant owns, or a new one it then owns; another
tenant's collection fails the document. So whoever may write under a prefix (an IAM
grant on ``tenants/<tenant>/*``) writes into that tenant's collections only, whatever
metadata they choose; a sidecar, having its document's key, follows the same rule.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

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
from ragline.identity import DEFAULT_TENANT, TENANT_PATTERN
from ragline.ingest import versions
from ragline.ingest.attributes import document_key, is_sidecar
from ragline.ingest.versions import Plan, StillCurrent, StillGone
from ragline.outcomes import IngestResult
from ragline.schemas import COLLECTION_PATTERN
from ragline.store import (
    ChunkWrite,
    DocumentWrite,
    Ingested,
    NotIngested,
    Reattributed,
    Removed,
    Store,
    get_store,
    transient_error,
)

if TYPE_CHECKING:
    from ragline.config import Settings
    from ragline.documents.chunking import Chunk
    from ragline.ingest.events import ObjectChange
    from ragline.ingest.objects import ObjectReader, StoredObject
    from ragline.store import DocumentChange, DocumentRecord, ObjectVersion, Precondition

_COLLECTION = re.compile(COLLECTION_PATTERN)
_MAX_REASON_CHARS = 2000
_TENANT = re.compile(TENANT_PATTERN)
TENANT_PREFIX = "tenants/"
T = TypeVar("T")
R = TypeVar("R")


def object_tenant(source: str) -> str | None:
    """The tenant an object belongs to, from its key: ``s3://bucket/tenants/<t>/...`` is
    ``t``'s, another key the default tenant's. None when the key is under ``tenants/``
    without a valid tenant name and a further level (a mistake, not the default's)."""
    if not source.startswith("s3://"):
        return DEFAULT_TENANT  # a local file (ragline ingest) is the operator's
    key = source[len("s3://") :].partition("/")[2]
    if not key.startswith(TENANT_PREFIX):
        return DEFAULT_TENANT
    tenant, slash, rest = key[len(TENANT_PREFIX) :].partition("/")
    if not slash or not rest or not _TENANT.fullmatch(tenant):
        return None
    return tenant


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
        # Called with each batch's chunk count once it is embedded (progress in chunks).
        self.on_embedded: Callable[[int], object] | None = None

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

    # --- S3 objects -----------------------------------------------------------------------

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
            key, event = document_key(key), None
        obj = reader.get(bucket, key)
        if obj is None:
            return self.delete_source(
                f"s3://{bucket}/{key}", precondition=StillGone.of(reader, bucket, key)
            )
        if event is not None:
            obj = obj.with_event(event.sequencer, event.etag, event.version_id)
        metadata = obj.document_metadata()
        result = self._ingest_object(obj, metadata, StillCurrent.of(obj, reader))
        error = metadata.get("sidecar", {}).get("error")
        if error and result.status != "superseded":
            raise DocumentFailedError(
                replace(result, source=obj.sidecar_source, status="failed", error=error)
            )
        return result

    def _ingest_object(
        self, obj: StoredObject, metadata: dict[str, Any], precondition: Precondition
    ) -> IngestResult:
        """Store ``obj`` if its version is still current when written; one over the size
        limit is recorded as failed without being read."""
        if obj.size <= self.settings.max_document_bytes:
            return self.ingest_bytes(
                obj.source,
                obj.read(),
                name=obj.key,
                collection=obj.collection,
                metadata=metadata,
                version=obj.version,
                precondition=precondition,
            )
        named = obj.collection
        collection = (
            named if named and _COLLECTION.fullmatch(named) else self.settings.default_collection
        )
        tenant = self._tenant(obj.source, collection, time.perf_counter())
        document = DocumentWrite(
            collection,
            obj.source,
            size_bytes=obj.size,
            metadata=metadata,
            version=obj.version,
            tenant=tenant,
        )
        reason = (
            f"object is {obj.size} bytes, over the limit of "
            f"{self.settings.max_document_bytes} (RAGLINE_MAX_DOCUMENT_BYTES)"
        )
        return self._failed(document, reason, time.perf_counter(), precondition)

    # --- documents ------------------------------------------------------------------------

    def ingest_file(
        self, path: Path, collection: str | None = None, *, tenant: str | None = None
    ) -> IngestResult:
        """Ingest a local file; its source is its ``file://`` URI, its tenant ``tenant``
        (None: the default tenant's)."""
        path = path.resolve()
        return self.ingest_bytes(
            path.as_uri(), path.read_bytes(), name=path.name, collection=collection, tenant=tenant
        )

    def ingest_files(
        self,
        paths: Iterable[Path],
        collection: str | None = None,
        *,
        tenant: str | None = None,
    ) -> Generator[IngestResult, None, None]:
        """Ingest each file as :meth:`ingest_file` does, yielding the results in order.

        Up to ``ingest_concurrency`` files are worked on at once, each in a thread of its
        own with its own connection, so one file is parsed and embedded while another's
        rows are written: each document is still its own transaction, and fails alone. A
        file that fails is a ``failed`` result with the reason, whatever the error (the
        others go on). Stopping early (or an interrupt) lets the files under way finish.
        """

        def one(path: Path) -> IngestResult:
            try:
                return self.ingest_file(path, collection, tenant=tenant)
            except DocumentFailedError as exc:  # recorded as failed, with the reason
                return exc.result
            except Exception as exc:  # one file's failure must not stop the others
                error = f"{type(exc).__name__}: {exc}"
                return IngestResult(path.resolve().as_uri(), "failed", error=error)

        yield from overlapped(
            list(paths), one, self.settings.ingest_concurrency, self.store.database.close
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
        precondition: Precondition | None = None,
        tenant: str | None = None,
    ) -> IngestResult:
        """Store one document from its bytes, replacing its previous version in one go.

        Its tenant is the one its source names (:func:`object_tenant`); ``tenant`` names
        it for a source that does not (a local file, ``ragline ingest --tenant``), and for
        an S3 object must agree with its key (ValueError otherwise).

        Unchanged content (same hash, same embedding model) is not parsed or embedded
        again; a new collection, metadata or object version is still applied to it
        (``updated``). Unsupported types are recorded as skipped. Content that cannot be
        parsed, or a collection name the API could never query, is recorded as failed and
        DocumentFailedError is raised; so is any error the pipeline did not foresee, unless
        it is transient (database, embedding provider, network: see :func:`_transient`),
        which propagates untouched so the caller can retry. A failed version withdraws the
        chunks of the previous one: its reason shows in /documents, and no answer cites
        content the bucket no longer holds. When ``precondition`` refuses the write (a
        newer version of the object won), nothing is written and the result is
        ``superseded``.
        """
        started = time.perf_counter()
        if tenant is not None and source.startswith("s3://") and object_tenant(source) != tenant:
            raise ValueError(f"{source}: an S3 object's key names its tenant, not {tenant!r}")
        document = DocumentWrite(
            collection=collection or self.settings.default_collection,
            source=source,
            content_hash=hashlib.sha256(data).hexdigest(),
            size_bytes=len(data),
            metadata=metadata or {},
            version=version,
            tenant=tenant or object_tenant(source) or DEFAULT_TENANT,
        )
        if collection is not None and not _COLLECTION.fullmatch(collection):
            reason = (
                f"invalid collection {collection!r}: a collection is 1-64 letters, digits, "
                "'_', '.' or '-', starting with a letter or digit"
            )
            return self._failed(document, reason, started, precondition)
        self._tenant(source, document.collection, started, tenant)
        name = name or source.rsplit("/", 1)[-1]
        try:
            return self._ingest(document, data, name, precondition, started)
        except SupersededError as exc:
            return _superseded(document, exc, started)
        except DocumentFailedError:
            raise
        except Exception as exc:
            if _transient(exc):
                raise
            return self._failed(document, f"{type(exc).__name__}: {exc}", started, precondition)

    def _tenant(
        self, source: str, collection: str, started: float, named: str | None = None
    ) -> str:
        """The tenant ``source`` belongs to (``named``, when the caller names it), if it
        may write into ``collection``; else DocumentFailedError, with nothing recorded: an
        unknown tenant has no documents, and another tenant's collection takes none of
        this one's. Retried, then DLQ'd."""
        tenant = named or object_tenant(source)
        reason = None
        if tenant is None:
            reason = (
                f"a key under {TENANT_PREFIX} names a tenant first ({TENANT_PREFIX}<tenant>/..., "
                "the tenant 1-63 lower-case letters, digits, '_' or '-')"
            )
        elif tenant != DEFAULT_TENANT and not self.store.tenant_exists(tenant):
            reason = f"no tenant {tenant!r}: create it first (ragline keys create --tenant)"
        else:
            owner = self.store.collection_owner(collection)
            if owner is not None and owner != tenant:
                reason = f"collection {collection!r} is not tenant {tenant!r}'s"
                if collection == self.settings.default_collection:
                    reason += " (name the tenant's own with the collection metadata)"
        if reason is not None or tenant is None:
            raise DocumentFailedError(
                IngestResult(source, "failed", collection=collection, error=reason,
                             latency_ms=_elapsed(started))
            )  # fmt: skip
        return tenant

    def _ingest(
        self,
        document: DocumentWrite,
        data: bytes,
        name: str,
        precondition: Precondition | None,
        started: float,
    ) -> IngestResult:
        """The straight line: what is stored -> plan -> parse -> chunk -> embed -> save."""
        stored = self.store.find_document(document.source)
        match versions.plan(stored, document, self.embedder.name):
            case Plan.UNCHANGED if stored is not None:
                return _result(stored, "unchanged", started)
            case Plan.REATTRIBUTE if stored is not None:
                return self._reattribute(stored, document, precondition, started)
        try:
            parsed = parse_within_budgets(name, data, self.budgets)
        except UnsupportedDocumentError as exc:
            record = self._write(NotIngested(document, "skipped", str(exc)), precondition)
            return replace(_result(record, "skipped", started), error=str(exc))
        except DocumentParseError as exc:
            return self._failed(document, str(exc), started, precondition)
        chunks = chunk_document(parsed, max_tokens=self.chunk_tokens, overlap=self.chunk_overlap)
        if len(chunks) > self.budgets.chunks:
            reason = (
                f"the document makes {len(chunks):,} chunks, over the limit of "
                f"{self.budgets.chunks:,} (RAGLINE_MAX_CHUNKS)"
            )
            return self._failed(document, reason, started, precondition)
        self.store.ensure_collection(
            document.collection, self.embedder.name, self.embedder.dimensions,
            tenant=document.tenant,
        )  # fmt: skip
        vectors, tokens, seconds = self._embed([c.embedding_text(parsed.title) for c in chunks])
        titled = replace(document, title=parsed.title, format=parsed.format)
        saved = Ingested(titled, _chunk_writes(chunks), vectors, self.embedder.name)
        record = self._write(saved, precondition)
        return replace(
            _result(record, "ingested", started),
            embedding_tokens=tokens,
            embedding_model=self.embedder.name,
            embedding_seconds=seconds,
        )

    def _reattribute(
        self,
        stored: DocumentRecord,
        document: DocumentWrite,
        precondition: Precondition | None,
        started: float,
    ) -> IngestResult:
        """Apply new attributes to unchanged content: no parse, no embedding."""
        if stored.status == "ingested" and stored.collection != document.collection:
            self.store.ensure_collection(
                document.collection, self.embedder.name, self.embedder.dimensions,
                tenant=document.tenant,
            )  # fmt: skip
        record = self._write(Reattributed(document), precondition)
        return _result(record, "updated", started)

    def delete_source(
        self, source: str, *, precondition: Precondition | None = None
    ) -> IngestResult:
        """Delete the document stored from ``source``, if any.

        ``precondition`` (asked with the source locked) may refuse: the object came back.
        """
        started = time.perf_counter()
        try:
            record = self.store.write(Removed(source), precondition=precondition)
        except SupersededError as exc:
            return IngestResult(source, "superseded", error=str(exc), latency_ms=_elapsed(started))
        status = "deleted" if record is not None else "absent"
        return IngestResult(
            source, status, str(record.id) if record is not None else None,
            latency_ms=_elapsed(started),
        )  # fmt: skip

    def _failed(
        self,
        document: DocumentWrite,
        reason: str,
        started: float,
        precondition: Precondition | None = None,
    ) -> IngestResult:
        """Record the document as failed and raise DocumentFailedError (the message is
        retried); ``superseded`` when a newer version won."""
        reason = clean_text(reason)[:_MAX_REASON_CHARS]
        try:
            record = self._write(NotIngested(document, "failed", reason), precondition)
        except SupersededError as exc:
            return _superseded(document, exc, started)
        failed = replace(_result(record, "failed", started), error=reason)
        raise DocumentFailedError(failed)

    def _write(self, change: DocumentChange, precondition: Precondition | None) -> DocumentRecord:
        """The one conditional write of a document (SupersededError when refused)."""
        record = self.store.write(change, precondition=precondition)
        assert record is not None  # only a removal leaves nothing
        return record

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
            if self.on_embedded is not None:
                self.on_embedded(len(batch))
        return np.vstack(parts), tokens, seconds


def _chunk_writes(chunks: Sequence[Chunk]) -> list[ChunkWrite]:
    return [
        ChunkWrite(
            c.ordinal, SECTION_SEPARATOR.join(c.section), c.text, c.token_count, c.row_metadata
        )
        for c in chunks
    ]


def _result(record: DocumentRecord, status: str, started: float) -> IngestResult:
    """The outcome for the document as the store holds it after this ingest."""
    return IngestResult(
        record.source,
        status,
        str(record.id),
        record.collection,
        record.chunk_count,
        latency_ms=_elapsed(started),
    )


def _superseded(document: DocumentWrite, exc: SupersededError, started: float) -> IngestResult:
    return IngestResult(
        document.source, "superseded", collection=document.collection, error=str(exc),
        latency_ms=_elapsed(started),
    )  # fmt: skip


def overlapped(
    items: Sequence[T], work: Callable[[T], R], workers: int, finish: Callable[[], object]
) -> Iterator[R]:
    """``work(item)`` for each item, by up to ``workers`` threads at once, in order.

    ``finish`` runs in each thread once it has no more work (it closes the thread's
    connection). With one worker, or one item, the work is done in the caller's thread.
    An exception ``work`` raises is raised here, when its item's turn comes; the
    threads take no new item once the caller stops reading.
    """
    if workers <= 1 or len(items) <= 1:
        for item in items:
            yield work(item)
        return
    done: dict[int, tuple[bool, Any]] = {}
    changed = threading.Condition()
    taken = iter(range(len(items)))
    stopped = False

    def run() -> None:
        try:
            while True:
                with changed:
                    index = None if stopped else next(taken, None)
                if index is None:
                    return
                try:
                    outcome: tuple[bool, Any] = (True, work(items[index]))
                except BaseException as exc:  # raised in the caller's thread, in turn
                    outcome = (False, exc)
                with changed:
                    done[index] = outcome
                    changed.notify_all()
        finally:
            finish()

    threads = [
        threading.Thread(target=run, name=f"ragline-ingest-{n}", daemon=True)
        for n in range(min(workers, len(items)))
    ]
    for thread in threads:
        thread.start()
    try:
        for index in range(len(items)):
            with changed:
                changed.wait_for(functools.partial(done.__contains__, index))
                ok, value = done.pop(index)
            if not ok:
                raise value
            yield value
    finally:
        with changed:
            stopped = True
        for thread in threads:
            thread.join()


def _transient(exc: Exception) -> bool:
    """Whether ``exc`` says nothing about the document: the database, the embedding
    provider, the network or the configuration failed, and a retry may well succeed.
    Anything else raised while ingesting a document is the document's failure."""
    from ragline.providers.clients import is_aws_error

    if isinstance(exc, RaglineError) or transient_error(exc):
        return True
    if isinstance(exc, OSError | TimeoutError):
        return True
    return is_aws_error(exc)


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
