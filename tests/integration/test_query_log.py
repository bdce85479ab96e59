"""The query log keeps refused and failed questions with their status, and purges old
rows from a process's first query on; the query Lambda writes it through psycopg and
through the Data API driver (tests/support/data_api.py)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from ragline.config import Settings
from ragline.ingest import Ingestor
from ragline.outcomes import QueryRecord
from ragline.store import Store, get_store, query_log
from ragline.store import facade as store_facade

from tests.support.openai_server import CHAT, OpenAICompatibleServer, Scripted

NOW = datetime.now(UTC)
LONG_AGO = NOW - timedelta(days=400)
YESTERDAY = NOW - timedelta(days=1)  # recent enough to keep, out of the stats' hour


def entry(request_id: str, created_at: datetime | None = None) -> QueryRecord:
    return QueryRecord(
        request_id=request_id, collection="default", profile="simple", provider="extractive",
        model="extractive", prompt="answer@v2", input_tokens=1, output_tokens=1,
        cached_input_tokens=0, embedding_tokens=1, cost_usd=0.0, cost_estimated=False,
        retrieve_ms=1.0, generate_ms=1.0, total_ms=2.0, chunks_retrieved=1, top_score=0.5,
        abstained=False, needs_review=False, fallback=False, sources=[], created_at=created_at,
    )  # fmt: skip


def logged(store: Store, request_id: str) -> dict[str, Any] | None:
    rows = store.query_log(LONG_AGO - timedelta(days=1))
    return next((r for r in rows if r["request_id"] == request_id), None)


pytestmark = pytest.mark.both_drivers


@pytest.fixture(scope="module")
def seeded(database_url: str) -> str:
    Ingestor.from_settings(Settings(database_url=database_url)).ingest_bytes(
        "s3://docs/leave.md", b"# Leave\n\nEmployees get 25 vacation days each year."
    )
    get_store.cache_clear()
    return database_url


# --- retention --------------------------------------------------------------------------------


def test_the_first_query_of_a_young_process_purges_then_at_most_hourly(
    seeded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a host up for five seconds (time.monotonic() is its uptime on Linux)
    clock = [5.0]
    monkeypatch.setattr(store_facade.time, "monotonic", lambda: clock[0])
    settings = Settings(database_url=seeded, query_log_retention_days=30)
    store = Store(settings)
    # a row past retention, written straight to the table (no purge on the way)
    query_log.log_query(store.connection(), entry("ancient-1", LONG_AGO))
    assert logged(store, "ancient-1") is not None
    # WHEN a new process logs its first query
    store.log_query(entry("first", YESTERDAY))
    # THEN rows past the retention period are gone
    assert logged(store, "ancient-1") is None and logged(store, "first") is not None
    # AND within the hour the next queries do not purge again
    clock[0] += 3599
    store.log_query(entry("ancient-2", LONG_AGO))
    store.log_query(entry("second", YESTERDAY))
    assert logged(store, "ancient-2") is not None
    # AND once the hour is over, the next one does
    clock[0] += 1
    store.log_query(entry("third", YESTERDAY))
    assert logged(store, "ancient-2") is None


# --- refused and failed questions -------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer(reply="25 days [1].") as running:
        yield running


@pytest.fixture
def ask(
    seeded: str,
    database_environment: dict[str, str],
    server: OpenAICompatibleServer,
    cold_start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
) -> Callable[..., int]:
    api = cold_start(
        "query",
        **database_environment,
        RAGLINE_LLM="openai:gpt-4o-mini",
        OPENAI_BASE_URL=server.base_url,
        OPENAI_API_KEY="test",
        RAGLINE_LLM_MAX_RETRIES="0",
        RAGLINE_MAX_BODY_BYTES="2048",
    )

    def send(request_id: str, body: Any, path: str = "/query") -> int:
        request = copy.deepcopy(event("api_query"))
        request["path"] = path
        request["requestContext"]["requestId"] = request_id
        request["body"] = body if isinstance(body, str) else json.dumps(body)
        status: int = api.lambda_handler(request, lambda_context)["statusCode"]
        return status

    return send


def test_refused_and_failed_questions_are_logged_with_their_status(
    seeded: str, ask: Callable[..., int], server: OpenAICompatibleServer
) -> None:
    # GIVEN questions the API refuses, one no model can answer, and one answered
    statuses = {
        "empty": ask("empty", {"question": "   "}),
        "unknown-profile": ask("unknown-profile", {"question": "days?", "profile": "nope"}),
        "not-json": ask("not-json", "{question"),
        "too-large": ask("too-large", {"question": "x" * 4000}),
        "bad-collection": ask("bad-collection", {"question": "days?", "collection": "a\u0000b"}),
    }
    server.script(CHAT, Scripted(status=500))
    statuses["no-model"] = ask("no-model", {"question": "How many vacation days?"})
    statuses["answered"] = ask("answered", {"question": "How many vacation days?"})
    # AND a refused request to another route
    statuses["retrieve"] = ask("retrieve", {"query": ""}, path="/retrieve")
    assert statuses == {
        "empty": 400, "unknown-profile": 400, "not-json": 400, "too-large": 413,
        "bad-collection": 400, "no-model": 503, "answered": 200, "retrieve": 400,
    }  # fmt: skip
    # THEN each question has its row with the status it got
    store = get_store(Settings(database_url=seeded))
    rows = {r["request_id"]: r for r in store.query_log(NOW - timedelta(hours=1))}
    assert {k: rows[k]["status_code"] for k in statuses if k != "retrieve"} == {
        k: v for k, v in statuses.items() if k != "retrieve"
    }
    # AND a refused question keeps what it asked for, as far as it can be a name
    assert (rows["unknown-profile"]["profile"], rows["unknown-profile"]["collection"]) == (
        "nope",
        "default",
    )
    assert rows["bad-collection"]["collection"] == ""
    assert rows["no-model"]["provider"] == "" and rows["no-model"]["cost_usd"] is None
    assert rows["answered"]["provider"] == "openai"
    # AND only questions are logged, not other routes
    assert "retrieve" not in rows
    # AND the stats describe the answered question and count the others as errors
    stats = store.query_stats(NOW - timedelta(hours=1))
    assert (stats["queries"], stats["errors"]) == (1, 6)
    assert [row["provider"] for row in stats["by_model"]] == ["openai"]
