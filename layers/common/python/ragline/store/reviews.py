"""The review queue: the SQL that records answers, queues them, and records decisions.

Each function takes the connection to run on; the ``Store`` facade decides which one.
Every statement is scoped to a tenant: another tenant's item is not found. A decision is
one conditional ``UPDATE`` (``WHERE state IN ('pending', 'claimed')``), so of two
reviewers deciding at once one wins and the other finds the item decided.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

if TYPE_CHECKING:
    from datetime import datetime
    from uuid import UUID

    from ragline.store.connection import Connection

QUEUED = ("pending", "claimed")
DECIDED = ("approved", "corrected", "rejected")
_COLUMNS = (
    "id, tenant, request_id, created_at, queued_at, state, reason, reason_detail, held,"
    " collection, profile, question, answer, citations, passages, provider, model, prompt,"
    " cost_usd, claimed_by, claimed_at, decided_by, decided_at, decision_reason,"
    " decision_category, must_contain, final_answer, final_citations"
)


def record_answer(conn: Connection, item: dict[str, Any]) -> dict[str, Any]:
    """Insert an answer (state ``recorded`` or ``pending``); a second record of the same
    request changes nothing. Returns the stored row."""
    values = {
        **item,
        "citations": Jsonb(item["citations"]),
        "passages": Jsonb(item["passages"]),
    }
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "INSERT INTO review_items (id, tenant, request_id, queued_at, state, reason,"
            " reason_detail, held, collection, profile, question, answer, citations, passages,"
            " provider, model, prompt, cost_usd) VALUES (%(id)s, %(tenant)s, %(request_id)s,"
            " CASE WHEN %(state)s = 'pending' THEN now() END, %(state)s, %(reason)s,"
            " %(reason_detail)s, %(held)s, %(collection)s, %(profile)s, %(question)s,"
            " %(answer)s, %(citations)s::jsonb, %(passages)s::jsonb, %(provider)s, %(model)s,"
            " %(prompt)s, %(cost_usd)s) ON CONFLICT (request_id) DO NOTHING",
            values,
        )
        cur.execute(
            f"SELECT {_COLUMNS} FROM review_items WHERE request_id = %s AND tenant = %s",
            (item["request_id"], item["tenant"]),
        )
        row = cur.fetchone()
    assert row is not None
    return dict(row)


def queue_recorded(
    conn: Connection, request_id: str, tenant: str, reason: str, detail: str | None
) -> dict[str, Any] | None:
    """Queue a recorded answer of ``tenant`` (a thumbs-down). Returns the row when it was
    queued now, None when there is no such recorded answer (unknown, or already queued)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "UPDATE review_items SET state = 'pending', queued_at = now(), reason = %s,"
            " reason_detail = %s WHERE request_id = %s AND tenant = %s AND state = 'recorded'"
            f" RETURNING {_COLUMNS}",
            (reason, detail, request_id, tenant),
        )
        row = cur.fetchone()
    return dict(row) if row else None


def purge_recorded(conn: Connection, hours: int) -> int:
    """Delete recorded (never queued) answers older than ``hours``; return how many."""
    cursor = conn.execute(
        "DELETE FROM review_items WHERE state = 'recorded'"
        " AND created_at < now() - make_interval(hours => %s)",
        (hours,),
    )
    return cursor.rowcount


def get_item(conn: Connection, item_id: UUID, tenant: str) -> dict[str, Any] | None:
    """One item of ``tenant`` that was queued (recorded answers are not review items)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM review_items WHERE id = %s AND tenant = %s"
            " AND state <> 'recorded'",
            (item_id, tenant),
        )
        row = cur.fetchone()
    return dict(row) if row else None


def list_items(
    conn: Connection,
    tenant: str,
    *,
    states: list[str],
    profile: str | None,
    reason: str | None,
    older_than_seconds: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Queued items of ``tenant`` in ``states``, oldest first, with the optional filters."""
    clauses = ["tenant = %s", "state = ANY(%s)"]
    params: list[Any] = [tenant, states]
    if profile is not None:
        clauses.append("profile = %s")
        params.append(profile)
    if reason is not None:
        clauses.append("reason = %s")
        params.append(reason)
    if older_than_seconds is not None:
        clauses.append("queued_at <= now() - make_interval(secs => %s)")
        params.append(older_than_seconds)
    params.append(limit)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM review_items WHERE "
            + " AND ".join(clauses)
            + " ORDER BY queued_at, id LIMIT %s",
            params,
        )
        return [dict(row) for row in cur.fetchall()]


def claim(conn: Connection, item_id: UUID, tenant: str, reviewer: str) -> dict[str, Any] | None:
    """Claim a pending item (or re-claim one this reviewer holds); None when it is not
    pending (claimed by another, decided, or not found: the caller reads which)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "UPDATE review_items SET state = 'claimed', claimed_by = %s, claimed_at = now()"
            " WHERE id = %s AND tenant = %s AND (state = 'pending'"
            " OR (state = 'claimed' AND claimed_by = %s))"
            f" RETURNING {_COLUMNS}",
            (reviewer, item_id, tenant, reviewer),
        )
        row = cur.fetchone()
    return dict(row) if row else None


def decide(
    conn: Connection,
    item_id: UUID,
    tenant: str,
    *,
    reviewer: str,
    state: str,
    reason: str | None,
    category: str | None,
    final_answer: str | None,
    final_citations: list[dict[str, Any]] | None,
    must_contain: list[str] | None,
) -> dict[str, Any] | None:
    """Record a decision on a queued item that is pending, or claimed by ``reviewer``;
    None when it is not (decided already, claimed by another, or not found)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "UPDATE review_items SET state = %s, decided_by = %s, decided_at = now(),"
            " decision_reason = %s, decision_category = %s, final_answer = %s,"
            " final_citations = %s::jsonb, must_contain = %s::jsonb"
            " WHERE id = %s AND tenant = %s AND (state = 'pending'"
            " OR (state = 'claimed' AND claimed_by = %s))"
            f" RETURNING {_COLUMNS}",
            (
                state,
                reviewer,
                reason,
                category,
                final_answer,
                None if final_citations is None else Jsonb(final_citations),
                None if must_contain is None else Jsonb(must_contain),
                item_id,
                tenant,
                reviewer,
            ),
        )
        row = cur.fetchone()
    return dict(row) if row else None


def decided_since(
    conn: Connection, since: datetime, tenant: str | None = None
) -> list[dict[str, Any]]:
    """Items decided since ``since`` (of ``tenant`` only, unless None), oldest decision first."""
    of_tenant = "" if tenant is None else " AND tenant = %s"
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM review_items WHERE decided_at >= %s"
            + of_tenant
            + " ORDER BY decided_at, id",
            (since, *(() if tenant is None else (tenant,))),
        )
        return [dict(row) for row in cur.fetchall()]


def queue_stats(conn: Connection, since: datetime, tenant: str | None = None) -> dict[str, Any]:
    """The queue now (depth, oldest item's age) and its decisions since ``since``: time to
    decision, and the approval rate (approved / decided: a correction or a rejection is
    not an approval) overall and per model and prompt version."""
    of_tenant = "" if tenant is None else " AND tenant = %s"
    scope: tuple[Any, ...] = () if tenant is None else (tenant,)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT count(*) AS depth,"
            " count(*) FILTER (WHERE held) AS held,"
            " coalesce(extract(epoch FROM now() - min(queued_at)), 0)::float8"
            " AS oldest_age_seconds"
            " FROM review_items WHERE state IN ('pending', 'claimed')" + of_tenant,
            scope,
        )
        queue = cur.fetchone()
        cur.execute(
            "SELECT count(*) AS decided,"
            " count(*) FILTER (WHERE state = 'approved') AS approved,"
            " count(*) FILTER (WHERE state = 'corrected') AS corrected,"
            " count(*) FILTER (WHERE state = 'rejected') AS rejected,"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM"
            " decided_at - queued_at))::float8 AS decision_p50_seconds,"
            " percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM"
            " decided_at - queued_at))::float8 AS decision_p95_seconds"
            " FROM review_items WHERE decided_at >= %s" + of_tenant,
            (since, *scope),
        )
        decisions = cur.fetchone()
        cur.execute(
            "SELECT provider, model, prompt, count(*) AS decided,"
            " count(*) FILTER (WHERE state = 'approved') AS approved,"
            " avg((state = 'approved')::int)::float8 AS approval_rate"
            " FROM review_items WHERE decided_at >= %s" + of_tenant + " GROUP BY provider,"
            " model, prompt ORDER BY provider, model, prompt",
            (since, *scope),
        )
        by_model = [dict(row) for row in cur.fetchall()]
    assert queue is not None and decisions is not None
    return {**queue, **decisions, "by_model_prompt": by_model}
