"""The query log: one row per query, feedback on it, retention, and its stats.

A question refused or failed (4xx, 5xx) has a row too, with its ``status_code`` and no
model; the stats describe answered questions and count the others as ``errors``.

Each function takes the connection to run on; the ``Store`` facade decides which one,
and when to purge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg import sql
from psycopg.rows import dict_row

from ragline.outcomes import NOT_IN_QUERY_LOG, QueryRecord

if TYPE_CHECKING:
    from datetime import datetime

    from ragline.store.connection import Connection

_QUERY_LOG_COLUMNS = [
    name
    for name in QueryRecord.__dataclass_fields__
    if name != "created_at" and name not in NOT_IN_QUERY_LOG
]


def log_query(conn: Connection, entry: QueryRecord) -> None:
    """Record one answered query; a retried log of the same request changes nothing."""
    columns = list(_QUERY_LOG_COLUMNS)
    values: list[Any] = [getattr(entry, c) for c in columns]
    if entry.created_at is not None:
        columns.append("created_at")
        values.append(entry.created_at)
    conn.execute(
        sql.SQL("INSERT INTO queries ({}) VALUES ({}) ON CONFLICT (request_id) DO NOTHING").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        ),
        values,
    )


def purge_query_log(conn: Connection, retention_days: int) -> int:
    """Delete query log rows older than ``retention_days``; return how many."""
    cursor = conn.execute(
        "DELETE FROM queries WHERE created_at < now() - make_interval(days => %s)",
        (retention_days,),
    )
    return cursor.rowcount


def record_feedback(
    conn: Connection,
    request_id: str,
    rating: str,
    comment: str | None,
    tenant: str | None = None,
) -> bool:
    """Attach a rating to a logged query (of ``tenant`` only, unless None); False when no
    such query was logged."""
    of_tenant = "" if tenant is None else " AND tenant = %s"
    cursor = conn.execute(
        "UPDATE queries SET rating = %s, comment = %s, rated_at = now() WHERE request_id = %s"
        + of_tenant,
        (rating, comment, request_id, *(() if tenant is None else (tenant,))),
    )
    return cursor.rowcount == 1


def query_logged(conn: Connection, request_id: str, tenant: str) -> bool:
    """Whether ``tenant`` logged a query with this request id."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM queries WHERE request_id = %s AND tenant = %s)",
        (request_id, tenant),
    ).fetchone()
    return bool(row and row[0])


def query_log(conn: Connection, since: datetime, tenant: str | None = None) -> list[dict[str, Any]]:
    """Logged queries since ``since`` (of ``tenant`` only, unless None), oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        of_tenant = "" if tenant is None else " AND tenant = %s"
        cur.execute(
            "SELECT * FROM queries WHERE created_at >= %s" + of_tenant + " ORDER BY created_at",
            (since, *(() if tenant is None else (tenant,))),
        )
        return list(cur.fetchall())


# The rows of answered questions (refused and failed ones have no model, tokens or cost).
_ANSWERED = " AND status_code < 400"


def query_stats(conn: Connection, since: datetime, tenant: str | None = None) -> dict[str, Any]:
    """Aggregates of the query log since ``since`` (of ``tenant`` only, unless None):
    totals, latency percentiles per stage, and tokens and cost by model and by profile,
    over answered questions; and ``errors``, the questions answered with an error status."""
    # Every statement below selects with this: the window, and the tenant when given.
    window = " WHERE created_at >= %s" + ("" if tenant is None else " AND tenant = %s")
    scope = (since, *(() if tenant is None else (tenant,)))
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT count(*) AS errors FROM queries" + window + " AND status_code >= 400",
            scope,
        )
        errors = cur.fetchone()
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
            " FROM queries" + window + _ANSWERED,
            scope,
        )
        totals = cur.fetchone()
        cur.execute(
            "SELECT stage,"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50,"
            " percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) AS p95"
            " FROM queries, LATERAL (VALUES ('retrieve', retrieve_ms),"
            " ('generate', generate_ms), ('total', total_ms)) AS s(stage, ms)"
            + window
            + _ANSWERED
            + " GROUP BY stage",
            scope,
        )
        latency = {row["stage"]: {"p50": row["p50"], "p95": row["p95"]} for row in cur}
        groups: dict[str, list[dict[str, Any]]] = {}
        for name, keys in (
            ("by_model", "provider, model"),
            ("by_profile", "profile"),
            ("by_tenant", "tenant"),
        ):
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
                    " FROM queries" + window + _ANSWERED + " GROUP BY {keys}"
                    " ORDER BY {keys}"
                ).format(keys=sql.SQL(keys)),
                scope,
            )
            groups[name] = list(cur.fetchall())
        # Follow-ups rewritten into search queries, by the model that wrote them (None:
        # the deterministic rewrite); their cost is a part of cost_usd above.
        cur.execute(
            "SELECT rewrite_model AS model, count(*) AS queries,"
            " sum(rewrite_input_tokens)::bigint AS input_tokens,"
            " sum(rewrite_output_tokens)::bigint AS output_tokens,"
            " sum(rewrite_cost_usd) AS cost_usd,"
            " count(*) FILTER (WHERE rewrite_cost_usd IS NULL) AS unpriced"
            " FROM queries" + window + _ANSWERED + " AND (session_id IS NOT NULL"
            " OR rewrite_model IS NOT NULL OR rewrite_input_tokens > 0)"
            " GROUP BY rewrite_model ORDER BY rewrite_model NULLS LAST",
            scope,
        )
        rewrites = list(cur.fetchall())
    assert totals is not None and errors is not None
    return {**totals, **errors, "latency_ms": latency, **groups, "rewrites": rewrites}
