"""Conversations kept by the server: sessions of a tenant and their turns.

Each function takes the connection to run on; the ``Store`` facade decides which one.
A session id is global: one another tenant started is not this tenant's to read or
continue (:func:`open_session` says so, and the use case answers 404).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ragline.store.records import StoredTurn

if TYPE_CHECKING:
    from ragline.store.connection import Connection


def open_session(
    conn: Connection, session_id: str, tenant: str, *, ttl_hours: int, turns: int
) -> list[StoredTurn] | None:
    """The last ``turns`` turns of ``tenant``'s session, oldest first: none for a new one
    (started now) or an expired one (emptied and started again); None when the session
    is another tenant's. Starting a session also purges the expired ones."""
    with conn.transaction():
        row = conn.execute(
            "SELECT tenant, expires_at > now() FROM conversations WHERE id = %s FOR UPDATE",
            (session_id,),
        ).fetchone()
        if row is None:
            conn.execute("DELETE FROM conversations WHERE expires_at < now()")
            created = conn.execute(
                "INSERT INTO conversations (id, tenant, expires_at)"
                " VALUES (%s, %s, now() + make_interval(hours => %s))"
                " ON CONFLICT (id) DO NOTHING RETURNING tenant",
                (session_id, tenant, ttl_hours),
            ).fetchone()
            if created is None:  # started by a concurrent request: whose is it?
                owner = conn.execute(
                    "SELECT tenant FROM conversations WHERE id = %s", (session_id,)
                ).fetchone()
                return [] if owner is not None and owner[0] == tenant else None
            return []
        owner, live = row
        if owner != tenant:
            return None
        if not live:
            conn.execute("DELETE FROM conversation_turns WHERE session_id = %s", (session_id,))
            conn.execute(
                "UPDATE conversations SET expires_at = now() + make_interval(hours => %s),"
                " updated_at = now() WHERE id = %s",
                (ttl_hours, session_id),
            )
            return []
        rows = conn.execute(
            "SELECT n, request_id, question, search_query, answer FROM conversation_turns"
            " WHERE session_id = %s ORDER BY n DESC LIMIT %s",
            (session_id, turns),
        ).fetchall()
    return [StoredTurn(*row) for row in reversed(rows)]


def append_turn(
    conn: Connection,
    session_id: str,
    tenant: str,
    *,
    request_id: str,
    question: str,
    search_query: str,
    answer: str,
    ttl_hours: int,
) -> bool:
    """Add a turn to ``tenant``'s session and keep the session alive ``ttl_hours`` more;
    False when there is no such session of the tenant (it expired and was purged)."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE conversations SET expires_at = now() + make_interval(hours => %s),"
            " updated_at = now() WHERE id = %s AND tenant = %s RETURNING id",
            (ttl_hours, session_id, tenant),
        ).fetchone()
        if row is None:
            return False
        conn.execute(
            "INSERT INTO conversation_turns (session_id, n, request_id, question, search_query,"
            " answer) SELECT %s, coalesce(max(n), 0) + 1, %s, %s, %s, %s"
            " FROM conversation_turns WHERE session_id = %s",
            (session_id, request_id, question, search_query, answer, session_id),
        )
    return True
