"""The OpenAPI document tells the truth about the query Lambda (issue 9, item 2).

Errors are documented as they are answered (400, never Powertools' 422), limits are the
ones enforced, document ids are UUIDs, and numbers are numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from ragline.config import MAX_TOP_K, Settings
from ragline.errors import ConfigurationError
from ragline.ingest import Ingestor
from ragline.store import get_store
from ragline.store.documents import encode_cursor

from tests.support.api import proxy_request, strict_json

ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}
BODY_ROUTES = [("/query", "post"), ("/retrieve", "post"), ("/feedback", "post")]


@pytest.fixture(scope="module")
def seeded(database_url: str) -> str:
    Ingestor.from_settings(Settings(database_url=database_url)).ingest_bytes(
        "s3://docs/tides.md", b"# Tides\n\nHigh tide at the harbour is at 6:40 today.\n"
    )
    get_store.cache_clear()
    return database_url


@pytest.fixture
def send(
    seeded: str,
    cold_start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
) -> Callable[..., tuple[int, Any]]:
    api = cold_start("query", RAGLINE_DATABASE_URL=seeded)

    def call(method: str, path: str, body: Any = None, **request: Any) -> tuple[int, Any]:
        proxied = proxy_request(event("api_query"), method, path, body, **request)
        response = api.lambda_handler(proxied, lambda_context)
        return response["statusCode"], strict_json(response["body"])

    return call


@pytest.fixture
def spec(send: Callable[..., tuple[int, Any]]) -> dict[str, Any]:
    status, document = send("GET", "/swagger", query={"format": "json"})
    assert status == 200
    return dict(document)


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]


def test_errors_are_documented_as_answered_with_the_error_body(spec: dict[str, Any]) -> None:
    # GIVEN the OpenAPI document the API serves
    operations = _operations(spec)
    assert len(operations) == 15  # the OpenAI-compatible door's two, the review API's six

    # THEN no route documents Powertools' 422 (the API answers 400), every route documents
    # 400 and 503 with the error body, and every error is that body
    for path, method, operation in operations:
        responses = operation["responses"]
        assert "422" not in responses, (method, path)
        assert {"200", "400", "503"} <= set(responses), (method, path)
        for status, response in responses.items():
            if int(status) >= 400:  # /query's 202 (a held answer) is a success
                assert response["content"]["application/json"]["schema"] == ERROR_BODY
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    error = spec["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["message"]

    # AND the body routes document 413, the routes by document id 404, /query 409
    for path, method in BODY_ROUTES:
        assert "413" in spec["paths"][path][method]["responses"]
    for method in ("get", "delete"):
        assert "404" in spec["paths"]["/documents/{id}"][method]["responses"]
    assert "409" in spec["paths"]["/query"]["post"]["responses"]


def test_document_ids_are_typed_as_uuids(spec: dict[str, Any]) -> None:
    for method in ("get", "delete"):
        (parameter,) = spec["paths"]["/documents/{id}"][method]["parameters"]
        assert parameter["in"] == "path"
        assert parameter["schema"]["format"] == "uuid"


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_malformed_document_id_is_a_400_naming_it(
    send: Callable[..., tuple[int, Any]], method: str
) -> None:
    status, body = send(method, "/documents/not-a-uuid")
    assert status == 400
    assert body["message"] == "invalid request: id: is not a UUID"


@pytest.mark.parametrize("schema", ["QueryRequest", "RetrieveRequest"])
def test_the_top_k_limit_is_the_one_enforced(
    spec: dict[str, Any], send: Callable[..., tuple[int, Any]], schema: str
) -> None:
    # GIVEN the documented limit of top_k
    (integer, _null) = spec["components"]["schemas"][schema]["properties"]["top_k"]["anyOf"]
    documented = integer["maximum"]

    # THEN it is the limit the API enforces by default: the limit is served, one more is not
    assert documented == MAX_TOP_K == Settings().max_top_k
    path, field = ("/query", "question") if schema == "QueryRequest" else ("/retrieve", "query")
    status, body = send("POST", path, {field: "high tide", "top_k": MAX_TOP_K})
    assert status == 200, body
    status, body = send("POST", path, {field: "high tide", "top_k": MAX_TOP_K + 1})
    assert status == 400
    assert f"top_k must be at most {MAX_TOP_K}" in body["message"]


def test_a_configured_top_k_above_the_documented_limit_fails_the_cold_start() -> None:
    # GIVEN RAGLINE_MAX_TOP_K above the limit the OpenAPI document states
    # WHEN the settings are read THEN the cold start fails: the document would lie
    with pytest.raises(ConfigurationError, match=f"RAGLINE_MAX_TOP_K: .*{MAX_TOP_K}"):
        Settings.from_env({"RAGLINE_MAX_TOP_K": str(MAX_TOP_K + 1)})


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/query", {"question": "high tide", "top_k": "5"}, "top_k"),
        ("/query", {"question": "high tide", "top_k": True}, "top_k"),
        ("/retrieve", {"query": "high tide", "top_k": 5.5}, "top_k"),
        ("/retrieve", {"query": "high tide", "ef_search": "100"}, "ef_search"),
        ("/query", {"question": 5}, "question"),
        ("/feedback", {"request_id": 7, "rating": "up"}, "request_id"),
    ],
)
def test_types_are_strict(
    send: Callable[..., tuple[int, Any]], path: str, body: dict[str, Any], field: str
) -> None:
    # GIVEN a field of the wrong JSON type, which lax parsing would have converted
    # WHEN it is posted THEN it is refused, naming the field
    status, answer = send("POST", path, body)
    assert status == 400, answer
    assert answer["message"].startswith(f"invalid request: {field}")


def test_an_integer_written_with_a_zero_fraction_is_an_integer(
    send: Callable[..., tuple[int, Any]],
) -> None:
    # GIVEN top_k written as 2.0, an integer to JSON Schema (and so to the OpenAPI document)
    # WHEN it is posted THEN it is served as 2
    status, answer = send("POST", "/retrieve", {"query": "high tide", "top_k": 2.0})
    assert status == 200, answer


@pytest.mark.parametrize(("method", "path"), [("PUT", "/query"), ("POST", "/health")])
def test_a_method_a_path_does_not_serve_is_a_405_naming_those_it_does(
    send: Callable[..., tuple[int, Any]], method: str, path: str
) -> None:
    # GIVEN a path that exists, and a method no route serves on it
    # WHEN it is called THEN the answer is 405, not 404, and says which methods to use
    status, answer = send(method, path)
    assert status == 405
    assert answer["message"].startswith(f"{method} is not allowed on {path}; use ")


def test_the_api_key_and_the_gateways_errors_are_documented(spec: dict[str, Any]) -> None:
    # GIVEN the OpenAPI document the API serves
    # THEN it names the deployed API's x-api-key header as the security scheme
    assert spec["components"]["securitySchemes"]["apiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": spec["components"]["securitySchemes"]["apiKey"]["description"],
    }
    assert spec["security"] == [{"apiKey": []}]
    for path, method, operation in _operations(spec):
        responses = operation["responses"]
        # AND every route documents API Gateway's 429 (throttle, quota) with the error body
        assert responses["429"]["content"]["application/json"]["schema"] == ERROR_BODY
        if (path, method) == ("/health", "get"):
            # AND /health, open for uptime probes, needs no key and cannot answer 403
            assert operation["security"] == [] and "403" not in responses
        else:
            assert "security" not in operation and "403" in responses, (method, path)


def test_only_the_configured_profiles_are_documented(
    spec: dict[str, Any], send: Callable[..., tuple[int, Any]]
) -> None:
    # GIVEN the profile field of /query as documented
    (named, _null) = spec["components"]["schemas"]["QueryRequest"]["properties"]["profile"]["anyOf"]
    # THEN it lists the packaged profiles, each served
    assert named["enum"] == ["critical", "reasoning", "simple"]
    for profile in named["enum"]:
        status, body = send("POST", "/query", {"question": "high tide", "profile": profile})
        assert status == 200, body
    # AND a name outside the list, which the document no longer allows, is refused
    status, body = send("POST", "/query", {"question": "high tide", "profile": "cheap"})
    assert status == 400 and "cheap" in body["message"]


def test_cursors_are_documented_as_the_listing_hands_them_out(
    spec: dict[str, Any], send: Callable[..., tuple[int, Any]]
) -> None:
    # GIVEN the cursor parameter as documented and a cursor a listing hands out
    (cursor,) = [p for p in spec["paths"]["/documents"]["get"]["parameters"]
                 if p["name"] == "cursor"]  # fmt: skip
    (text, _null) = cursor["schema"]["anyOf"]
    pattern = re.compile(text["pattern"])
    handed_out = encode_cursor("s3://docs/a.md")
    # THEN a real cursor matches the pattern, and an arbitrary token does not
    assert pattern.fullmatch(handed_out)
    assert not pattern.fullmatch("abc") and not pattern.fullmatch("")
    status, _ = send("GET", "/documents", query={"cursor": handed_out})
    assert status == 200


@pytest.mark.parametrize(
    ("value", "valid"),
    [("2024-02-29", True), ("2024-05-01T09:30Z", True), ("2023-02-29", False),
     ("2024-13-01", False), ("2024-05-01T24:00", False), ("0000-01-01", False)],
)  # fmt: skip
def test_dates_in_ranges_are_documented_as_the_parser_reads_them(
    spec: dict[str, Any], send: Callable[..., tuple[int, Any]], value: str, valid: bool
) -> None:
    # GIVEN the date pattern a range's value is documented with
    branches = spec["components"]["schemas"]["MetadataFilter"]["anyOf"]
    (gte,) = [branch["properties"]["gte"] for branch in branches if "gte" in branch["properties"]]
    (_number, date) = gte["properties"]["value"]["anyOf"]
    # WHEN the value is checked by the document and sent to the API
    status, body = send(
        "POST", "/retrieve", {"query": "tide", "filter": {"gte": {"key": "d", "value": value}}}
    )
    # THEN both agree: the document allows exactly what the API accepts
    assert bool(re.fullmatch(date["pattern"], value)) is valid
    assert (status == 200) is valid, body


def test_every_route_but_health_declares_the_api_key_and_its_refusals(
    spec: dict[str, Any],
) -> None:
    # GIVEN the served OpenAPI document
    # THEN it declares the x-api-key scheme
    schemes = spec["components"]["securitySchemes"]
    assert schemes["apiKey"]["type"] == "apiKey"
    assert (schemes["apiKey"]["in"], schemes["apiKey"]["name"]) == ("header", "x-api-key")
    # AND every route but /health requires it (the document's own security) and
    # documents 401 (no valid key), 403 (a scope lacking) and 404 (another tenant's)
    assert spec["security"] == [{"apiKey": []}]
    for path, method, operation in _operations(spec):
        if path == "/health":
            assert operation["security"] == []
            assert not {"401", "403"} & set(operation["responses"])
            continue
        assert "security" not in operation, (method, path)
        for status in ("401", "403", "404"):
            content = operation["responses"][status]["content"]["application/json"]
            assert content["schema"] == ERROR_BODY, (method, path, status)


@pytest.mark.parametrize(
    ("environment", "scheme", "header"),
    [
        ({"RAGLINE_API_AUTH": "iam", "RAGLINE_IAM_PRINCIPALS": json.dumps(
            {"arn:aws:iam::123456789012:role/etl": {"tenant": "acme", "scopes": ["query"]}})},
         "sigv4", "Authorization"),
        ({"RAGLINE_API_AUTH": "cognito"}, "cognito", "Authorization"),
    ],
)  # fmt: skip
def test_an_iam_or_cognito_api_documents_its_own_scheme_on_every_route_but_health(
    seeded: str,
    cold_start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    environment: dict[str, str],
    scheme: str,
    header: str,
) -> None:
    # GIVEN the function configured for IAM or Cognito callers
    api = cold_start("query", RAGLINE_DATABASE_URL=seeded, **environment)
    # WHEN its OpenAPI document is asked for (open, as /swagger is)
    proxied = proxy_request(event("api_query"), "GET", "/swagger", query={"format": "json"})
    proxied["requestContext"].pop("authorizer")
    response = api.lambda_handler(proxied, lambda_context)
    assert response["statusCode"] == 200
    spec = strict_json(response["body"])
    # THEN it declares that scheme, not the x-api-key one, as the document's security
    schemes = spec["components"]["securitySchemes"]
    assert list(schemes) == [scheme]
    assert (schemes[scheme]["in"], schemes[scheme]["name"]) == ("header", header)
    assert spec["security"] == [{scheme: []}]
    # AND every route but /health keeps it and documents 401, 403 and 404
    for path, method, operation in _operations(spec):
        if path == "/health":
            assert operation["security"] == []
            continue
        assert "security" not in operation, (method, path)
        assert {"401", "403", "404"} <= set(operation["responses"]), (method, path)
