"""Bad input through the query Lambda: never a 5xx, never invalid JSON (issue 9, item 1).

NUL characters (which PostgreSQL text cannot hold), bodies that are not UTF-8 and queries
with no words each get a 400 with a readable message or a well-defined empty result,
through psycopg and through the Data API driver (tests/support/data_api.py).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from ragline.answer import Answerer
from ragline.answer.routing import Router
from ragline.config import Settings
from ragline.embeddings.hash import HashEmbedder
from ragline.ingest import Ingestor
from ragline.prompts import load_prompt
from ragline.retrieval import Retriever
from ragline.store import Store, get_store

from tests.support.api import proxy_request, strict_json
from tests.support.models import ScriptedModel

DOCUMENT = b"# Lighthouse\n\nThe Quillfeather lighthouse opens at 7:15 on Saturdays.\n"
NO_WORDS = "!!!"  # nothing a tokenizer keeps: the hash embedder's zero vector


pytestmark = pytest.mark.both_drivers


@pytest.fixture(scope="module")
def seeded(database_url: str) -> str:
    Ingestor.from_settings(Settings(database_url=database_url)).ingest_bytes(
        "s3://docs/lighthouse.md", DOCUMENT
    )
    get_store.cache_clear()
    return database_url


@pytest.fixture
def api(
    seeded: str, database_environment: dict[str, str], cold_start: Callable[..., ModuleType]
) -> ModuleType:
    return cold_start("query", **database_environment)


@pytest.fixture
def send(
    api: ModuleType, event: Callable[[str], dict[str, Any]], lambda_context: Any
) -> Callable[..., tuple[int, Any]]:
    """One request through the handler as API Gateway sends it; the status and strict JSON."""

    def call(method: str, path: str, body: Any = None, **request: Any) -> tuple[int, Any]:
        proxied = proxy_request(event("api_query"), method, path, body, **request)
        response = api.lambda_handler(proxied, lambda_context)
        return response["statusCode"], strict_json(response["body"])

    return call


NUL = "a\x00b"


@pytest.mark.parametrize(
    ("method", "path", "body", "query", "field"),
    [
        ("POST", "/query", {"question": NUL}, None, "question"),
        ("POST", "/retrieve", {"query": NUL, "mode": "hybrid"}, None, "query"),
        ("POST", "/retrieve", {"query": NUL, "mode": "keyword"}, None, "query"),
        ("POST", "/retrieve", {"query": NUL, "mode": "vector"}, None, "query"),
        ("POST", "/feedback", {"request_id": NUL, "rating": "up"}, None, "request_id"),
        ("POST", "/feedback", {"request_id": "r", "rating": "up", "comment": NUL}, None, "comment"),
        ("GET", "/documents", None, {"collection": "\x00"}, "collection"),
        ("GET", "/documents", None, {"cursor": "\x00"}, "cursor"),
        ("GET", "/documents/%00", None, None, "id"),
    ],
)
def test_a_nul_character_in_any_field_is_a_readable_400(
    send: Callable[..., tuple[int, Any]],
    method: str,
    path: str,
    body: Any,
    query: dict[str, str] | None,
    field: str,
) -> None:
    # GIVEN a request with a NUL character in one of its text fields
    # WHEN it is served
    status, answer = send(method, path, body, query=query)

    # THEN it is refused before the database sees it, naming the field
    assert status == 400, answer
    assert answer["message"].startswith(f"invalid request: {field}"), answer


def test_a_cursor_hiding_a_nul_character_is_an_invalid_cursor(
    send: Callable[..., tuple[int, Any]],
) -> None:
    # GIVEN a well-formed cursor whose decoded position holds a NUL character
    cursor = base64.urlsafe_b64encode(json.dumps({"after": NUL}).encode()).decode()
    # WHEN a listing is asked from it THEN it is refused as an invalid cursor
    assert send("GET", "/documents", query={"cursor": cursor}) == (
        400,
        {"message": "invalid cursor", "statusCode": 400},
    )


@pytest.mark.parametrize("path", ["/query", "/retrieve", "/feedback"])
def test_a_body_that_is_not_utf8_is_a_400(send: Callable[..., tuple[int, Any]], path: str) -> None:
    # GIVEN bytes that are not UTF-8 (`printf '\xff\xfe' | curl --data-binary @-`)
    # WHEN they are posted
    status, answer = send("POST", path, raw=b"\xff\xfe")
    # THEN the caller is told the body is not text
    assert status == 400
    assert "not UTF-8" in answer["message"]


def test_a_lone_surrogate_is_a_400(send: Callable[..., tuple[int, Any]]) -> None:
    # GIVEN a JSON escape no UTF-8 text can hold
    # WHEN it is asked THEN it is refused as text that is not Unicode
    status, answer = send("POST", "/query", {"question": "a\ud800b"})
    assert status == 400
    assert "question: is not valid Unicode text" in answer["message"]


@pytest.mark.parametrize("mode", ["vector", "hybrid", "keyword"])
def test_a_query_with_no_words_finds_nothing_in_valid_json(
    send: Callable[..., tuple[int, Any]], mode: str
) -> None:
    # GIVEN a query with nothing to embed or match
    # WHEN it is searched in any mode
    status, answer = send("POST", "/retrieve", {"query": NO_WORDS, "mode": mode})
    # THEN no passage is near it: an empty result, in JSON a strict client parses
    assert status == 200, answer
    assert answer["results"] == []


def test_a_zero_query_vector_never_reaches_cosine_distance(seeded: str) -> None:
    # GIVEN a retriever over the seeded collection, and a query that embeds as zeros
    settings = Settings(database_url=seeded)
    embedder = HashEmbedder()
    assert not embedder.embed_query(NO_WORDS).vectors[0].any()
    retriever = Retriever(Store(settings), embedder)

    # WHEN it is searched by vector and by hybrid search
    found = [
        retriever.search(NO_WORDS, collection="default", top_k=5, mode=mode).chunks
        for mode in ("vector", "hybrid")
    ]

    # THEN neither returns a chunk, so no NaN score exists to be sent
    assert found == [[], []]


def test_a_question_with_no_words_abstains_without_calling_the_model(seeded: str) -> None:
    # GIVEN an answerer whose model would answer anything it is sent
    settings = Settings(database_url=seeded)
    model = ScriptedModel("fake:obliging", default="Here is an answer [1].")
    router = Router.single(settings, model, load_prompt("answer@v1"))
    answerer = Answerer(settings, Store(settings), HashEmbedder(), router)

    # WHEN a question with no words is asked
    response = answerer.answer(NO_WORDS)

    # THEN it abstains and the model is never sent unrelated passages
    assert response.abstained and response.citations == []
    assert model.calls == 0


SURROGATE_FILTERS = [
    {"eq": {"key": "a", "value": "\ud800"}},
    {"ne": {"key": "a", "value": "x\udfffy"}},
    {"in": {"key": "a", "value": ["ok", "\ud800"]}},
    {"and": [{"exists": {"key": "a"}}, {"nin": {"key": "a", "value": ["\udc00"]}}]},
]


@pytest.mark.parametrize("path", ["/query", "/retrieve"])
@pytest.mark.parametrize("where", SURROGATE_FILTERS)
def test_a_lone_surrogate_in_a_filter_value_is_a_400(
    send: Callable[..., tuple[int, Any]], path: str, where: dict[str, Any]
) -> None:
    # GIVEN a filter value holding a lone surrogate (valid JSON, not UTF-8 text)
    field = "question" if path == "/query" else "query"
    # WHEN it is sent
    status, answer = send("POST", path, {field: "k", "filter": where})
    # THEN it is refused as text that is not Unicode, naming the value
    assert status == 400, answer
    assert "is not valid Unicode text" in answer["message"]
    assert "filter." in answer["message"]


@pytest.mark.parametrize("path", ["/query", "/retrieve"])
@pytest.mark.parametrize(
    "where",
    [
        {"\ud800": {"key": "a", "value": 1}},
        {"eq": {"key": "a", "value": 1, "\ud800": 2}},
        {"and": [{"x\udbff": {}}]},
    ],
)
def test_a_lone_surrogate_as_a_name_in_a_filter_is_a_400(
    send: Callable[..., tuple[int, Any]], path: str, where: dict[str, Any]
) -> None:
    # GIVEN an operator or field name holding a lone surrogate
    field = "question" if path == "/query" else "query"
    # WHEN it is sent THEN the 400 quotes the name escaped
    status, answer = send("POST", path, {field: "k", "filter": where})
    assert status == 400, answer
    assert "\\ud" in answer["message"] and "filter." in answer["message"]


def test_a_lone_surrogate_as_a_field_name_is_a_400(send: Callable[..., tuple[int, Any]]) -> None:
    # GIVEN an unknown top-level field whose name is a lone surrogate
    # WHEN it is sent THEN it is refused as text that is not Unicode
    status, answer = send("POST", "/query", {"question": "k", "\ud800": 1})
    assert status == 400, answer
    assert "is not valid Unicode text" in answer["message"]


def _nested(levels: int) -> str:
    """JSON text of a filter under ``levels`` alternating lists and ``not`` objects, built
    as text (the json module would recurse as deep as the handler)."""
    opening = "".join('{"not": ' if level % 2 else "[" for level in range(levels))
    closing = "".join("}" if level % 2 else "]" for level in reversed(range(levels)))
    return f'{opening}{{"exists": {{"key": "a"}}}}{closing}'


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/query", '{{"question": "k", "filter": {}}}'),
        ("/retrieve", '{{"query": "k", "extra": {}}}'),
        ("/feedback", "{}"),
    ],
)
def test_a_body_nested_hundreds_of_levels_deep_is_a_400(
    api: ModuleType,
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    path: str,
    template: str,
) -> None:
    # GIVEN a body nested 990 levels deep, well within the byte limit
    proxied = proxy_request(event("api_query"), "POST", path)
    proxied["body"] = template.format(_nested(990))
    # WHEN it is sent
    response = api.lambda_handler(proxied, lambda_context)
    # THEN it is refused before anything recurses through it, with the limit
    answer = strict_json(response["body"])
    assert response["statusCode"] == 400, answer
    assert "nests" in answer["message"] and "deep" in answer["message"]
