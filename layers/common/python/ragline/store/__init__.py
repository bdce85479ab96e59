"""PostgreSQL + pgvector: migrations, document and chunk writes (COPY), retrieval.

The only package that imports psycopg. ``Store`` (``facade``) is the door; behind it the
SQL lives in ``documents``, ``search`` and ``query_log``, the dataclasses in ``records``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from ragline.store.database import Database, transient_error
from ragline.store.facade import Store
from ragline.store.migrate import apply_migrations, available_migrations
from ragline.store.records import (
    ChunkWrite,
    DocumentChange,
    DocumentRecord,
    DocumentWrite,
    Ingested,
    NotIngested,
    ObjectVersion,
    Precondition,
    Reattributed,
    Removed,
    RetrievedChunk,
    Selection,
    StoredTurn,
)

if TYPE_CHECKING:
    from ragline.config import Settings

__all__ = [
    "ChunkWrite",
    "Database",
    "DocumentChange",
    "DocumentRecord",
    "DocumentWrite",
    "Ingested",
    "NotIngested",
    "ObjectVersion",
    "Precondition",
    "Reattributed",
    "Removed",
    "RetrievedChunk",
    "Selection",
    "Store",
    "StoredTurn",
    "apply_migrations",
    "available_migrations",
    "get_store",
    "migrate",
    "transient_error",
]


@lru_cache(maxsize=4)
def get_store(settings: Settings) -> Store:
    """The process's store for these settings; its connection is reused across invocations."""
    return Store(settings)


def migrate(settings: Settings) -> list[int]:
    """Apply pending migrations to the configured database; return the versions applied."""
    return get_store(settings).migrate()
