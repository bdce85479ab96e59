"""Every query and every ingested object emits one EMF document matching the response
(or the document's record); the query log holds the same figures; feedback is stored."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws
from ragline.config import Settings
from ragline.ingest import Ingestor
from ragline.store import get_store

from tests.support.emf import check_emf, dimension_sets, emf_documents, value
from tests.support.openai_server import ChatUsage, OpenAICompatibleServer

GUIDE = b"""# Office guide

## Opening hours
The office opens at 8 and closes at 18 on weekdays.

## Parking
Staff park for free in the north garage after registering their plate.
"""


# These tests read the EMF documents the code prints.
pytestmark = pytest.mark.usefixtures("emf_on")


@pytest.fixture(scope="module")
def seeded(database_url: str) -> str:
    Ingestor.from_settings(Settings(database_url=database_url)).ingest_bytes(
        "s3://docs/guide.md", GUIDE
    )
    get_store.cache_clear()
    return database_url


@pytest.fixture
def server() -> Iterator[OpenAICompatibleServer]:
    usage = ChatUsage(prompt_tokens=1200, completion_tokens=80, cached_tokens=1024)
    with OpenAICompatibleServer(reply="The office opens at 8 [1].", usage=usage) as running:
        yield running


def _post(api: ModuleType, event: dict[str, Any], context: Any, path: str, body: Any) -> Any:
    request = copy.deepcopy(event)
    request.update(path=path, httpMethod="POST")
    request["requestContext"]["requestId"] = body.get("_id", "req-" + path.strip("/"))
    request["body"] = json.dumps({k: v for k, v in body.items() if k != "_id"})
    response = api.lambda_handler(request, context)
    return response["statusCode"], json.loads(response["body"])


def test_a_query_emits_one_document_equal_to_its_response(
    seeded: str,
    server: OpenAICompatibleServer,
    cold_start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the query Lambda answering with gpt-4o-mini through an OpenAI-compatible server
    api = cold_start(
        "query",
        RAGLINE_DATABASE_URL=seeded,
        RAGLINE_LLM="openai:gpt-4o-mini",
        OPENAI_BASE_URL=server.base_url,
        OPENAI_API_KEY="test",
        RAGLINE_LOG_QUESTIONS="true",
        POWERTOOLS_METRICS_NAMESPACE="RaglineTest",
    )
    capsys.readouterr()

    # WHEN a question is posted
    status, body = _post(
        api,
        event("api_query"),
        lambda_context,
        "/query",
        {"question": "When does the office open?", "_id": "req-emf-1"},
    )

    # THEN exactly one EMF document is printed, valid, and its figures are the response's
    assert status == 200, body
    documents = emf_documents(capsys.readouterr().out)
    assert len(documents) == 1
    doc = documents[0]
    check_emf(doc)
    assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "RaglineTest"
    assert dimension_sets(doc) == [
        ["service"],
        ["service", "Provider", "Model", "Prompt", "Profile"],
        ["service", "Tenant"],
    ]
    # the tenant is the caller's, as the authorizer named it in the event
    assert doc["Tenant"] == event("api_query")["requestContext"]["authorizer"]["tenant"]
    assert (doc["Provider"], doc["Model"], doc["Prompt"], doc["Profile"]) == (
        "openai",
        "gpt-4o-mini",
        "answer@v2",
        body["profile"],
    )
    usage, latency = body["usage"], body["latency_ms"]
    assert (usage["input_tokens"], usage["output_tokens"], usage["cached_input_tokens"]) == (
        1200,
        80,
        1024,
    )
    # cost by hand: 176 input at $0.15, 1024 cached at $0.075, 80 output at $0.60 per million,
    # plus the question's hash embedding, which is free
    assert usage["cost_usd"] == pytest.approx((176 * 0.15 + 1024 * 0.075 + 80 * 0.60) / 1e6)
    for metric, expected in {
        "InputTokens": usage["input_tokens"],
        "OutputTokens": usage["output_tokens"],
        "CachedInputTokens": usage["cached_input_tokens"],
        "EmbeddingTokens": usage["embedding_tokens"],
        "CostUSD": usage["cost_usd"],
        "RetrieveLatency": latency["retrieve"],
        "GenerateLatency": latency["generate"],
        "TotalLatency": latency["total"],
        "Abstained": int(body["abstained"]),
        "NeedsReview": int(body["needs_review"]),
        "Fallback": int(body["fallback"]),
    }.items():
        assert value(doc, metric) == pytest.approx(expected), metric
    assert value(doc, "ChunksRetrieved") >= len(body["citations"]) >= 1
    assert 0 < value(doc, "TopScore") <= 1

    # AND the query log row holds the same figures, with the question (allowed here)
    store = api.answerer.store
    (row,) = [
        r
        for r in store.query_log(datetime.now(UTC) - timedelta(hours=1))
        if r["request_id"] == "req-emf-1"
    ]
    assert (row["input_tokens"], row["cached_input_tokens"], row["cost_usd"]) == (
        1200,
        1024,
        pytest.approx(usage["cost_usd"]),
    )
    assert row["total_ms"] == pytest.approx(latency["total"])
    assert row["sources"] == ["s3://docs/guide.md"]
    assert row["question"] == "When does the office open?"
    assert row["prompt"] == "answer@v2" and row["abstained"] is False

    # AND feedback on it is stored and counted
    capsys.readouterr()
    status, ack = _post(
        api,
        event("api_query"),
        lambda_context,
        "/feedback",
        {"request_id": "req-emf-1", "rating": "down", "comment": "too short"},
    )
    # (a thumbs-down also queues the answer for review: ragline.reviews, its own documents)
    assert (status, ack) == (
        200,
        {"request_id": "req-emf-1", "rating": "down", "review_id": ack.get("review_id")},
    )
    assert ack["review_id"]
    (feedback_doc,) = [d for d in emf_documents(capsys.readouterr().out) if "Feedback" in d]
    check_emf(feedback_doc)
    assert value(feedback_doc, "Feedback") == 1 and feedback_doc["Rating"] == "down"
    rated = next(
        r
        for r in store.query_log(datetime.now(UTC) - timedelta(hours=1))
        if r["request_id"] == "req-emf-1"
    )
    assert (rated["rating"], rated["comment"]) == ("down", "too short")


def test_feedback_on_an_unknown_request_is_404(
    seeded: str,
    cold_start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
) -> None:
    api = cold_start("query", RAGLINE_DATABASE_URL=seeded)
    status, body = _post(
        api, event("api_query"), lambda_context, "/feedback", {"request_id": "nope", "rating": "up"}
    )
    assert status == 404 and "no logged query" in body["message"]
    status, body = _post(
        api, event("api_query"), lambda_context, "/feedback", {"request_id": "x", "rating": "meh"}
    )
    assert status == 400 and "rating" in body["message"]


def test_questions_are_not_logged_unless_allowed(
    seeded: str,
    cold_start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
) -> None:
    api = cold_start("query", RAGLINE_DATABASE_URL=seeded)
    status, _body = _post(
        api,
        event("api_query"),
        lambda_context,
        "/query",
        {"question": "Where do staff park?", "_id": "req-private"},
    )
    assert status == 200
    rows = api.answerer.store.query_log(datetime.now(UTC) - timedelta(hours=1))
    (row,) = [r for r in rows if r["request_id"] == "req-private"]
    assert row["question"] is None and row["cost_usd"] == 0.0


def test_each_ingested_object_emits_one_document_matching_its_record(
    seeded: str,
    cold_start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="ragline-documents")
        s3.put_object(Bucket="ragline-documents", Key="a.md", Body=GUIDE)
        s3.put_object(Bucket="ragline-documents", Key="b.html", Body=b"\x00\x01 binary")
        ingest = cold_start("ingest", RAGLINE_DATABASE_URL=seeded)
        template = event("sqs_s3_object_created")["Records"][0]
        records = []
        for n, key in enumerate(["a.md", "b.html", "a.md"]):
            record = copy.deepcopy(template)
            body = json.loads(record["body"])
            body["Records"][0]["s3"]["object"]["key"] = key
            record["messageId"], record["body"] = f"m{n}", json.dumps(body)
            records.append(record)
        test_event = event("sqs_s3_test_event")["Records"][0]
        capsys.readouterr()

        # WHEN a batch brings a new object, a corrupt one, the first again, and a test event
        response = ingest.lambda_handler({"Records": [*records, test_event]}, lambda_context)

    # THEN one document per object event: ingested, failed, unchanged (skipped); none
    # for the test event; chunk counts match the stored document
    assert response["batchItemFailures"] == [{"itemIdentifier": "m1"}]
    documents = emf_documents(capsys.readouterr().out)
    assert len(documents) == 3
    for doc in documents:
        check_emf(doc)
        assert dimension_sets(doc) == [["service"]]
    ingested, failed, unchanged = documents
    record = ingest.ingestor.store.find_document("s3://ragline-documents/a.md")
    assert value(ingested, "DocumentsIngested") == 1
    assert value(ingested, "ChunksWritten") == record.chunk_count == 2
    assert value(ingested, "EmbeddingTokens") > 0 and value(ingested, "EmbeddingCostUSD") == 0
    assert value(ingested, "IngestLatency") > 0
    assert value(failed, "DocumentsFailed") == 1 and value(failed, "ChunksWritten") == 0
    assert value(unchanged, "DocumentsSkipped") == 1 and value(unchanged, "ChunksWritten") == 0
