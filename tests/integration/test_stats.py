"""The query log and ``ragline stats`` agree on a known set of requests."""

from __future__ import annotations

import struct
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ragline.config import Settings
from ragline.dev.stats import parse_since, render_stats, run_stats
from ragline.outcomes import QueryRecord
from ragline.store import Store

NOW = datetime.now(UTC)


def _entry(n: int, **changes: object) -> QueryRecord:
    values: dict[str, object] = dict(
        request_id=f"req-{n}",
        collection="default",
        profile="simple",
        provider="openai",
        model="gpt-4o-mini",
        prompt="answer@v1",
        input_tokens=1000,
        output_tokens=100,
        cached_input_tokens=200,
        embedding_tokens=10,
        cost_usd=0.0002,
        cost_estimated=False,
        retrieve_ms=10.0 * n,
        generate_ms=100.0 * n,
        total_ms=110.0 * n,
        chunks_retrieved=5,
        top_score=0.5,
        abstained=False,
        needs_review=False,
        fallback=False,
        sources=["s3://b/a.md"],
        question="q?",
        created_at=NOW - timedelta(minutes=n),
    )
    values.update(changes)
    return QueryRecord(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def store(store_settings: Settings) -> Store:
    # GIVEN ten logged queries: 1..8 by gpt-4o-mini (#8 abstained), #9 by an unpriced
    # model under the critical profile, #10 two days old (outside a 24h window)
    store = Store(store_settings)
    for n in range(1, 9):
        store.log_query(_entry(n, abstained=n == 8))
    store.log_query(
        _entry(
            9,
            provider="sagemaker",
            model="llama",
            cost_usd=None,
            profile="critical",
            needs_review=True,
        )
    )
    store.log_query(_entry(10, created_at=NOW - timedelta(days=2)))
    store.log_query(_entry(1, input_tokens=999_999))  # a retried log of the same request
    assert store.record_feedback("req-2", "up", "great")
    assert store.record_feedback("req-3", "down", None)
    assert not store.record_feedback("req-unknown", "up", None)
    return store


def test_stats_match_the_logged_requests(store: Store) -> None:
    # WHEN the last 24 hours are summarised
    stats = store.query_stats(NOW - timedelta(hours=24))
    # THEN the totals are those of requests 1..9
    assert stats["queries"] == 9
    assert stats["input_tokens"] == 9 * 1000
    assert stats["cached_input_tokens"] == 9 * 200
    assert stats["cost_usd"] == pytest.approx(8 * 0.0002)
    assert stats["unpriced"] == 1
    assert stats["abstention_rate"] == pytest.approx(1 / 9)
    assert stats["review_rate"] == pytest.approx(1 / 9)
    assert (stats["rated_up"], stats["rated_down"]) == (1, 1)
    # p50 of totals 110..990 is the 5th value; p95 sits at rank 0.95 x 8 = 7.6 (0-based)
    assert stats["latency_ms"]["total"]["p50"] == pytest.approx(550.0)
    assert stats["latency_ms"]["total"]["p95"] == pytest.approx(880 + 0.6 * 110)
    by_model = {(r["provider"], r["model"]): r for r in stats["by_model"]}
    assert by_model["openai", "gpt-4o-mini"]["queries"] == 8
    assert by_model["openai", "gpt-4o-mini"]["cost_usd"] == pytest.approx(8 * 0.0002)
    assert by_model["sagemaker", "llama"]["cost_usd"] is None
    assert {r["profile"]: r["queries"] for r in stats["by_profile"]} == {
        "critical": 1,
        "simple": 8,
    }


def test_the_report_shows_the_same_figures(store: Store) -> None:
    report = run_stats(store, parse_since("24h"))
    assert "queries    9    abstained 11.1%" in report
    assert "cost       $0.001600  (+1 queries with unpriced models)" in report
    assert "feedback   1 up, 1 down" in report
    total_line = next(line for line in report.splitlines() if line.strip().startswith("total"))
    assert total_line.split()[1:] == ["550.0", "946.0"]
    model_line = next(line for line in report.splitlines() if "openai:gpt-4o-mini" in line)
    assert model_line.split()[1:3] == ["8", "8,000"]
    assert "sagemaker:llama" in report and "n/a (+1 unpriced)" in report


def test_an_empty_window_says_so(store: Store) -> None:
    since = NOW - timedelta(days=400)
    report = render_stats(store.query_stats(NOW + timedelta(days=1)), since, NOW)
    assert "no queries logged" in report


def test_the_plot_is_a_valid_png(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "stats.png"
    run_stats(store, parse_since("3d"), plot=path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    width, height = struct.unpack(">II", data[16:24])
    assert kind == b"IHDR" and length == 13 and width > 500 and height > 400
    assert struct.unpack(">I", data[29:33])[0] == zlib.crc32(data[12:29])  # IHDR's CRC
    assert data.rstrip(b"\x00")[-8:-4] == b"IEND"


def test_retention_purges_old_rows(store: Store) -> None:
    store.log_query(_entry(99, request_id="ancient", created_at=NOW - timedelta(days=90)))
    assert store.purge_query_log(30) >= 1
    assert all(r["request_id"] != "ancient" for r in store.query_log(NOW - timedelta(days=365)))


@pytest.mark.parametrize("text", ["", "24", "h", "-1h", "1y"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_since(text)


def test_refused_and_failed_questions_are_counted_apart() -> None:
    # GIVEN a window with two answered questions and three refused or failed ones
    stats = {
        "queries": 2, "abstention_rate": 0.5, "review_rate": 0.0, "fallback_rate": 0.0,
        "input_tokens": 10, "cached_input_tokens": 0, "output_tokens": 4,
        "embedding_tokens": 2, "cost_usd": 0.0, "unpriced": 0, "rated_up": 0,
        "rated_down": 0, "errors": 3, "latency_ms": {}, "by_model": [], "by_profile": [],
    }  # fmt: skip
    # WHEN the report is rendered, THEN the refused ones are named beside the answered ones
    report = render_stats(stats, NOW - timedelta(days=1), NOW)
    assert "queries    2    abstained 50.0%" in report and "refused or failed 3" in report
    # AND a window of refused questions only says so, not that nothing was logged
    only = render_stats({**stats, "queries": 0}, NOW - timedelta(days=1), NOW)
    assert "no queries answered in this window    refused or failed 3" in only
