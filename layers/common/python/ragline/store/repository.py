"""Documents, chunks and retrieval in PostgreSQL + pgvector. All SQL lives here."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ragline.errors import EmbeddingDimensionError, InvalidRequestError
from ragline.records import QueryRecord
from ragline.store.database import Database
from ragline.store.migrate import apply_migrations

if TYPE_CHECKING:
    import numpy as np
    import psycopg

    from ragline.config import Settings


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


_QUERY_LOG_COLUMNS = [name for name in QueryRecord.__dataclass_fields__ if name != "created_at"]
_PURGE_EVERY_SECONDS = 3600

_DOCUMENT_COLUMNS = sql.SQL(
    "id, collection, source, title, format, content_hash, size_bytes, metadata, status, error,"
    " chunk_count, embedding_model, created_at, updated_at"
)
_COPY_CHUNKS = (
    "COPY chunks (document_id, collection, ordinal, section, text, token_count, metadata,"
    " dimensions, embedding) FROM STDIN WITH (FORMAT BINARY)"
)
_COPY_TYPES = ["uuid", "text", "int4", "text", "text", "int4", "jsonb", "int4", "vector"]


def _document(row: dict[str, Any] | None) -> DocumentRecord | None:
    return DocumentRecord(**row) if row else None


def encode_cursor(source: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": source}).encode()).decode()


def decode_cursor(cursor: str) -> str:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))["after"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidRequestError("invalid cursor") from exc
    if not isinstance(value, str):
        raise InvalidRequestError("invalid cursor")
    return value


class Store:
    """The only door to PostgreSQL. Applies migrations once per process on first use."""

    def __init__(self, settings: Settings, database: Database | None = None) -> None:
        self.settings = settings
        self.database = database or Database(settings)
        self._migrated = False
        self._lock = threading.Lock()
        self._collections: dict[str, tuple[str, int]] = {}
        self._purged_at = 0.0

    # --- plumbing -------------------------------------------------------------------------

    def connection(self) -> psycopg.Connection[Any]:
        conn = self.database.connection()
        if not self._migrated:
            with self._lock:
                if not self._migrated:
                    apply_migrations(conn)
                    self._migrated = True
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        conn = self.connection()
        with conn.transaction():
            yield conn

    def migrate(self) -> list[int]:
        """Apply pending migrations now; return the versions applied."""
        applied = apply_migrations(self.database.connection())
        self._migrated = True
        return applied

    def health(self) -> dict[str, Any]:
        row = (
            self.connection()
            .execute(
                "SELECT current_setting('server_version') AS server,"
                " (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector,"
                " (SELECT max(version) FROM schema_migrations) AS schema_version"
            )
            .fetchone()
        )
        assert row is not None
        return {"postgres": row[0], "pgvector": row[1], "schema_version": row[2]}

    # --- collections ----------------------------------------------------------------------

    def ensure_collection(self, name: str, embedding_model: str, dimensions: int) -> None:
        """Record the collection's embedding model, or check it matches the recorded one.

        Creates the partial HNSW index for the dimension on first use. Raises
        EmbeddingDimensionError when the collection was built with another model.
        """
        known = self._collections.get(name)
        if known is None:
            conn = self.connection()
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('ragline.collections'))")
                conn.execute(
                    "INSERT INTO collections (name, embedding_model, dimensions)"
                    " VALUES (%s, %s, %s) ON CONFLICT (name) DO NOTHING",
                    (name, embedding_model, dimensions),
                )
                row = conn.execute(
                    "SELECT embedding_model, dimensions FROM collections WHERE name = %s", (name,)
                ).fetchone()
                assert row is not None
                known = (row[0], row[1])
                if known == (embedding_model, dimensions):
                    conn.execute(
                        sql.SQL(
                            "CREATE INDEX IF NOT EXISTS {index} ON chunks USING hnsw"
                            " ((embedding::vector({dims})) vector_cosine_ops)"
                            " WHERE dimensions = {dims}"
                        ).format(
                            index=sql.Identifier(f"chunks_embedding_hnsw_{dimensions}"),
                            dims=sql.Literal(dimensions),
                        )
                    )
            self._collections[name] = known
        if known != (embedding_model, dimensions):
            raise EmbeddingDimensionError(
                f"collection {name!r} holds {known[1]}-dimensional vectors from {known[0]!r}, "
                f"but the configured embeddings are {embedding_model!r} ({dimensions} "
                "dimensions); use the same model, another collection, or re-ingest"
            )

    def collection_model(self, name: str) -> tuple[str, int] | None:
        """The (embedding model, dimensions) a collection was built with, or None."""
        if name in self._collections:  # a collection's model never changes once recorded
            return self._collections[name]
        row = (
            self.connection()
            .execute("SELECT embedding_model, dimensions FROM collections WHERE name = %s", (name,))
            .fetchone()
        )
        return (row[0], row[1]) if row else None

    # --- documents ------------------------------------------------------------------------

    def find_document(self, source: str) -> DocumentRecord | None:
        with self.connection().cursor(row_factory=dict_row) as cur:
            cur.execute(
                sql.SQL("SELECT {} FROM documents WHERE source = %s").format(_DOCUMENT_COLUMNS),
                (source,),
            )
            return _document(cur.fetchone())

    def get_document(self, document_id: UUID) -> DocumentRecord | None:
        with self.connection().cursor(row_factory=dict_row) as cur:
            cur.execute(
                sql.SQL("SELECT {} FROM documents WHERE id = %s").format(_DOCUMENT_COLUMNS),
                (document_id,),
            )
            return _document(cur.fetchone())

    def list_documents(
        self,
        *,
        collection: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[DocumentRecord], str | None]:
        """A page of documents ordered by source, and the cursor of the next page."""
        conditions: list[sql.Composable] = [sql.SQL("TRUE")]
        params: list[Any] = []
        for column, value in (("collection", collection), ("status", status)):
            if value is not None:
                conditions.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
                params.append(value)
        if cursor:
            conditions.append(sql.SQL("source > %s"))
            params.append(decode_cursor(cursor))
        query = sql.SQL("SELECT {} FROM documents WHERE {} ORDER BY source LIMIT %s").format(
            _DOCUMENT_COLUMNS, sql.SQL(" AND ").join(conditions)
        )
        with self.connection().cursor(row_factory=dict_row) as cur:
            cur.execute(query, [*params, limit + 1])
            rows = [DocumentRecord(**row) for row in cur.fetchall()]
        next_cursor = encode_cursor(rows[limit - 1].source) if len(rows) > limit else None
        return rows[:limit], next_cursor

    def save_document(
        self,
        document: DocumentWrite,
        chunks: Sequence[ChunkWrite],
        vectors: np.ndarray,
        *,
        embedding_model: str,
    ) -> DocumentRecord:
        """Replace the document's chunks with these, all in one transaction."""
        if len(chunks) != len(vectors):
            raise ValueError("one vector per chunk")
        dimensions = int(vectors.shape[1]) if len(vectors) else 0
        with self._transaction() as conn:
            document_id = self._upsert(conn, document, "pending", None, embedding_model)
            conn.execute("DELETE FROM chunks WHERE document_id = %s", (document_id,))
            with conn.cursor() as cur, cur.copy(_COPY_CHUNKS) as copy:
                copy.set_types(_COPY_TYPES)
                for chunk, vector in zip(chunks, vectors, strict=True):
                    copy.write_row(
                        (
                            document_id,
                            document.collection,
                            chunk.ordinal,
                            chunk.section,
                            chunk.text,
                            chunk.token_count,
                            Jsonb(chunk.metadata),
                            dimensions,
                            vector,
                        )
                    )
            with conn.cursor(row_factory=dict_row) as cur:
                cur.execute(
                    sql.SQL(
                        "UPDATE documents SET status = 'ingested', error = NULL, chunk_count = %s,"
                        " updated_at = now() WHERE id = %s RETURNING {}"
                    ).format(_DOCUMENT_COLUMNS),
                    (len(chunks), document_id),
                )
                record = _document(cur.fetchone())
        assert record is not None
        return record

    def mark_document(
        self, document: DocumentWrite, status: str, error: str | None
    ) -> DocumentRecord:
        """Record a document that was not ingested (failed or skipped) and drop its chunks.

        Chunks of an earlier version go too: the bucket no longer holds that content, so
        answers must not cite it.
        """
        with self._transaction() as conn:
            document_id = self._upsert(conn, document, status, error, None)
            conn.execute("DELETE FROM chunks WHERE document_id = %s", (document_id,))
            conn.execute("UPDATE documents SET chunk_count = 0 WHERE id = %s", (document_id,))
        record = self.get_document(document_id)
        assert record is not None
        return record

    def _upsert(
        self,
        conn: psycopg.Connection[Any],
        document: DocumentWrite,
        status: str,
        error: str | None,
        embedding_model: str | None,
    ) -> UUID:
        row = conn.execute(
            "INSERT INTO documents (collection, source, title, format, content_hash, size_bytes,"
            " metadata, status, error, embedding_model)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (source) DO UPDATE SET collection = EXCLUDED.collection,"
            " title = EXCLUDED.title, format = EXCLUDED.format,"
            " content_hash = EXCLUDED.content_hash, size_bytes = EXCLUDED.size_bytes,"
            " metadata = EXCLUDED.metadata, status = EXCLUDED.status, error = EXCLUDED.error,"
            " embedding_model = EXCLUDED.embedding_model, updated_at = now()"
            " RETURNING id",
            (
                document.collection,
                document.source,
                document.title,
                document.format,
                document.content_hash,
                document.size_bytes,
                Jsonb(document.metadata),
                status,
                error,
                embedding_model,
            ),
        ).fetchone()
        assert row is not None
        document_id: UUID = row[0]
        return document_id

    def delete_by_source(self, source: str) -> UUID | None:
        """Delete the document stored from ``source`` and its chunks; return its id."""
        row = (
            self.connection()
            .execute("DELETE FROM documents WHERE source = %s RETURNING id", (source,))
            .fetchone()
        )
        return row[0] if row else None

    def delete_document(self, document_id: UUID) -> bool:
        row = (
            self.connection()
            .execute("DELETE FROM documents WHERE id = %s RETURNING id", (document_id,))
            .fetchone()
        )
        return row is not None

    # --- retrieval ------------------------------------------------------------------------

    def vector_search(
        self, collection: str, vector: np.ndarray, limit: int
    ) -> list[RetrievedChunk]:
        """Nearest chunks by cosine distance through the dimension's HNSW index."""
        dims = sql.Literal(int(vector.shape[0]))
        query = sql.SQL(
            "WITH nearest AS MATERIALIZED ("
            " SELECT id, embedding::vector({dims}) <=> %(q)s::vector({dims}) AS distance"
            " FROM chunks WHERE dimensions = {dims} AND collection = %(c)s"
            " ORDER BY distance LIMIT %(k)s)"
            " SELECT c.id AS chunk_id, c.document_id, d.source, d.title, c.section, c.text,"
            " c.token_count, 1 - n.distance AS score, 1 - n.distance AS similarity"
            " FROM nearest n JOIN chunks c ON c.id = n.id"
            " JOIN documents d ON d.id = c.document_id ORDER BY n.distance, c.id"
        ).format(dims=dims)
        with self._transaction() as conn, conn.cursor(row_factory=dict_row) as cur:
            # Filtered HNSW scans keep searching until enough rows pass the filter.
            cur.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            cur.execute(
                sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(max(40, limit * 2)))
            )
            cur.execute(query, {"q": vector, "c": collection, "k": limit})
            return [RetrievedChunk(**row) for row in cur.fetchall()]

    def keyword_search(self, collection: str, text: str, limit: int) -> list[RetrievedChunk]:
        """Full-text search; any query word may match, chunks matching more rank higher."""
        query = (
            "WITH q AS (SELECT NULLIF(replace(plainto_tsquery('english', %(t)s)::text,"
            " ' & ', ' | '), '')::tsquery AS query)"
            " SELECT c.id AS chunk_id, c.document_id, d.source, d.title, c.section, c.text,"
            " c.token_count, ts_rank_cd(c.tsv, q.query, 32) AS score"
            " FROM q, chunks c JOIN documents d ON d.id = c.document_id"
            " WHERE q.query IS NOT NULL AND c.collection = %(c)s AND c.tsv @@ q.query"
            " ORDER BY score DESC, c.id LIMIT %(k)s"
        )
        with self.connection().cursor(row_factory=dict_row) as cur:
            cur.execute(query, {"t": text, "c": collection, "k": limit})
            return [RetrievedChunk(**row) for row in cur.fetchall()]

    def similarities(self, chunk_ids: Sequence[int], vector: np.ndarray) -> dict[int, float]:
        """Cosine similarity of the query to each of these chunks."""
        if not chunk_ids:
            return {}
        dims = sql.Literal(int(vector.shape[0]))
        rows = self.connection().execute(
            sql.SQL(
                "SELECT id, 1 - (embedding::vector({dims}) <=> %s::vector({dims}))"
                " FROM chunks WHERE id = ANY(%s) AND dimensions = {dims}"
            ).format(dims=dims),
            (vector, list(chunk_ids)),
        )
        return {row[0]: float(row[1]) for row in rows}

    # --- the query log ----------------------------------------------------------------------

    def log_query(self, entry: QueryRecord) -> None:
        """Record one answered query; rows past the retention period are purged hourly."""
        columns = list(_QUERY_LOG_COLUMNS)
        values: list[Any] = [getattr(entry, c) for c in columns]
        if entry.created_at is not None:
            columns.append("created_at")
            values.append(entry.created_at)
        self.connection().execute(
            sql.SQL(
                "INSERT INTO queries ({}) VALUES ({}) ON CONFLICT (request_id) DO NOTHING"
            ).format(
                sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.SQL(", ").join(sql.Placeholder() * len(columns)),
            ),
            values,
        )
        if time.monotonic() - self._purged_at > _PURGE_EVERY_SECONDS:
            self._purged_at = time.monotonic()
            self.purge_query_log(self.settings.query_log_retention_days)

    def purge_query_log(self, retention_days: int) -> int:
        """Delete query log rows older than ``retention_days``; return how many."""
        cursor = self.connection().execute(
            "DELETE FROM queries WHERE created_at < now() - make_interval(days => %s)",
            (retention_days,),
        )
        return cursor.rowcount

    def record_feedback(self, request_id: str, rating: str, comment: str | None) -> bool:
        """Attach a rating to a logged query; False when no such query was logged."""
        cursor = self.connection().execute(
            "UPDATE queries SET rating = %s, comment = %s, rated_at = now() WHERE request_id = %s",
            (rating, comment, request_id),
        )
        return cursor.rowcount == 1

    def query_log(self, since: datetime) -> list[dict[str, Any]]:
        """Logged queries since ``since``, oldest first."""
        with self.connection().cursor(row_factory=dict_row) as cur:
            cur.execute(
                "SELECT * FROM queries WHERE created_at >= %s ORDER BY created_at", (since,)
            )
            return list(cur.fetchall())

    def query_stats(self, since: datetime) -> dict[str, Any]:
        """Aggregates of the query log since ``since``: totals, latency percentiles per
        stage, and tokens and cost by model and by profile."""
        conn = self.connection()
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "SELECT count(*) AS queries,"
                " coalesce(avg(abstained::int), 0)::float8 AS abstention_rate,"
                " coalesce(avg(needs_review::int), 0)::float8 AS review_rate,"
                " coalesce(avg(fallback::int), 0)::float8 AS fallback_rate,"
                " coalesce(sum(input_tokens), 0)::bigint AS input_tokens,"
                " coalesce(sum(output_tokens), 0)::bigint AS output_tokens,"
                " coalesce(sum(cached_input_tokens), 0)::bigint AS cached_input_tokens,"
                " coalesce(sum(embedding_tokens), 0)::bigint AS embedding_tokens,"
                " coalesce(sum(cost_usd), 0) AS cost_usd,"
                " count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced,"
                " count(*) FILTER (WHERE rating = 'up') AS rated_up,"
                " count(*) FILTER (WHERE rating = 'down') AS rated_down,"
                " min(created_at) AS first, max(created_at) AS last"
                " FROM queries WHERE created_at >= %s",
                (since,),
            )
            totals = cur.fetchone()
            cur.execute(
                "SELECT stage,"
                " percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50,"
                " percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) AS p95"
                " FROM queries, LATERAL (VALUES ('retrieve', retrieve_ms),"
                " ('generate', generate_ms), ('total', total_ms)) AS s(stage, ms)"
                " WHERE created_at >= %s GROUP BY stage",
                (since,),
            )
            latency = {row["stage"]: {"p50": row["p50"], "p95": row["p95"]} for row in cur}
            groups: dict[str, list[dict[str, Any]]] = {}
            for name, keys in (("by_model", "provider, model"), ("by_profile", "profile")):
                cur.execute(
                    sql.SQL(
                        "SELECT {keys}, count(*) AS queries,"
                        " sum(input_tokens)::bigint AS input_tokens,"
                        " sum(output_tokens)::bigint AS output_tokens,"
                        " sum(cached_input_tokens)::bigint AS cached_input_tokens,"
                        " sum(embedding_tokens)::bigint AS embedding_tokens,"
                        " sum(cost_usd) AS cost_usd,"
                        " count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced,"
                        " avg(abstained::int)::float8 AS abstention_rate"
                        " FROM queries WHERE created_at >= %s GROUP BY {keys} ORDER BY {keys}"
                    ).format(keys=sql.SQL(keys)),
                    (since,),
                )
                groups[name] = list(cur.fetchall())
        assert totals is not None
        return {**totals, "latency_ms": latency, **groups}
