"""PostgreSQL + pgvector: migrations, document and chunk writes (COPY), retrieval.

The only package that imports psycopg.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from ragline.store.database import Database
from ragline.store.migrate import apply_migrations, available_migrations
from ragline.store.repository import (
    ChunkWrite,
    DocumentRecord,
    DocumentWrite,
    RetrievedChunk,
    Store,
)

if TYPE_CHECKING:
    from ragline.config import Settings

__all__ = [
    "ChunkWrite",
    "Database",
    "DocumentRecord",
    "DocumentWrite",
    "RetrievedChunk",
    "Store",
    "apply_migrations",
    "available_migrations",
    "get_store",
    "migrate",
]


@lru_cache(maxsize=4)
def get_store(settings: Settings) -> Store:
    """The process's store for these settings; its connection is reused across invocations."""
    return Store(settings)


def migrate(settings: Settings) -> list[int]:
    """Apply pending migrations to the configured database; return the versions applied."""
    return get_store(settings).migrate()
