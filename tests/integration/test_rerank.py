"""Reranking through the query Lambda: a /rerank server on loopback reorders the search's
candidates; its latency and cost reach the response and the EMF document; a failing
reranker leaves the search's order and a 200."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ragline.config import Settings
from ragline.ingest import Ingestor
from ragline.store import get_store

from tests.support.emf import check_emf, emf_documents, value
from tests.support.rerank_server import RerankServer, Scripted, overlap_score

HANDBOOK = b"""# Handbook

## Vacation
Employees get 25 vacation days each year.

## Carry-over
Unused vacation days expire on 31 March of the following year.

## Sick leave
Sick leave needs a doctor's note after three consecutive days.

## Meals
Meals on business trips are reimbursed up to 60 euros per day.

## Parking
Staff park for free in the north garage after registering their plate.
"""
QUESTION = "When do unused vacation days expire?"
# USD per 1,000 queries for the test server's model: the price table names it, so it is priced.
PRICE_PER_1K = 1.5


# These tests read the EMF documents the code prints.
pytestmark = pytest.mark.usefixtures("emf_on")


@pytest.fixture(scope="module")
def seeded(database_url: str) -> str:
    Ingestor.from_settings(Settings(database_url=database_url)).ingest_bytes(
        "s3://docs/handbook.md", HANDBOOK
    )
    get_store.cache_clear()
    return database_url


@pytest.fixture
def server() -> Iterator[RerankServer]:
    with RerankServer() as running:
        yield running


@pytest.fixture
def prices(tmp_path: Path) -> Path:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"rerankers": {"http:bge-reranker-base": PRICE_PER_1K}}))
    return path


@pytest.fixture
def start(
    seeded: str, server: RerankServer, prices: Path, cold_start: Callable[..., ModuleType]
) -> Callable[..., ModuleType]:
    """The query Lambda, reranking its best 3 candidates with the loopback server."""

    def cold(**environment: str) -> ModuleType:
        return cold_start(
            "query",
            RAGLINE_DATABASE_URL=seeded,
            RAGLINE_PRICES_FILE=str(prices),
            **{"RAGLINE_RERANKER": "http:bge-reranker-base",
               "RAGLINE_RERANKER_URL": server.base_url, "RAGLINE_RERANK_DEPTH": "3",
               "RAGLINE_RERANK_TIMEOUT_SECONDS": "2", **environment},
        )  # fmt: skip

    return cold


def _post(api: ModuleType, event: dict[str, Any], context: Any, path: str, body: Any) -> Any:
    request = copy.deepcopy(event)
    request.update(path=path, httpMethod="POST")
    request["body"] = json.dumps(body)
    response = api.lambda_handler(request, context)
    return response["statusCode"], json.loads(response["body"])


def _passage(item: dict[str, Any]) -> str:
    """A result as the reranker reads it: its heading path, then its text."""
    heading = " — ".join(p for p in (item["title"], item["section"]) if p)
    return f"{heading}\n{item['text']}"


def test_retrieve_returns_the_rerankers_order_of_the_search_candidates(
    start: Callable[..., ModuleType],
    server: RerankServer,
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
) -> None:
    # GIVEN the search's own best 3 (no reranker)
    plain = start(RAGLINE_RERANKER="none")
    request = {"query": QUESTION, "top_k": 3}
    _, searched = _post(plain, event("api_query"), lambda_context, "/retrieve", request)
    assert searched["reranker"] is None and not server.requests
    # WHEN the same query is retrieved with the reranker, for the best 2
    api = start()
    status, body = _post(
        api, event("api_query"), lambda_context, "/retrieve", {**request, "top_k": 2}
    )
    # THEN the reranker read exactly the search's best 3, in the search's order
    assert status == 200, body
    (sent,) = server.requests
    assert sent.body["documents"] == [_passage(item) for item in searched["results"]]
    # AND the 2 results are its best two, scored by it, their cosine similarity kept
    results = body["results"]
    expected = sorted(
        searched["results"], key=lambda item: -overlap_score(QUESTION, _passage(item))
    )[:2]
    assert [r["chunk_id"] for r in results] == [item["chunk_id"] for item in expected]
    assert results[0]["score"] == overlap_score(QUESTION, _passage(results[0]))
    similarity = {item["chunk_id"]: item["similarity"] for item in searched["results"]}
    assert all(r["similarity"] == similarity[r["chunk_id"]] for r in results)
    assert "Unused vacation days expire" in results[0]["text"]
    # AND the response names the reranker, its time and its cost (one query at $1.5 per 1k)
    assert body["reranker"] == "http:bge-reranker-base" and body["rerank_ms"] > 0
    assert body["rerank_cost_usd"] == pytest.approx(PRICE_PER_1K / 1000)


def test_a_query_reports_rerank_latency_and_cost_in_response_and_emf(
    start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the query Lambda with the reranker (extractive model, hash embeddings: free)
    api = start()
    capsys.readouterr()
    # WHEN a question is posted
    status, body = _post(api, event("api_query"), lambda_context, "/query", {"question": QUESTION})
    # THEN the answer comes from the passage the reranker put first
    assert status == 200, body
    assert "31 March" in body["answer"] and body["reranker"] == "http:bge-reranker-base"
    # AND the reranker's time is part of retrieval, and its cost all of this answer's cost
    latency, usage = body["latency_ms"], body["usage"]
    assert 0 < latency["rerank"] <= latency["retrieve"]
    assert usage["rerank_cost_usd"] == pytest.approx(PRICE_PER_1K / 1000)
    assert usage["cost_usd"] == pytest.approx(usage["rerank_cost_usd"])
    # AND the EMF document carries the same figures, the cost folded into CostUSD
    (document,) = emf_documents(capsys.readouterr().out)
    check_emf(document)
    assert value(document, "RerankLatency") == latency["rerank"]
    assert value(document, "RerankCostUSD") == pytest.approx(PRICE_PER_1K / 1000)
    assert value(document, "CostUSD") == pytest.approx(usage["cost_usd"])
    assert value(document, "RerankFailed") == 0


def test_a_failing_reranker_answers_in_the_search_order_with_a_warning(
    start: Callable[..., ModuleType],
    server: RerankServer,
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a reranker that answers 503, then nonsense (its one retry)
    api = start()
    server.script(Scripted(status=503), Scripted(body='{"results": [{"index": 9}]}'))
    capsys.readouterr()
    # WHEN a question is posted
    with caplog.at_level(logging.WARNING, logger="ragline.retrieval"):
        status, body = _post(
            api, event("api_query"), lambda_context, "/query", {"question": QUESTION}
        )
    # THEN it is still answered, from the search's order, and says no reranker ordered it
    assert status == 200, body
    assert body["citations"] and body["reranker"] is None
    assert body["usage"]["rerank_cost_usd"] == 0 and body["usage"]["cost_usd"] == 0
    assert len(server.requests) == 2
    # AND a warning names the reranker and the failure, and RerankFailed counts it
    assert "reranker http:bge-reranker-base failed" in caplog.text
    (document,) = emf_documents(capsys.readouterr().out)
    assert value(document, "RerankFailed") == 1


def test_without_a_reranker_the_response_and_emf_say_nothing_of_one(
    start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = start(RAGLINE_RERANKER="none")
    capsys.readouterr()
    status, body = _post(api, event("api_query"), lambda_context, "/query", {"question": QUESTION})
    assert status == 200 and body["reranker"] is None and body["latency_ms"]["rerank"] == 0
    (document,) = emf_documents(capsys.readouterr().out)
    assert not {"RerankLatency", "RerankCostUSD", "RerankFailed"} & set(document)
