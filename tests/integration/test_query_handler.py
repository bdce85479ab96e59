"""The query Lambda with recorded API Gateway events against embedded PostgreSQL, through
psycopg and through the Data API driver (tests/support/data_api.py)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from ragline.config import Settings
from ragline.ingest import Ingestor
from ragline.store import get_store

HANDBOOK = {
    "s3://docs/handbook/leave.md": b"""# Leave policy

## Vacation
Employees get 25 vacation days each year. Unused vacation days expire on 31 March.

## Sick leave
Sick leave needs a doctor's note after three consecutive days.
""",
    "s3://docs/handbook/expenses.md": b"""# Expenses

## Meals
Meals on business trips are reimbursed up to 60 euros per day with receipts.

## Travel
Book trains for trips under four hours; flights need a manager's approval.
""",
}


pytestmark = pytest.mark.both_drivers


@pytest.fixture(scope="module")
def seeded(database_url: str) -> str:
    settings = Settings(database_url=database_url)
    ingestor = Ingestor.from_settings(settings)
    for source, data in HANDBOOK.items():
        ingestor.ingest_bytes(source, data)
    # A collection of the default tenant with nothing in it (a name no tenant owns is 404).
    embedder = ingestor.embedder
    ingestor.store.create_collection("empty", "default", embedder.name, embedder.dimensions)
    get_store.cache_clear()
    return database_url


@pytest.fixture
def api(
    seeded: str, database_environment: dict[str, str], cold_start: Callable[..., ModuleType]
) -> ModuleType:
    return cold_start("query", **database_environment, RAGLINE_MAX_BODY_BYTES="4096")


@pytest.fixture
def call(
    api: ModuleType, event: Callable[[str], dict[str, Any]], lambda_context: Any
) -> Callable[..., tuple[int, Any]]:
    """Send one request through the handler as API Gateway would; return status and JSON."""

    def send(
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        raw_body: str | None = None,
    ) -> tuple[int, Any]:
        request = copy.deepcopy(event("api_query"))
        request.update(
            httpMethod=method,
            path=path,
            queryStringParameters=query,
            multiValueQueryStringParameters={k: [v] for k, v in (query or {}).items()} or None,
        )
        request["body"] = (
            raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
        )
        response = api.lambda_handler(request, lambda_context)
        return response["statusCode"], json.loads(response["body"])

    return send


def test_query_answers_with_citations_usage_and_latency(call: Callable[..., Any]) -> None:
    # WHEN a question the handbook answers is posted
    status, body = call("POST", "/query", {"question": "How many vacation days do employees get?"})
    # THEN the answer quotes the policy and cites the leave document
    assert status == 200
    assert "25 vacation days" in body["answer"]
    assert body["abstained"] is False
    assert body["citations"], body
    first = body["citations"][0]
    assert first["source"] == "s3://docs/handbook/leave.md"
    assert f"[{first['n']}]" in body["answer"]
    assert set(first) >= {"n", "document_id", "source", "title", "chunk_id", "score", "text"}
    assert body["model"] == {"provider": "extractive", "name": "extractive", "prompt": "answer@v2"}
    assert body["usage"]["embedding_tokens"] > 0 and body["usage"]["cost_usd"] == 0.0
    latency = body["latency_ms"]
    assert latency["total"] >= latency["retrieve"] >= 0 and latency["generate"] >= 0
    assert body["request_id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"


def test_query_abstains_honestly(call: Callable[..., Any]) -> None:
    status, body = call("POST", "/query", {"question": "Which Kubernetes version runs production?"})
    assert status == 200
    assert body["abstained"] is True
    assert body["answer"] == "The documents do not answer this."
    assert body["citations"] == []


@pytest.mark.parametrize(("path", "field"), [("/query", "question"), ("/retrieve", "query")])
def test_a_collection_nothing_was_ingested_into_is_a_404_naming_it(
    call: Callable[..., Any], path: str, field: str
) -> None:
    # GIVEN a collection name nothing was ingested into (a typo of the default, say)
    # WHEN it is searched
    status, body = call("POST", path, {field: "vacation days?", "collection": "defualt"})
    # THEN the caller learns it does not exist, rather than reading an abstention
    assert status == 404, body
    assert "collection 'defualt' does not exist" in body["message"]
    # AND the default collection, named explicitly, is served as usual
    default = Settings().default_collection
    status, body = call("POST", path, {field: "vacation days?", "collection": default})
    assert status == 200, body


@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
def test_retrieve_modes_find_the_expense_rules(call: Callable[..., Any], mode: str) -> None:
    status, body = call(
        "POST", "/retrieve", {"query": "meal reimbursement receipts", "mode": mode, "top_k": 2}
    )
    assert status == 200
    results = body["results"]
    assert 1 <= len(results) <= 2
    assert results[0]["source"] == "s3://docs/handbook/expenses.md"
    assert results[0]["section"] == "Expenses > Meals"
    assert set(results[0]) >= {"chunk_id", "document_id", "source", "title", "text", "score"}


@pytest.mark.parametrize(("path", "field"), [("/retrieve", "query"), ("/query", "question")])
def test_a_request_may_set_its_own_ef_search(
    call: Callable[..., Any], path: str, field: str
) -> None:
    # GIVEN a request asking for the largest HNSW candidate list
    payload = {field: "meal reimbursement receipts", "ef_search": 1000}
    # WHEN it is served THEN it is accepted and finds the expense rules
    status, body = call("POST", path, payload)
    assert status == 200
    found = body["results"] if path == "/retrieve" else body["citations"]
    assert found[0]["source"] == "s3://docs/handbook/expenses.md"


def test_documents_are_listed_in_pages_and_fetched(call: Callable[..., Any]) -> None:
    status, first = call("GET", "/documents", query={"limit": "1"})
    assert status == 200 and len(first["documents"]) == 1 and first["next_cursor"]
    status, second = call("GET", "/documents", query={"limit": "1", "cursor": first["next_cursor"]})
    assert status == 200 and len(second["documents"]) == 1 and second["next_cursor"] is None
    sources = {first["documents"][0]["source"], second["documents"][0]["source"]}
    assert sources == set(HANDBOOK)
    doc = second["documents"][0]
    status, fetched = call("GET", f"/documents/{doc['id']}")
    assert status == 200
    assert fetched["status"] == "ingested" and fetched["error"] is None
    assert fetched["chunk_count"] == 2


def test_delete_document_removes_it_from_retrieval(
    call: Callable[..., Any], database_url: str
) -> None:
    ingestor = Ingestor.from_settings(Settings(database_url=database_url))
    result = ingestor.ingest_bytes("s3://docs/tmp.md", b"# Temp\n\nThe zebra protocol is blue.")
    # GIVEN the document is retrievable
    status, body = call("POST", "/retrieve", {"query": "zebra protocol", "mode": "keyword"})
    assert status == 200
    assert [r["document_id"] for r in body["results"]] == [result.document_id]
    # WHEN it is deleted THEN retrieval no longer finds it
    status, body = call("DELETE", f"/documents/{result.document_id}")
    assert (status, body) == (200, {"deleted": result.document_id})
    status, body = call("POST", "/retrieve", {"query": "zebra protocol", "mode": "keyword"})
    assert status == 200 and body["results"] == []
    status, body = call("DELETE", f"/documents/{result.document_id}")
    assert status == 404 and "no document" in body["message"]


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "message"),
    [
        ("POST", "/query", {"question": ""}, 400, "question"),
        ("POST", "/query", {"question": "   "}, 400, "question must not be empty"),
        ("POST", "/query", {}, 400, "question: is required"),
        ("POST", "/query", {"question": "x", "top_k": 0}, 400, "top_k"),
        ("POST", "/query", {"question": "x", "top_k": 51}, 400, "top_k must be at most 50"),
        ("POST", "/query", {"question": "x", "surprise": 1}, 400, "surprise"),
        ("POST", "/retrieve", {"query": "x", "mode": "magic"}, 400, "mode"),
        ("POST", "/retrieve", {"query": "x", "ef_search": 9}, 400, "ef_search"),
        ("POST", "/retrieve", {"query": "x", "ef_search": "lots"}, 400, "ef_search"),
        ("POST", "/query", {"question": "x", "ef_search": 1001}, 400, "ef_search"),
        ("GET", "/documents/not-a-uuid", None, 400, "not a UUID"),
        ("GET", "/documents/2b1f3c1e-0000-4000-8000-000000000000", None, 404, "no document"),
        ("GET", "/nowhere", None, 404, ""),
    ],
)
def test_bad_input_gets_a_readable_4xx(
    call: Callable[..., Any], method: str, path: str, payload: Any, status: int, message: str
) -> None:
    got_status, body = call(method, path, payload)
    assert got_status == status
    assert message in body.get("message", "")
    assert "Traceback" not in json.dumps(body)


def test_invalid_json_and_oversized_bodies(call: Callable[..., Any]) -> None:
    status, body = call("POST", "/query", raw_body="{not json")
    assert status == 400 and "not valid JSON" in body["message"]
    status, body = call("POST", "/query", {"question": "x" * 5000})
    assert status == 413 and "limit is 4096" in body["message"]


def test_health_and_openapi(call: Callable[..., Any]) -> None:
    status, body = call("GET", "/health")
    assert status == 200 and body["status"] == "ok"
    assert body["database"]["pgvector"].startswith("0.8")
    status, spec = call("GET", "/swagger", query={"format": "json"})
    assert status == 200
    assert {"/query", "/retrieve", "/documents", "/health"} <= set(spec["paths"])


def test_a_json_body_sent_as_form_data_is_read_as_json(
    api: Any, event: Callable[[str], dict[str, Any]], lambda_context: Any
) -> None:
    # GIVEN a request as `curl -d '{...}'` sends it, labelled as a form
    request = copy.deepcopy(event("api_query"))
    form = "application/x-www-form-urlencoded"
    request["headers"]["Content-Type"] = form
    request["multiValueHeaders"]["Content-Type"] = [form]
    # WHEN it reaches the handler
    response = api.lambda_handler(request, lambda_context)
    # THEN the JSON body is read as such
    assert response["statusCode"] == 200, response["body"]
    assert "25 vacation days" in json.loads(response["body"])["answer"]


def test_a_session_carries_the_subject_into_a_follow_up(call: Callable[..., Any]) -> None:
    session = "5f0c1a2b-3d4e-4f60-8a1b-2c3d4e5f6a7b"
    # GIVEN a first question in a new session (kept in the database, through each driver)
    status, first = call(
        "POST", "/query", {"question": "How many vacation days do employees get?",
                           "session_id": session},
    )  # fmt: skip
    assert status == 200 and first["session_id"] == session
    assert first["rewritten_query"] is None
    # WHEN the follow-up names nothing of its subject
    status, body = call(
        "POST", "/query", {"question": "When do they expire?", "session_id": session}
    )
    # THEN it is searched for with the first question's subject and answered from it
    assert status == 200, body
    assert body["rewritten_query"] == "When do they expire? (vacation days employees)"
    assert body["rewrite"] == {"method": "fallback", "model": None, "prompt": None}
    assert body["citations"][0]["source"] == "s3://docs/handbook/leave.md"
    assert "31 March" in body["answer"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"question": "q?", "session_id": "not-a-uuid"}, "session_id: String should match"),
        ({"question": "q?", "history": [{"role": "system", "content": "x"}]}, "history.0.role"),
        ({"question": "q?", "history": [], "session_id": "5f0c1a2b3d4e4f608a1b2c3d4e5f6a7b"},
         "not both"),
    ],
)  # fmt: skip
def test_a_bad_conversation_is_a_readable_400(
    call: Callable[..., Any], body: dict[str, Any], message: str
) -> None:
    status, answer = call("POST", "/query", body)
    assert status == 400 and message in answer["message"], answer
