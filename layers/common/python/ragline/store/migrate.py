"""Numbered SQL migrations, applied in order, each once, under an advisory lock.

Files are ``migrations/NNNN_name.sql``. The same function runs locally on first use and
on AWS in the migration Lambda on every deploy; concurrent runners wait on the lock.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragline.store.connection import Connection

_MIGRATION_FILE = re.compile(r"^(\d{4})_([\w-]+)\.sql$")
_LOCK_ID = 0x7261676C  # "ragl"


def available_migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every packaged migration, in version order."""
    found = []
    for entry in resources.files("ragline.store").joinpath("migrations").iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    return sorted(found)


def apply_migrations(conn: Connection) -> list[int]:
    """Apply the migrations this database lacks; return the versions applied now."""
    applied_now: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, name, sql in available_migrations():
            if version in done:
                continue
            conn.execute(sql.encode("utf-8"))  # bytes: several statements, no parameters
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
            )
            applied_now.append(version)
    return applied_now


def versions(conn: Connection) -> dict[str, Any]:
    """The server's PostgreSQL and pgvector versions, and the schema version it is at."""
    row = conn.execute(
        "SELECT current_setting('server_version') AS server,"
        " (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector,"
        " (SELECT max(version) FROM schema_migrations) AS schema_version"
    ).fetchone()
    assert row is not None
    return {"postgres": row[0], "pgvector": row[1], "schema_version": row[2]}
