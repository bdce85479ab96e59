"""Tenants through the query Lambda, on both store drivers: every route, for a key of
each scope, on the caller's own collection, document and request id and on another
tenant's. Another tenant's data must be a 404 every time (any 2xx, or any other 4xx,
would tell that it exists: a leak), the caller's own a 200 with the scope or a 403
without it, and no answer may carry a trace of the other tenant's documents."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from ragline.config import Settings
from ragline.errors import ConfigurationError
from ragline.identity import SCOPES, Identity
from ragline.ingest import Ingestor
from ragline.store import get_store
from ragline.tenancy import Keys

from tests.support.api import proxy_request

pytestmark = pytest.mark.both_drivers

TENANTS = ("alpha", "beta")
NOTES = {
    "alpha": b"# Alpha harbour\n\nThe alpha ferry leaves the harbour at seven with the tide.\n",
    "beta": b"# Beta harbour\n\nThe beta ferry leaves the harbour at nine with the tide.\n",
}


@dataclass(frozen=True)
class Tenant:
    name: str
    collection: str
    document_id: str
    source: str
    request_id: str


def _source(tenant: str, name: str) -> str:
    return f"s3://docs/tenants/{tenant}/{name}.md"


@pytest.fixture(scope="module")
def tenants(database_url: str) -> dict[str, Tenant]:
    """Two tenants, each with a collection holding one document (uploaded under its own
    key prefix) and one logged query."""
    settings = Settings(database_url=database_url)
    keys, ingestor = Keys.from_settings(settings), Ingestor.from_settings(settings)
    found = {}
    for name in TENANTS:
        keys.create(name, ["admin"], name="setup")  # makes the tenant
        result = ingestor.ingest_bytes(
            _source(name, "ferry"), NOTES[name], collection=f"{name}-docs"
        )
        assert result.status == "ingested" and result.document_id
        found[name] = Tenant(name, f"{name}-docs", result.document_id, result.source, f"req-{name}")
    get_store.cache_clear()
    return found


@pytest.fixture
def api(
    tenants: dict[str, Tenant],
    database_environment: dict[str, str],
    cold_start: Callable[..., ModuleType],
) -> ModuleType:
    return cold_start("query", **database_environment)


Send = Callable[..., tuple[int, Any]]


@pytest.fixture
def send(api: ModuleType, event: Callable[[str], dict[str, Any]], lambda_context: Any) -> Send:
    """One request through the handler, with ``identity`` as the authorizer's context
    (None: no authorizer context at all)."""

    def call(
        identity: Identity | None,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        request_id: str = "req-matrix",
    ) -> tuple[int, Any]:
        request = proxy_request(event("api_query"), method, path, body, query)
        context = request["requestContext"]
        context["requestId"] = request_id
        if identity is None:
            context.pop("authorizer")
        else:
            context["authorizer"] = identity.to_authorizer()
        response = api.lambda_handler(request, lambda_context)
        return response["statusCode"], json.loads(response["body"])

    return call


# Each route: the scope it needs, and the request naming a target tenant's data.
ROUTES: dict[str, tuple[str, Callable[[Tenant], tuple[str, str, Any, dict[str, str] | None]]]] = {
    "POST /query": (
        "query",
        lambda t: ("POST", "/query", {"question": "When does the ferry leave?",
                                      "collection": t.collection}, None),
    ),
    "POST /retrieve": (
        "query",
        lambda t: ("POST", "/retrieve", {"query": "ferry tide", "collection": t.collection},
                   None),
    ),
    "POST /feedback": (
        "query",
        lambda t: ("POST", "/feedback", {"request_id": t.request_id, "rating": "up"}, None),
    ),
    "GET /documents?collection": (
        "read",
        lambda t: ("GET", "/documents", None, {"collection": t.collection}),
    ),
    "GET /documents/{id}": (
        "read",
        lambda t: ("GET", f"/documents/{t.document_id}", None, None),
    ),
    "DELETE /documents/{id}": (
        "write",
        lambda t: ("DELETE", f"/documents/{t.document_id}", None, None),
    ),
}  # fmt: skip
# Keys of one scope each, of every scope, and of none the route needs.
SCOPE_SETS = [frozenset({s}) for s in SCOPES] + [frozenset(SCOPES)]


def _log_queries(send: Send, tenants: dict[str, Tenant]) -> None:
    """Each tenant asks once, so each has a request id of its own to rate."""
    for tenant in tenants.values():
        identity = Identity(tenant.name, frozenset({"query"}), "k")
        status, _ = send(identity, *ROUTES["POST /query"][1](tenant)[:3], None, tenant.request_id)
        assert status == 200


def test_no_route_and_no_scope_reveals_another_tenants_data(
    send: Send, tenants: dict[str, Tenant], database_url: str
) -> None:
    # GIVEN tenants alpha and beta, each with a collection, a document and a logged query
    _log_queries(send, tenants)
    own, other = tenants["alpha"], tenants["beta"]
    leaks, wrong, cases = [], [], 0
    for scopes in SCOPE_SETS:
        caller = Identity("alpha", scopes, "k-alpha")
        for route, (needed, request) in ROUTES.items():
            # WHEN alpha's key of these scopes asks for beta's data
            status, body = send(caller, *request(other))
            cases += 1
            # THEN the answer is 404, and carries nothing of beta's (the id it echoes is
            # the caller's own input)
            text = json.dumps(body)
            if status != 404 or other.source in text or "beta ferry" in text:
                leaks.append((sorted(scopes), route, status, body))
            # AND for alpha's own data: 200 with the scope, 403 without
            if route == "DELETE /documents/{id}" and needed in scopes:
                continue  # below, on a document made to be deleted
            status, body = send(caller, *request(own))
            cases += 1
            expected = 200 if needed in scopes else 403
            if status != expected or other.source in json.dumps(body):
                wrong.append((sorted(scopes), route, status, body))
    assert cases == len(SCOPE_SETS) * len(ROUTES) * 2 - 2
    assert leaks == []
    assert wrong == []
    # AND beta's document and its rating are untouched
    store = get_store(Settings(database_url=database_url))
    assert store.get_document(_uuid(other.document_id)) is not None
    rows = {r["request_id"]: r for r in store.query_log(_long_ago())}
    assert rows[other.request_id]["rating"] is None and rows[other.request_id]["tenant"] == "beta"


def test_listing_without_a_collection_shows_only_the_callers_documents(
    send: Send, tenants: dict[str, Tenant]
) -> None:
    for name, tenant in tenants.items():
        # WHEN each tenant lists documents without naming a collection
        status, body = send(Identity(name, frozenset({"read"}), "k"), "GET", "/documents")
        # THEN it sees its own document only
        assert status == 200
        assert [d["source"] for d in body["documents"]] == [tenant.source]
    # AND a key without the read scope may not list at all
    status, _ = send(Identity("alpha", frozenset({"query"}), "k"), "GET", "/documents")
    assert status == 403


def test_a_key_with_the_write_scope_deletes_its_own_document_only(
    send: Send, tenants: dict[str, Tenant], database_url: str
) -> None:
    # GIVEN a second alpha document
    ingestor = Ingestor.from_settings(Settings(database_url=database_url))
    result = ingestor.ingest_bytes(_source("alpha", "spare"), NOTES["alpha"] + b"Spare.\n",
                                   collection="alpha-docs")  # fmt: skip
    assert result.document_id
    writer = Identity("alpha", frozenset({"write"}), "k")
    # WHEN alpha deletes it, THEN it is gone
    assert send(writer, "DELETE", f"/documents/{result.document_id}")[0] == 200
    assert send(writer, "DELETE", f"/documents/{result.document_id}")[0] == 404
    # AND beta's document, named by alpha, is a 404 and stays
    assert send(writer, "DELETE", f"/documents/{tenants['beta'].document_id}")[0] == 404
    reader = Identity("beta", frozenset({"read"}), "k")
    assert send(reader, "GET", f"/documents/{tenants['beta'].document_id}")[0] == 200


def test_a_collection_no_tenant_owns_is_404_as_another_tenants_is(send: Send) -> None:
    caller = Identity("alpha", frozenset(SCOPES), "k")
    missing = send(caller, "POST", "/retrieve", {"query": "ferry", "collection": "nobody"})
    theirs = send(caller, "POST", "/retrieve", {"query": "ferry", "collection": "beta-docs"})
    # THEN the two answers cannot be told apart but by the name they echo
    assert missing[0] == theirs[0] == 404
    assert missing[1]["message"].replace("nobody", "X") == theirs[1]["message"].replace(
        "beta-docs", "X"
    )


@pytest.mark.parametrize("route", list(ROUTES))
def test_every_route_but_health_needs_an_identity(
    send: Send, tenants: dict[str, Tenant], route: str
) -> None:
    # WHEN a request reaches the handler with no authorizer context
    status, body = send(None, *ROUTES[route][1](tenants["alpha"]))
    # THEN it is refused as unauthenticated
    assert status == 401, body
    assert send(None, "GET", "/health")[0] == 200


def _uuid(value: str) -> Any:
    from uuid import UUID

    return UUID(value)


def _long_ago() -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - timedelta(days=1)


def test_the_default_collection_is_the_default_tenants_even_while_empty(send: Send) -> None:
    question = {"question": "When does the ferry leave?"}  # no collection: the default one
    # WHEN the default tenant asks its (empty) default collection, THEN it abstains
    status, body = send(Identity("default", frozenset({"query"}), "k"), "POST", "/query", question)
    assert status == 200 and body["abstained"] is True
    # AND for another tenant the default collection is as absent as any other tenant's
    status, _ = send(Identity("alpha", frozenset(SCOPES), "k"), "POST", "/query", question)
    assert status == 404


ETL_ROLE = "arn:aws:iam::123456789012:role/pipelines/etl"
ETL_SESSION = "arn:aws:sts::123456789012:assumed-role/etl/run-42"


def _list_documents(
    api: ModuleType, event: Callable[[str], dict[str, Any]], lambda_context: Any, **context: Any
) -> tuple[int, Any]:
    """GET /documents with ``context`` in place of the key authorizer's (API Gateway sets
    ``identity`` for IAM and ``authorizer.claims`` for Cognito)."""
    request = copy.deepcopy(event("api_query"))
    request["requestContext"].pop("authorizer")
    for name, value in context.items():
        request["requestContext"][name] = value
    request.update(httpMethod="GET", path="/documents", body=None)
    response = api.lambda_handler(request, lambda_context)
    return response["statusCode"], json.loads(response["body"])


def test_iam_callers_act_for_the_tenant_their_principal_is_mapped_to(
    tenants: dict[str, Tenant],
    database_environment: dict[str, str],
    cold_start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
) -> None:
    # GIVEN a function behind IAM, its one role (named with its path) mapped to beta
    principals = {ETL_ROLE: {"tenant": "beta", "scopes": ["read"]}}
    api = cold_start(
        "query", **database_environment,
        RAGLINE_API_AUTH="iam", RAGLINE_IAM_PRINCIPALS=json.dumps(principals),
    )  # fmt: skip
    # WHEN a session of that role lists documents
    status, body = _list_documents(api, event, lambda_context, identity={"userArn": ETL_SESSION})
    # THEN it sees beta's, no other's
    assert status == 200
    assert [d["source"] for d in body["documents"]] == [tenants["beta"].source]
    # AND an unmapped principal is 403 saying so; an unsigned request 401
    other = "arn:aws:sts::123456789012:assumed-role/intruder/s"
    status, body = _list_documents(api, event, lambda_context, identity={"userArn": other})
    assert status == 403 and "mapped to no tenant" in body["message"]
    assert _list_documents(api, event, lambda_context, identity={"userArn": None})[0] == 401
    # AND a key authorizer's context, which API Gateway never sends to an IAM API, counts
    # for nothing: the request is still unsigned
    forged = {"authorizer": {"tenant": "alpha", "scopes": "read"}, "identity": {}}
    assert _list_documents(api, event, lambda_context, **forged)[0] == 401


def test_cognito_callers_act_for_the_tenant_their_token_names(
    tenants: dict[str, Tenant],
    database_environment: dict[str, str],
    cold_start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
) -> None:
    # GIVEN a function behind a Cognito user pool authorizer, the tenant in custom:tenant
    api = cold_start("query", **database_environment, RAGLINE_API_AUTH="cognito")
    claims = {"sub": "u-1", "custom:tenant": "alpha", "cognito:groups": "ragline-read,staff"}
    # WHEN a user of alpha with the read group lists documents
    status, body = _list_documents(api, event, lambda_context, authorizer={"claims": claims})
    # THEN it sees alpha's, no other's
    assert status == 200
    assert [d["source"] for d in body["documents"]] == [tenants["alpha"].source]
    # AND a token without the claim, or with one that names no tenant, is 403; none, 401
    for bad in ({"sub": "u-2"}, {"sub": "u-3", "custom:tenant": "Beta/../x"}):
        status, body = _list_documents(api, event, lambda_context, authorizer={"claims": bad})
        assert status == 403 and "custom:tenant" in body["message"]
    assert _list_documents(api, event, lambda_context, authorizer={})[0] == 401


def test_the_removed_gateway_key_tenant_fails_the_cold_start(
    database_environment: dict[str, str], cold_start: Callable[..., ModuleType]
) -> None:
    # GIVEN the variable that made unauthorized requests act for one tenant
    # WHEN the function starts with it THEN it refuses, naming what replaced it
    with pytest.raises(ConfigurationError, match="RAGLINE_GATEWAY_KEY_TENANT was removed"):
        cold_start("query", **database_environment, RAGLINE_GATEWAY_KEY_TENANT="beta")
