"""``Store``: the one door to the database, and the only part of it that knows the driver.

It opens (and on first use migrates) the connection, keeps what is worth remembering
between calls, and hands the connection to the SQL modules: ``documents`` (collections,
documents and chunks), ``search`` (retrieval) and ``query_log``. The connection is
psycopg's, or the Data API driver's stand-in for it (``data_api``), chosen by
RAGLINE_DATABASE_DRIVER (``store/connection.py`` names what the SQL modules use).
"""

from __future__ import annotations

import importlib
import threading
import time
from typing import TYPE_CHECKING, Any

from ragline.errors import EmbeddingDimensionError
from ragline.identity import DEFAULT_TENANT
from ragline.store.database import Database, unavailable_when_disconnected
from ragline.store.migrate import apply_migrations, versions
from ragline.store.records import Ingested, NotIngested, Removed


class _OnFirstUse:
    """A SQL module imported when the store first uses it: they compose their statements
    with psycopg, whose import is about a third of the query function's cold start."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(f"ragline.store.{self._name}"), attribute)


if TYPE_CHECKING:
    from ragline.store import conversations, documents, reviews, search, tenants
    from ragline.store import query_log as queries
else:
    conversations, documents, reviews, search, tenants = (
        _OnFirstUse(n) for n in ("conversations", "documents", "reviews", "search", "tenants")
    )
    queries = _OnFirstUse("query_log")

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from datetime import datetime
    from uuid import UUID

    import numpy as np

    from ragline.config import Settings
    from ragline.filters import Filter
    from ragline.outcomes import QueryRecord
    from ragline.store.connection import Connection
    from ragline.store.data_api import DataApiDatabase
    from ragline.store.records import (
        ChunkWrite,
        DocumentChange,
        DocumentRecord,
        DocumentWrite,
        KeyRecord,
        Precondition,
        RetrievedChunk,
        Selection,
        StoredTurn,
    )

_PURGE_EVERY_SECONDS = 3600


def open_database(settings: Settings) -> Database | DataApiDatabase:
    """The driver RAGLINE_DATABASE_DRIVER names: psycopg, or the RDS Data API."""
    if settings.database_driver == "data-api":
        from ragline.store.data_api import DataApiDatabase

        return DataApiDatabase(settings)
    return Database(settings)


@unavailable_when_disconnected
class Store:
    """The only door to PostgreSQL. Applies migrations once per process on first use.

    A lost connection is DatabaseUnavailableError from any method (HTTP 503); the next
    call reconnects.
    """

    def __init__(
        self, settings: Settings, database: Database | DataApiDatabase | None = None
    ) -> None:
        self.settings = settings
        self.database = database or open_database(settings)
        self._migrated = False
        self._lock = threading.Lock()
        self._collections: dict[str, tuple[str, int]] = {}
        self._owners: dict[str, str] = {}  # collection -> tenant (an owner never changes)
        self._deferred_indexes: set[int] = set()  # dimensions a bulk load indexes at its end
        # When this process last purged the query log (time.monotonic()); None: not yet,
        # so the first query a process logs purges, however young the host.
        self._purged_at: float | None = None

    # --- plumbing -------------------------------------------------------------------------

    def connection(self) -> Connection:
        conn = self.database.connection()
        if not self._migrated:
            with self._lock:
                if not self._migrated:
                    apply_migrations(conn)
                    self._migrated = True
        return conn

    def migrate(self) -> list[int]:
        """Apply pending migrations now; return the versions applied."""
        applied = apply_migrations(self.database.connection())
        self._migrated = True
        return applied

    def health(self) -> dict[str, Any]:
        return versions(self.connection())

    # --- collections ----------------------------------------------------------------------

    def ensure_collection(
        self, name: str, embedding_model: str, dimensions: int, *, tenant: str = DEFAULT_TENANT
    ) -> None:
        """Record the collection's embedding model, or check it matches the recorded one.
        A new collection is ``tenant``'s; the caller checks :meth:`collection_owner` first.

        Creates the partial HNSW index for the dimension on first use, built with
        RAGLINE_HNSW_M and RAGLINE_HNSW_EF_CONSTRUCTION. Raises
        EmbeddingDimensionError when the collection was built with another model.
        """
        known = self._collections.get(name)
        if known is None:
            known = documents.record_collection(
                self.connection(),
                name,
                embedding_model,
                dimensions,
                hnsw_m=self.settings.hnsw_m,
                hnsw_ef_construction=self.settings.hnsw_ef_construction,
                index=dimensions not in self._deferred_indexes,
                tenant=tenant,
            )
            self._collections[name] = known
        if known != (embedding_model, dimensions):
            raise EmbeddingDimensionError(
                f"collection {name!r} holds {known[1]}-dimensional vectors from {known[0]!r}, "
                f"but the configured embeddings are {embedding_model!r} ({dimensions} "
                "dimensions); use the same model, another collection, or re-ingest"
            )

    def defer_vector_index(self, dimensions: int) -> bool:
        """Start a bulk load of ``dimensions``-sized vectors: when no chunk of that size is
        stored yet, drop its (empty) HNSW index and leave it out until
        :meth:`build_vector_index`; True if deferred. A store holding such chunks already
        keeps its index (other collections search through it) and loads row by row."""
        deferred = documents.drop_empty_vector_index(self.connection(), dimensions)
        if deferred:
            self._deferred_indexes.add(dimensions)
        return deferred

    def build_vector_index(self, dimensions: int) -> None:
        """End a bulk load: build the dimension's HNSW index over the rows now stored."""
        self._deferred_indexes.discard(dimensions)
        documents.build_vector_index(
            self.connection(),
            dimensions,
            hnsw_m=self.settings.hnsw_m,
            hnsw_ef_construction=self.settings.hnsw_ef_construction,
            maintenance_work_mem_mb=self.settings.index_build_memory_mb,
        )

    def collection_owner(self, name: str) -> str | None:
        """The tenant owning the collection; None when no collection has this name. The
        default collection (RAGLINE_COLLECTION) is the default tenant's before anything
        is stored in it: reserved, so asking for it tells no one whether it exists."""
        owner = self._owners.get(name)
        if owner is None:
            owner = documents.collection_owner(self.connection(), name)
            if owner is not None:
                self._owners[name] = owner
            elif name == self.settings.default_collection:
                return DEFAULT_TENANT
        return owner

    def create_collection(
        self, name: str, tenant: str, embedding_model: str, dimensions: int
    ) -> str:
        """Record an empty collection for ``tenant`` unless the name is taken; return the
        owner it has now."""
        return documents.create_collection(
            self.connection(), name, tenant, embedding_model, dimensions
        )

    def collection_model(self, name: str) -> tuple[str, int] | None:
        """The (embedding model, dimensions) a collection was built with, or None."""
        if name in self._collections:  # a collection's model never changes once recorded
            return self._collections[name]
        return documents.collection_model(self.connection(), name)

    # --- documents ------------------------------------------------------------------------

    def find_document(self, source: str) -> DocumentRecord | None:
        return documents.find_document(self.connection(), source)

    def get_document(
        self, document_id: UUID, *, tenant: str | None = None
    ) -> DocumentRecord | None:
        """The document with this id, of ``tenant`` only (None: of any, for operators)."""
        return documents.get_document(self.connection(), document_id, tenant=tenant)

    def list_documents(
        self,
        *,
        collection: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        tenant: str | None = None,
    ) -> tuple[list[DocumentRecord], str | None]:
        """A page of documents ordered by source, and the cursor of the next page; of
        ``tenant`` only (None: of any, for operators)."""
        return documents.list_documents(
            self.connection(), collection=collection, status=status, limit=limit,
            cursor=cursor, tenant=tenant,
        )  # fmt: skip

    def write(
        self, change: DocumentChange, *, precondition: Precondition | None = None
    ) -> DocumentRecord | None:
        """The one conditional write: apply ``change`` to the document stored from its
        source, all in one transaction, if ``precondition`` holds.

        ``precondition`` is asked inside the transaction, with the source locked, with the
        document stored now (or None); when it answers False nothing is written and
        SupersededError is raised. Writers of one source are serialised by that lock.
        Returns the document as written (for ``Removed``: as it was, None when absent).
        """
        return documents.write_document(self.connection(), change, precondition=precondition)

    def save_document(
        self,
        document: DocumentWrite,
        chunks: Sequence[ChunkWrite],
        vectors: np.ndarray,
        *,
        embedding_model: str,
    ) -> DocumentRecord:
        """Replace the document's chunks with these, all in one transaction."""
        record = self.write(Ingested(document, chunks, vectors, embedding_model))
        assert record is not None
        return record

    def mark_document(
        self, document: DocumentWrite, status: str, error: str | None
    ) -> DocumentRecord:
        """Record a document that was not ingested (failed or skipped) and drop its chunks.

        Chunks of an earlier version go too: the bucket no longer holds that content, so
        answers must not cite it.
        """
        record = self.write(NotIngested(document, status, error))
        assert record is not None
        return record

    def delete_by_source(self, source: str) -> UUID | None:
        """Delete the document stored from ``source`` and its chunks; return its id."""
        record = self.write(Removed(source))
        return record.id if record is not None else None

    def iter_documents(self, source_prefix: str) -> Iterator[DocumentRecord]:
        """Every document whose source starts with ``source_prefix``, ordered by source."""
        return documents.iter_documents(
            self.connection(), source_prefix, page_size=self.database.page_rows
        )

    def delete_document(self, document_id: UUID, *, tenant: str | None = None) -> bool:
        """Delete the document (of ``tenant`` only, unless None); False if there is none."""
        return documents.delete_document(self.connection(), document_id, tenant=tenant)

    # --- tenants and keys -------------------------------------------------------------------

    def ensure_tenant(self, tenant: str) -> bool:
        """Record the tenant unless it exists; True when it is new."""
        return tenants.ensure_tenant(self.connection(), tenant)

    def tenant_exists(self, tenant: str) -> bool:
        return tenants.tenant_exists(self.connection(), tenant)

    def insert_key(
        self,
        key_id: str,
        tenant: str,
        digest: str,
        scopes: Sequence[str],
        *,
        name: str = "",
        expires_at: datetime | None = None,
    ) -> KeyRecord:
        """Store a key's digest (never the key) for an existing tenant."""
        return tenants.insert_key(
            self.connection(), key_id, tenant, digest, scopes, name=name, expires_at=expires_at
        )

    def key_by_digest(self, digest: str) -> KeyRecord | None:
        """The key with this digest, revoked and expired ones included."""
        return tenants.key_by_digest(self.connection(), digest)

    def list_keys(self, tenant: str | None = None) -> list[KeyRecord]:
        """The keys of ``tenant`` (None: every tenant's), oldest first."""
        return tenants.list_keys(self.connection(), tenant)

    def revoke_key(self, key_id: str, *, tenant: str | None = None) -> bool:
        """Revoke a key (of ``tenant`` only, unless None); False if none was live."""
        return tenants.revoke_key(self.connection(), key_id, tenant)

    # --- conversations -----------------------------------------------------------------------

    def open_session(
        self, session_id: str, *, tenant: str, ttl_hours: int, turns: int
    ) -> list[StoredTurn] | None:
        """The last ``turns`` turns of ``tenant``'s session, oldest first ([] when it starts
        now or had expired); None when the session is another tenant's."""
        return conversations.open_session(
            self.connection(), session_id, tenant, ttl_hours=ttl_hours, turns=turns
        )

    def append_turn(
        self,
        session_id: str,
        *,
        tenant: str,
        request_id: str,
        question: str,
        search_query: str,
        answer: str,
        ttl_hours: int,
    ) -> bool:
        """Add a turn to ``tenant``'s session; False when the session is gone."""
        return conversations.append_turn(
            self.connection(), session_id, tenant, request_id=request_id, question=question,
            search_query=search_query, answer=answer, ttl_hours=ttl_hours,
        )  # fmt: skip

    # --- retrieval ------------------------------------------------------------------------

    def select(self, collection: str, dimensions: int, where: Filter | None) -> Selection:
        """Which chunks of the collection a search may return: those of the documents
        ``where`` matches (None: all), with how selective that is."""
        return search.select(self.connection(), collection, dimensions, where)

    def vector_search(
        self,
        collection: str,
        vector: np.ndarray,
        limit: int,
        *,
        ef_search: int | None = None,
        selection: Selection | None = None,
    ) -> list[RetrievedChunk]:
        """Nearest chunks by cosine distance, among ``selection``'s (None: the collection's).

        ``ef_search`` (default RAGLINE_HNSW_EF_SEARCH) trades time for recall; the
        search uses at least ``limit``. A selective ``selection`` of at most
        RAGLINE_FILTER_EXACT_MAX_CHUNKS chunks is searched exactly; a larger one walks
        the HNSW index for at most RAGLINE_HNSW_MAX_SCAN_TUPLES chunks.
        """
        return search.vector_search(
            self.connection(),
            collection,
            vector,
            limit,
            ef_search=self.settings.hnsw_ef_search if ef_search is None else ef_search,
            selection=selection,
            exact_max_chunks=self.settings.filter_exact_max_chunks,
            max_scan_tuples=self.settings.hnsw_max_scan_tuples,
        )

    def keyword_search(
        self, collection: str, text: str, limit: int, *, selection: Selection | None = None
    ) -> list[RetrievedChunk]:
        """The best chunks by Okapi BM25, among ``selection``'s (None: the collection's)."""
        return search.keyword_search(
            self.connection(),
            collection,
            text,
            limit,
            selection=selection,
            exact_max_chunks=self.settings.filter_exact_max_chunks,
            scorer=self.keyword_scorer,
        )

    @property
    def keyword_scorer(self) -> str:
        """Where BM25 ranks: ``keyword_scorer``, "auto" resolved by the driver."""
        scorer = self.settings.keyword_scorer
        if scorer == "auto":
            return "client" if self.settings.database_driver == "psycopg" else "sql"
        return scorer

    def similarities(self, chunk_ids: Sequence[int], vector: np.ndarray) -> dict[int, float]:
        """Cosine similarity of the query to each of these chunks."""
        return search.similarities(self.connection(), chunk_ids, vector)

    # --- the query log ----------------------------------------------------------------------

    def log_query(self, entry: QueryRecord) -> None:
        """Record one query; rows past the retention period are purged by the first call
        in a process, then at most hourly."""
        queries.log_query(self.connection(), entry)
        now = time.monotonic()
        if self._purged_at is None or now - self._purged_at >= _PURGE_EVERY_SECONDS:
            self._purged_at = now
            self.purge_query_log(self.settings.query_log_retention_days)

    def purge_query_log(self, retention_days: int) -> int:
        """Delete query log rows older than ``retention_days``; return how many."""
        return queries.purge_query_log(self.connection(), retention_days)

    def record_feedback(
        self, request_id: str, rating: str, comment: str | None, *, tenant: str | None = None
    ) -> bool:
        """Attach a rating to a logged query (of ``tenant`` only, unless None); False when
        no such query was logged."""
        return queries.record_feedback(self.connection(), request_id, rating, comment, tenant)

    def query_logged(self, request_id: str, *, tenant: str) -> bool:
        """Whether ``tenant`` logged a query with this request id."""
        return queries.query_logged(self.connection(), request_id, tenant)

    def query_log(self, since: datetime, *, tenant: str | None = None) -> list[dict[str, Any]]:
        """Logged queries since ``since`` (of ``tenant`` only, unless None), oldest first."""
        return queries.query_log(self.connection(), since, tenant)

    def query_stats(self, since: datetime, *, tenant: str | None = None) -> dict[str, Any]:
        """Aggregates of the query log since ``since`` (of ``tenant`` only, unless None):
        totals, latency percentiles per stage, and tokens and cost by model and by profile."""
        return queries.query_stats(self.connection(), since, tenant)

    # --- the review queue (store/reviews.py) ----------------------------------------------

    def record_answer(self, item: dict[str, Any]) -> dict[str, Any]:
        """Keep an answer for review (queued, or recorded for a later thumbs-down); a
        second record of the same request changes nothing. Returns the stored row."""
        return reviews.record_answer(self.connection(), item)

    def queue_recorded(
        self, request_id: str, *, tenant: str, reason: str, detail: str | None = None
    ) -> dict[str, Any] | None:
        """Queue a recorded answer of ``tenant``; None when none is waiting unqueued."""
        return reviews.queue_recorded(self.connection(), request_id, tenant, reason, detail)

    def purge_recorded_answers(self, hours: int) -> int:
        """Delete recorded answers nobody queued within ``hours``; return how many."""
        return reviews.purge_recorded(self.connection(), hours)

    def review_item(self, item_id: UUID, *, tenant: str) -> dict[str, Any] | None:
        return reviews.get_item(self.connection(), item_id, tenant)

    def review_items(self, tenant: str, **filters: Any) -> list[dict[str, Any]]:
        """Queued items of ``tenant``, oldest first (filters: ``store.reviews.list_items``)."""
        return reviews.list_items(self.connection(), tenant, **filters)

    def claim_review(self, item_id: UUID, *, tenant: str, reviewer: str) -> dict[str, Any] | None:
        return reviews.claim(self.connection(), item_id, tenant, reviewer)

    def decide_review(
        self, item_id: UUID, *, tenant: str, **decision: Any
    ) -> dict[str, Any] | None:
        """Record a decision once (``store.reviews.decide``); None when it cannot be made."""
        return reviews.decide(self.connection(), item_id, tenant, **decision)

    def decided_reviews(
        self, since: datetime, *, tenant: str | None = None
    ) -> list[dict[str, Any]]:
        return reviews.decided_since(self.connection(), since, tenant)

    def review_stats(self, since: datetime, *, tenant: str | None = None) -> dict[str, Any]:
        """The queue's depth and oldest age now, its decisions since ``since``."""
        return reviews.queue_stats(self.connection(), since, tenant)
