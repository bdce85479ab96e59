"""Tenants and their API keys: the SQL that writes and reads them.

Each function takes the connection to run on; the ``Store`` facade decides which one.
Keys are stored as digests; this module never sees a key itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from psycopg.rows import dict_row

from ragline.store.records import KeyRecord

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from ragline.store.connection import Connection

_KEY_COLUMNS = "id, tenant, scopes, name, created_at, expires_at, revoked_at"


def ensure_tenant(conn: Connection, tenant: str) -> bool:
    """Record the tenant unless it exists; True when it was new."""
    row = conn.execute(
        "INSERT INTO tenants (id) VALUES (%s) ON CONFLICT (id) DO NOTHING RETURNING id", (tenant,)
    ).fetchone()
    return row is not None


def tenant_exists(conn: Connection, tenant: str) -> bool:
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = %s)", (tenant,)).fetchone()
    return bool(row and row[0])


def insert_key(
    conn: Connection,
    key_id: str,
    tenant: str,
    digest: str,
    scopes: Sequence[str],
    *,
    name: str = "",
    expires_at: datetime | None = None,
) -> KeyRecord:
    """Store a key's digest for ``tenant`` (which must exist)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "INSERT INTO api_keys (id, tenant, digest, scopes, name, expires_at)"
            f" VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_KEY_COLUMNS}",
            (key_id, tenant, digest, list(scopes), name, expires_at),
        )
        row = cur.fetchone()
    assert row is not None
    return KeyRecord(**row)


def key_by_digest(conn: Connection, digest: str) -> KeyRecord | None:
    """The key with this digest, revoked or expired ones included (the caller decides)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE digest = %s", (digest,))
        row = cur.fetchone()
    return KeyRecord(**row) if row else None


def list_keys(conn: Connection, tenant: str | None) -> list[KeyRecord]:
    """The keys of ``tenant`` (None: of every tenant), oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        if tenant is None:
            cur.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id")
        else:
            cur.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE tenant = %s ORDER BY created_at, id",
                (tenant,),
            )
        return [KeyRecord(**row) for row in cur.fetchall()]


def revoke_key(conn: Connection, key_id: str, tenant: str | None) -> bool:
    """Revoke the key now (of ``tenant`` only, unless None); False when there is no such
    key that is not revoked already."""
    row = conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL"
        " AND (%s::text IS NULL OR tenant = %s) RETURNING id",
        (key_id, tenant, tenant),
    ).fetchone()
    return row is not None
