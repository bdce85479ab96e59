"""Collections, documents and their chunks: the SQL that writes and reads them.

Each function takes the connection to run on; the ``Store`` facade decides which one.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pgvector import HalfVector
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ragline.errors import InvalidRequestError, SupersededError
from ragline.identity import DEFAULT_TENANT
from ragline.store.data_api import DataApiConnection
from ragline.store.records import DocumentRecord, Ingested, NotIngested, Reattributed

if TYPE_CHECKING:
    from uuid import UUID

    from ragline.store.connection import Connection
    from ragline.store.records import DocumentChange, DocumentWrite, Precondition

_DOCUMENT_COLUMNS = sql.SQL(
    "id, collection, source, title, format, content_hash, size_bytes, metadata, status, error,"
    " chunk_count, embedding_model, created_at, updated_at,"
    " object_etag, object_version_id, object_modified, object_sequencer, tenant"
)
_COPY_CHUNKS = (
    "COPY chunks (document_id, collection, ordinal, section, text, token_count, metadata,"
    " dimensions, embedding) FROM STDIN WITH (FORMAT BINARY)"
)
_INSERT_CHUNK = (
    "INSERT INTO chunks (document_id, collection, ordinal, section, text, token_count, metadata,"
    " dimensions, embedding) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::halfvec)"
)
# Vectors are stored in half precision (migration 0011): COPY's binary format takes the
# column's own type, so each goes as a HalfVector.
_COPY_TYPES = ["uuid", "text", "int4", "text", "text", "int4", "jsonb", "int4", "halfvec"]


def _document(row: dict[str, Any] | None) -> DocumentRecord | None:
    return DocumentRecord(**row) if row else None


def encode_cursor(source: str) -> str:
    """The opaque cursor of the page that starts after ``source``."""
    return base64.urlsafe_b64encode(json.dumps({"after": source}).encode()).decode()


def decode_cursor(cursor: str) -> str:
    """The source a cursor points after; InvalidRequestError for anything else."""
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))["after"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidRequestError("invalid cursor") from exc
    if not isinstance(value, str) or "\x00" in value:  # PostgreSQL text cannot hold NUL
        raise InvalidRequestError("invalid cursor")
    return value


def _of_tenant(tenant: str | None) -> sql.Composable:
    """The condition keeping one tenant's rows (nothing when ``tenant`` is None: an
    operator's or the ingest's own reads, never a request's)."""
    return sql.SQL("" if tenant is None else " AND tenant = %s")


def _tenant_params(tenant: str | None) -> tuple[str, ...]:
    return () if tenant is None else (tenant,)


# --- collections --------------------------------------------------------------------------


def record_collection(
    conn: Connection,
    name: str,
    embedding_model: str,
    dimensions: int,
    *,
    hnsw_m: int = 16,
    hnsw_ef_construction: int = 64,
    index: bool = True,
    tenant: str = DEFAULT_TENANT,
) -> tuple[str, int]:
    """Record the collection's model (and ``tenant`` as its owner) unless one is recorded;
    return the recorded model. The caller checks the owner first (:func:`collection_owner`).

    Creates the partial HNSW index for the dimension, with these build parameters, when
    this model is the recorded one and the dimension has no index yet (an existing index
    keeps the parameters it was built with), unless ``index`` is False (a bulk load
    builds it once its rows are in: see :func:`build_vector_index`).
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('ragline.collections'))")
        conn.execute(
            "INSERT INTO collections (name, embedding_model, dimensions, tenant)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO NOTHING",
            (name, embedding_model, dimensions, tenant),
        )
        row = conn.execute(
            "SELECT embedding_model, dimensions FROM collections WHERE name = %s", (name,)
        ).fetchone()
        assert row is not None
        known: tuple[str, int] = (row[0], row[1])
        if known == (embedding_model, dimensions) and index:
            build_vector_index(
                conn, dimensions, hnsw_m=hnsw_m, hnsw_ef_construction=hnsw_ef_construction
            )
    return known


def _index_name(dimensions: int) -> sql.Identifier:
    return sql.Identifier(f"chunks_embedding_hnsw_{dimensions}")


def build_vector_index(
    conn: Connection,
    dimensions: int,
    *,
    hnsw_m: int = 16,
    hnsw_ef_construction: int = 64,
    maintenance_work_mem_mb: int | None = None,
) -> None:
    """Create the dimension's partial HNSW index if it is missing: over the vectors in half
    precision, as they are stored (migration 0011), by cosine distance.

    Over rows already written, PostgreSQL builds the graph in one pass (in memory, up to
    ``maintenance_work_mem``), which is several times cheaper than inserting into it row by
    row: the reason a bulk load defers it.
    """
    with conn.transaction():
        if maintenance_work_mem_mb is not None:
            conn.execute(
                sql.SQL("SET LOCAL maintenance_work_mem = {}").format(
                    sql.Literal(f"{maintenance_work_mem_mb}MB")
                )
            )
        conn.execute(
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS {index} ON chunks USING hnsw"
                " ((embedding::halfvec({dims})) halfvec_cosine_ops)"
                " WITH (m = {m}, ef_construction = {ef_construction})"
                " WHERE dimensions = {dims}"
            ).format(
                index=_index_name(dimensions),
                dims=sql.Literal(dimensions),
                m=sql.Literal(hnsw_m),
                ef_construction=sql.Literal(hnsw_ef_construction),
            )
        )


def drop_empty_vector_index(conn: Connection, dimensions: int) -> bool:
    """Drop the dimension's HNSW index if no chunk of that dimension exists (so dropping it
    costs no other collection anything); True when the dimension holds no rows."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('ragline.collections'))")
        held = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM chunks WHERE dimensions = %s)", (dimensions,)
        ).fetchone()
        if held is None or held[0]:
            return False
        conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(_index_name(dimensions)))
    return True


def collection_model(conn: Connection, name: str) -> tuple[str, int] | None:
    """The (embedding model, dimensions) a collection was built with, or None."""
    row = conn.execute(
        "SELECT embedding_model, dimensions FROM collections WHERE name = %s", (name,)
    ).fetchone()
    return (row[0], row[1]) if row else None


def collection_owner(conn: Connection, name: str) -> str | None:
    """The tenant owning the collection, or None when no collection has this name."""
    row = conn.execute("SELECT tenant FROM collections WHERE name = %s", (name,)).fetchone()
    return row[0] if row else None


def create_collection(
    conn: Connection, name: str, tenant: str, embedding_model: str, dimensions: int
) -> str:
    """Record an empty collection for ``tenant`` unless the name is taken; return its
    owner (``tenant`` when it is now, or was already, the tenant's)."""
    conn.execute(
        "INSERT INTO collections (name, embedding_model, dimensions, tenant)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO NOTHING",
        (name, embedding_model, dimensions, tenant),
    )
    owner = collection_owner(conn, name)
    assert owner is not None
    return owner


# --- documents ----------------------------------------------------------------------------


def find_document(conn: Connection, source: str) -> DocumentRecord | None:
    """The document stored from ``source``, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            sql.SQL("SELECT {} FROM documents WHERE source = %s").format(_DOCUMENT_COLUMNS),
            (source,),
        )
        return _document(cur.fetchone())


def get_document(
    conn: Connection, document_id: UUID, *, tenant: str | None = None
) -> DocumentRecord | None:
    """The document with this id (of ``tenant`` only, unless None), or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            sql.SQL("SELECT {} FROM documents WHERE id = %s{}").format(
                _DOCUMENT_COLUMNS, _of_tenant(tenant)
            ),
            (document_id, *_tenant_params(tenant)),
        )
        return _document(cur.fetchone())


def list_documents(
    conn: Connection,
    *,
    collection: str | None = None,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    tenant: str | None = None,
) -> tuple[list[DocumentRecord], str | None]:
    """A page of documents ordered by source (of ``tenant`` only, unless None), and the
    cursor of the next page."""
    conditions: list[sql.Composable] = [sql.SQL("TRUE")]
    params: list[Any] = []
    for column, value in (("tenant", tenant), ("collection", collection), ("status", status)):
        if value is not None:
            conditions.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    if cursor:
        conditions.append(sql.SQL("source > %s"))
        params.append(decode_cursor(cursor))
    query = sql.SQL("SELECT {} FROM documents WHERE {} ORDER BY source LIMIT %s").format(
        _DOCUMENT_COLUMNS, sql.SQL(" AND ").join(conditions)
    )
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, [*params, limit + 1])
        rows = [DocumentRecord(**row) for row in cur.fetchall()]
    next_cursor = encode_cursor(rows[limit - 1].source) if len(rows) > limit else None
    return rows[:limit], next_cursor


def write_document(
    conn: Connection, change: DocumentChange, *, precondition: Precondition | None = None
) -> DocumentRecord | None:
    """Apply ``change`` to the document stored from its source, in one transaction, if
    ``precondition`` holds; return the document as written (for ``Removed``: as it was
    before it went, None when there was none).

    The source is locked first (:func:`_lock`), so writers of one source take turns, and
    ``precondition`` is asked with what is stored after the lock: SupersededError when it
    refuses, and nothing is written.
    """
    if isinstance(change, Ingested) and len(change.chunks) != len(change.vectors):
        raise ValueError("one vector per chunk")
    with conn.transaction():
        stored = _lock(conn, change.source)
        if precondition is not None and not precondition.holds(stored):
            raise SupersededError(
                f"{change.source}: a newer version of the object is stored or current"
            )
        if isinstance(change, Ingested):
            return _replace_chunks(conn, change, stored)
        if isinstance(change, NotIngested):
            return _drop_chunks(conn, change, stored)
        if isinstance(change, Reattributed):
            return _reattribute(conn, change, stored)
        return _remove(conn, stored)


def _lock(conn: Connection, source: str) -> DocumentRecord | None:
    """Lock ``source`` until the transaction ends; return what is stored for it.

    The lock is an advisory one on the source, not a row lock, so that it also orders
    writers of a source that has no row yet (two first ingests, a delete and a re-create).
    The read is a statement of its own: under READ COMMITTED a statement sees what was
    committed when it began, so a read in the locking statement would miss the write of
    the writer it waited for.
    """
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('ragline.documents'), hashtext(%s))", (source,)
    )
    return find_document(conn, source)


def _replace_chunks(
    conn: Connection, change: Ingested, stored: DocumentRecord | None
) -> DocumentRecord:
    record = _upsert(
        conn, change.document, "ingested", None, change.embedding_model, len(change.chunks)
    )
    if stored is not None:  # a new document has no chunks to drop
        conn.execute("DELETE FROM chunks WHERE document_id = %s", (record.id,))
    dimensions = int(change.vectors.shape[1]) if len(change.vectors) else 0
    rows = [
        (
            record.id,
            record.collection,
            chunk.ordinal,
            chunk.section,
            chunk.text,
            chunk.token_count,
            Jsonb(chunk.metadata),
            dimensions,
            vector,
        )
        for chunk, vector in zip(change.chunks, change.vectors, strict=True)
    ]
    if not rows:
        return record
    if isinstance(conn, DataApiConnection):
        # No COPY over the Data API: batched INSERTs, in this same transaction.
        conn.insert_many(_INSERT_CHUNK, rows)
    else:
        with conn.cursor() as writer, writer.copy(_COPY_CHUNKS) as copy:
            copy.set_types(_COPY_TYPES)
            for row in rows:
                copy.write_row((*row[:-1], HalfVector(row[-1])))
    return record


def _drop_chunks(
    conn: Connection, change: NotIngested, stored: DocumentRecord | None
) -> DocumentRecord:
    record = _upsert(conn, change.document, change.status, change.error, None, 0)
    if stored is not None:
        conn.execute("DELETE FROM chunks WHERE document_id = %s", (record.id,))
    return record


def _reattribute(
    conn: Connection, change: Reattributed, stored: DocumentRecord | None
) -> DocumentRecord:
    if stored is None:
        raise SupersededError(f"{change.source}: no document to update")
    document, version = change.document, change.document.version
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            sql.SQL(
                "UPDATE documents SET collection = %s, metadata = %s, object_etag = %s,"
                " object_version_id = %s, object_modified = %s, object_sequencer = %s,"
                " updated_at = now() WHERE id = %s RETURNING {}"
            ).format(_DOCUMENT_COLUMNS),
            (
                document.collection,
                Jsonb(document.metadata),
                version.etag if version else None,
                version.version_id if version else None,
                version.modified if version else None,
                version.sequencer if version else None,
                stored.id,
            ),
        )
        record = _document(cur.fetchone())
    if document.collection != stored.collection:
        # The keyword index follows (the chunks' UPDATE trigger moves their postings).
        conn.execute(
            "UPDATE chunks SET collection = %s WHERE document_id = %s",
            (document.collection, stored.id),
        )
    assert record is not None
    return record


def _remove(conn: Connection, stored: DocumentRecord | None) -> DocumentRecord | None:
    if stored is not None:  # its chunks go by the foreign key's cascade
        conn.execute("DELETE FROM documents WHERE id = %s", (stored.id,))
    return stored


def _upsert(
    conn: Connection,
    document: DocumentWrite,
    status: str,
    error: str | None,
    embedding_model: str | None,
    chunk_count: int,
) -> DocumentRecord:
    """Insert or replace the document's row as it ends up, and return it."""
    version = document.version
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            sql.SQL(
                "INSERT INTO documents (collection, source, title, format, content_hash,"
                " size_bytes, metadata, status, error, chunk_count, embedding_model,"
                " object_etag, object_version_id, object_modified, object_sequencer, tenant)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (source) DO UPDATE SET collection = EXCLUDED.collection,"
                " title = EXCLUDED.title, format = EXCLUDED.format,"
                " content_hash = EXCLUDED.content_hash, size_bytes = EXCLUDED.size_bytes,"
                " metadata = EXCLUDED.metadata, status = EXCLUDED.status,"
                " error = EXCLUDED.error, chunk_count = EXCLUDED.chunk_count,"
                " embedding_model = EXCLUDED.embedding_model,"
                " object_etag = EXCLUDED.object_etag,"
                " object_version_id = EXCLUDED.object_version_id,"
                " object_modified = EXCLUDED.object_modified,"
                " object_sequencer = EXCLUDED.object_sequencer, tenant = EXCLUDED.tenant,"
                " updated_at = now()"
                " RETURNING {}"
            ).format(_DOCUMENT_COLUMNS),
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
                chunk_count,
                embedding_model,
                version.etag if version else None,
                version.version_id if version else None,
                version.modified if version else None,
                version.sequencer if version else None,
                document.tenant,
            ),
        )
        record = _document(cur.fetchone())
    assert record is not None
    return record


def iter_documents(
    conn: Connection, source_prefix: str, *, page_size: int = 1000
) -> Iterator[DocumentRecord]:
    """Every document whose source starts with ``source_prefix``, by source, a page at a
    time (keyset pagination: no snapshot held open between pages)."""
    pattern = source_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    after = ""
    while True:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                sql.SQL(
                    "SELECT {} FROM documents WHERE source LIKE %s AND source > %s"
                    " ORDER BY source LIMIT %s"
                ).format(_DOCUMENT_COLUMNS),
                (pattern, after, page_size),
            )
            rows = [DocumentRecord(**row) for row in cur.fetchall()]
        yield from rows
        if len(rows) < page_size:
            return
        after = rows[-1].source


def delete_document(conn: Connection, document_id: UUID, *, tenant: str | None = None) -> bool:
    """Delete the document and its chunks (of ``tenant`` only, unless None); False when
    there was no such document."""
    row = conn.execute(
        sql.SQL("DELETE FROM documents WHERE id = %s{} RETURNING id").format(_of_tenant(tenant)),
        (document_id, *_tenant_params(tenant)),
    ).fetchone()
    return row is not None
