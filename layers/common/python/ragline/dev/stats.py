"""``ragline stats``: what the queries cost and how long they took, from the query log.

The text report reads the store's aggregates; ``--plot`` draws cost and latency over
time with matplotlib (imported only then).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragline.store import Store

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str) -> timedelta:
    """``30m``, ``24h``, ``7d``, ``2w`` -> a timedelta; ValueError otherwise."""
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a duration like 30m, 24h, 7d or 2w")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def _money(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _group_rows(rows: list[dict[str, Any]], key: str) -> list[str]:
    lines = [
        f"  {key:<34} {'queries':>7} {'input':>9} {'cached':>8} {'output':>8} {'embed':>7}"
        f" {'abstain':>7} {'cost USD':>11}"
    ]
    for row in rows:
        if key == "model":
            same = row["provider"] == row["model"]
            name = row["provider"] if same else f"{row['provider']}:{row['model']}"
        else:
            name = row[key]
        cost = _money(row["cost_usd"])
        if row["unpriced"]:
            cost += f" (+{row['unpriced']} unpriced)"
        lines.append(
            f"  {name:<34} {row['queries']:>7} {row['input_tokens']:>9,} "
            f"{row['cached_input_tokens']:>8,} {row['output_tokens']:>8,} "
            f"{row['embedding_tokens']:>7,} {row['abstention_rate']:>7.0%} {cost:>11}"
        )
    return lines


def render_stats(
    stats: dict[str, Any], since: datetime, now: datetime, tenant: str | None = None
) -> str:
    """The report as text (of one ``tenant``'s queries, when given: named in the title)."""
    window = f"{since:%Y-%m-%d %H:%M} → {now:%Y-%m-%d %H:%M} UTC"
    if tenant is not None:
        window += f" · tenant {tenant}"
    errors = stats.get("errors") or 0
    # Refused and failed questions (4xx, 5xx) are logged too, apart from the answered ones.
    refused = f"    refused or failed {errors}" if errors else ""
    if not stats["queries"] and not errors:
        return f"ragline stats · {window}\nno queries logged in this window"
    if not stats["queries"]:
        return f"ragline stats · {window}\nno queries answered in this window{refused}"
    lines = [
        f"ragline stats · {window}",
        f"queries    {stats['queries']}    abstained {stats['abstention_rate']:.1%}    "
        f"needs review {stats['review_rate']:.1%}    fallback {stats['fallback_rate']:.1%}"
        + refused,
        f"tokens     input {stats['input_tokens']:,} (cached {stats['cached_input_tokens']:,})"
        f"    output {stats['output_tokens']:,}    embedding {stats['embedding_tokens']:,}",
        f"cost       ${_money(stats['cost_usd'])}"
        + (f"  (+{stats['unpriced']} queries with unpriced models)" if stats["unpriced"] else ""),
        f"feedback   {stats['rated_up']} up, {stats['rated_down']} down",
        "",
        f"  {'latency (ms)':<14} {'p50':>10} {'p95':>10}",
    ]
    for stage in ("retrieve", "generate", "total"):
        figures = stats["latency_ms"].get(stage, {})
        lines.append(f"  {stage:<14} {_ms(figures.get('p50')):>10} {_ms(figures.get('p95')):>10}")
    lines += ["", "by model", *_group_rows(stats["by_model"], "model")]
    lines += ["", "by profile", *_group_rows(stats["by_profile"], "profile")]
    if tenant is None and stats.get("by_tenant"):
        lines += ["", "by tenant", *_group_rows(stats["by_tenant"], "tenant")]
    if stats.get("rewrites"):
        lines += ["", "follow-up rewrites (part of the cost above)", *_rewrite_rows(stats)]
    return "\n".join(lines)


def _rewrite_rows(stats: dict[str, Any]) -> list[str]:
    """One line per model that rewrote follow-ups (``deterministic``: no model did)."""
    rows = []
    for row in stats["rewrites"]:
        name = row["model"] or "deterministic"
        cost = "unpriced" if row["unpriced"] else f"${_money(row['cost_usd'] or 0.0)}"
        rows.append(
            f"  {name:<28} {row['queries']:>6} queries  input {row['input_tokens']:,}"
            f"  output {row['output_tokens']:,}  {cost}"
        )
    return rows


def _buckets(rows: list[dict[str, Any]], since: datetime, now: datetime) -> list[dict[str, Any]]:
    """Split the window into about 24 intervals: cost summed, latencies' p50 and p95."""
    span = max((now - since).total_seconds(), 1.0)
    width = span / 24
    buckets: list[dict[str, Any]] = []
    for index in range(24):
        start = since + timedelta(seconds=index * width)
        inside = [
            r for r in rows
            if start <= r["created_at"] < start + timedelta(seconds=width)
            or (index == 23 and r["created_at"] >= start)
        ]  # fmt: skip
        totals = sorted(r["total_ms"] for r in inside)
        buckets.append(
            {
                "start": start + timedelta(seconds=width / 2),
                "cost": sum(r["cost_usd"] or 0.0 for r in inside),
                "queries": len(inside),
                "p50": _percentile(totals, 0.5),
                "p95": _percentile(totals, 0.95),
            }
        )
    return buckets


def _percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks, as PostgreSQL's percentile_cont."""
    if not values:
        return None
    position = (len(values) - 1) * q
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def plot_stats(rows: list[dict[str, Any]], since: datetime, now: datetime, path: Path) -> None:
    """Cost per interval (bars, with the running total) over latency p50 and p95 per
    interval (lines), as a PNG. The time axis spans the logged queries of the window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    if rows:
        since = rows[0]["created_at"]
        now = max(rows[-1]["created_at"], since + timedelta(minutes=1))
    buckets = _buckets(rows, since, now)
    times = [b["start"] for b in buckets]
    width = (now - since) / 24 * 0.8
    total_cost = sum(r["cost_usd"] or 0.0 for r in rows)
    figure, (cost_axis, latency_axis) = plt.subplots(
        2, 1, figsize=(10, 6.5), sharex=True, constrained_layout=True
    )
    figure.suptitle(
        f"ragline · {len(rows)} queries · ${total_cost:.4f} · "
        f"{since:%Y-%m-%d %H:%M} to {now:%Y-%m-%d %H:%M} UTC"
    )
    cost_axis.bar(times, [b["cost"] for b in buckets], width=width, color="#2b7bba")
    cost_axis.set_ylabel("cost per interval (USD)")
    running, total = [], 0.0
    for bucket in buckets:
        total += bucket["cost"]
        running.append(total)
    cumulative_axis = cost_axis.twinx()
    cumulative_axis.plot(times, running, color="#d95f02", label="running total")
    cumulative_axis.set_ylabel("running total (USD)")
    cumulative_axis.legend(loc="upper left")
    cost_axis.set_title("cost", loc="left", fontsize=10)
    for label, key, style in (("p50", "p50", "-o"), ("p95", "p95", "--s")):
        points = [(b["start"], b[key]) for b in buckets if b[key] is not None]
        latency_axis.plot(
            [p[0] for p in points], [p[1] for p in points], style, label=label, markersize=4
        )
    latency_axis.set_ylabel("total latency (ms)")
    latency_axis.set_title("latency", loc="left", fontsize=10)
    latency_axis.legend(loc="upper left")
    span = now - since
    tick = "%H:%M:%S" if span <= timedelta(hours=1) else "%H:%M"
    latency_axis.xaxis.set_major_formatter(
        mdates.DateFormatter(tick if span <= timedelta(days=1) else "%m-%d %H:%M")
    )
    for axis in (cost_axis, latency_axis):
        axis.grid(alpha=0.3)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _seconds(value: float | None) -> str:
    """A duration as its largest unit: 45 s, 12.5 min, 3.2 h."""
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.0f} s"
    return f"{value / 60:.1f} min" if value < 7200 else f"{value / 3600:.1f} h"


def render_reviews(stats: dict[str, Any]) -> str:
    """The review queue now, and its decisions in the window (``Store.review_stats``)."""
    decided = stats["decided"]
    rate = "-" if not decided else f"{stats['approved'] / decided:.0%}"
    lines = [
        f"review queue  {stats['depth']} waiting ({stats['held']} held)    oldest "
        f"{_seconds(stats['oldest_age_seconds'] if stats['depth'] else None)}",
        f"decisions     {decided}: {stats['approved']} approved, {stats['corrected']} "
        f"corrected, {stats['rejected']} rejected    approval {rate}    time to decision "
        f"p50 {_seconds(stats['decision_p50_seconds'])}, p95 "
        f"{_seconds(stats['decision_p95_seconds'])}",
    ]
    if stats["by_model_prompt"]:
        lines.append(f"  {'model':<34} {'prompt':<18} {'decided':>7} {'approved':>8}")
        for row in stats["by_model_prompt"]:
            same = row["provider"] == row["model"]
            name = row["provider"] if same else f"{row['provider']}:{row['model']}"
            lines.append(
                f"  {name:<34} {row['prompt']:<18} {row['decided']:>7} {row['approval_rate']:>8.0%}"
            )
    return "\n".join(lines)


def run_stats(
    store: Store, since: timedelta, plot: Path | None = None, tenant: str | None = None
) -> str:
    """The report for the last ``since`` (of ``tenant``'s queries only, when given; else
    with a split by tenant); also draws the plot when asked."""
    now = datetime.now(UTC)
    start = now - since
    report = render_stats(store.query_stats(start, tenant=tenant), start, now, tenant)
    report += "\n\n" + render_reviews(store.review_stats(start, tenant=tenant))
    if plot is not None:
        plot_stats(store.query_log(start, tenant=tenant), start, now, plot)
        report += f"\n\nplot written to {plot}"
    return report
