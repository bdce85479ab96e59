"""What the SQL modules run on: a psycopg connection, or the Data API driver's stand-in.

Both offer ``execute(query, params)`` returning a cursor (``fetchone``, ``fetchall``,
iteration, ``rowcount``), ``cursor(row_factory=...)`` and ``transaction()``; queries use
psycopg's ``%s`` / ``%(name)s`` placeholders or ``psycopg.sql`` compositions. Only the
chunk write differs: COPY on psycopg, batched inserts on the Data API
(``documents.write_document``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import psycopg

    from ragline.store.data_api import DataApiConnection

Connection: TypeAlias = "psycopg.Connection[Any] | DataApiConnection"
