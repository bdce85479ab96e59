"""The Lambda authorizer with API Gateway's TOKEN event, on both drivers: a live key is
Allow on the whole stage with its tenant and scopes in the context; a missing, unknown,
revoked or expired key is Deny with the reason; a warm call is one database round trip."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import psycopg
import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext
from ragline.config import Settings
from ragline.identity import Identity
from ragline.store import Store
from ragline.tenancy import Keys

from tests.support.data_api import DataApiAdapter

pytestmark = pytest.mark.both_drivers

STAGE = "arn:aws:execute-api:us-east-1:123456789012:abc123defg/v1/*/*"
USAGE_KEYS = "acme=ragline-usage-identifier-acme,*=ragline-usage-identifier-shared"


@pytest.fixture(scope="module")
def keys(database_url: str) -> Keys:
    # The keys are made through psycopg whatever the driver under test reads them with.
    return Keys(Store(Settings(database_url=database_url)))


@pytest.fixture
def authorizer(
    keys: Keys, database_environment: dict[str, str], cold_start: Callable[..., ModuleType]
) -> ModuleType:
    return cold_start("authorizer", **database_environment, RAGLINE_USAGE_PLAN_KEYS=USAGE_KEYS)


@pytest.fixture
def authorize(
    authorizer: ModuleType,
    event: Callable[[str], dict[str, Any]],
    lambda_context: LambdaContext,
) -> Callable[[str | None], dict[str, Any]]:
    def call(api_key: str | None) -> dict[str, Any]:
        request = event("api_authorizer_token")
        if api_key is None:
            del request["authorizationToken"]
        else:
            request["authorizationToken"] = api_key
        answer: dict[str, Any] = authorizer.lambda_handler(request, lambda_context)
        return answer

    return call


@pytest.fixture
def round_trips(driver: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement sent to the database meanwhile: psycopg's executes, or the Data
    API's calls (each one an HTTPS request on AWS). Asked for before the authorizer, so
    the Data API adapter is made with the counting hook."""
    sent: list[str] = []
    if driver == "psycopg":
        execute = psycopg.Cursor.execute

        def counted_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            sent.append(str(query))
            return execute(self, query, *args, **kwargs)

        monkeypatch.setattr(psycopg.Cursor, "execute", counted_execute)
    else:
        answer = DataApiAdapter._before_call

        def counted_call(self: Any, model: Any, params: dict[str, Any], **kwargs: Any) -> Any:
            sent.append(model.name)
            return answer(self, model, params, **kwargs)

        monkeypatch.setattr(DataApiAdapter, "_before_call", counted_call)
    return sent


def _statement(answer: dict[str, Any]) -> dict[str, Any]:
    (statement,) = answer["policyDocument"]["Statement"]
    return dict(statement)


def test_a_bearer_token_is_the_key_an_openai_client_sends(
    keys: Keys, authorize: Callable[[str | None], dict[str, Any]]
) -> None:
    # GIVEN a key, sent as the /v1 routes' authorizer reads it: Authorization's value
    created = keys.create("acme", ["query"])
    # WHEN API Gateway asks about "Bearer <key>"
    answer = authorize(f"Bearer {created.key}")
    # THEN it is the key's tenant, allowed, as with x-api-key
    assert _statement(answer)["Effect"] == "Allow"
    assert Identity.from_authorizer(answer["context"]) == Identity(
        "acme", frozenset({"query"}), created.record.id
    )
    # AND a bearer token that is not a live key is refused
    assert _statement(authorize("Bearer rgl_0123456789ab_" + "x" * 43))["Effect"] == "Deny"


def test_a_live_key_is_allowed_on_every_route_with_its_tenant_and_scopes(
    keys: Keys, authorize: Callable[[str | None], dict[str, Any]]
) -> None:
    # GIVEN a key of tenant acme with two scopes
    created = keys.create("acme", ["query", "read"])
    # WHEN API Gateway asks the authorizer about it
    answer = authorize(created.key)
    # THEN the key may invoke every method of the stage (the cached answer serves all routes)
    assert _statement(answer) == {
        "Action": "execute-api:Invoke", "Effect": "Allow", "Resource": STAGE,
    }  # fmt: skip
    assert answer["principalId"] == created.record.id
    # AND the context carries what the query handler reads back as the caller
    context = answer["context"]
    assert all(isinstance(value, str) for value in context.values())
    assert Identity.from_authorizer(context) == Identity(
        "acme", frozenset({"query", "read"}), created.record.id
    )
    # AND the usage identifier names acme's own usage plan
    assert answer["usageIdentifierKey"] == "ragline-usage-identifier-acme"


def test_a_tenant_without_its_own_plan_counts_against_the_shared_one(
    keys: Keys, authorize: Callable[[str | None], dict[str, Any]]
) -> None:
    created = keys.create("globex", ["query"])
    answer = authorize(created.key)
    assert _statement(answer)["Effect"] == "Allow"
    assert answer["context"]["tenant"] == "globex"
    assert answer["usageIdentifierKey"] == "ragline-usage-identifier-shared"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("missing", "missing API key"),
        ("malformed", "malformed API key"),
        ("unknown", "unknown API key"),
        ("revoked", "revoked"),
        ("expired", "expired"),
    ],
)
def test_a_refused_key_is_denied_with_its_reason(
    keys: Keys, authorize: Callable[[str | None], dict[str, Any]], case: str, reason: str
) -> None:
    # GIVEN a key in each refused state
    api_key: str | None
    if case == "missing":
        api_key = None
    elif case == "malformed":
        api_key = "not-a-ragline-key"
    elif case == "unknown":
        api_key = "rgl_0123456789ab_" + "x" * 43
    elif case == "revoked":
        created = keys.create("acme", ["query"])
        assert _statement(authorize(created.key))["Effect"] == "Allow"
        keys.revoke(created.record.id)
        api_key = created.key
    else:
        past = datetime.now(UTC) - timedelta(seconds=1)
        api_key = keys.create("acme", ["query"], expires_at=past).key
    # WHEN API Gateway asks the authorizer
    answer = authorize(api_key)
    # THEN it is a Deny on the stage, naming why, with no tenant and no usage identifier
    assert _statement(answer) == {
        "Action": "execute-api:Invoke", "Effect": "Deny", "Resource": STAGE,
    }  # fmt: skip
    assert reason in answer["context"]["message"]
    assert "tenant" not in answer["context"] and "usageIdentifierKey" not in answer


def test_a_warm_call_is_one_round_trip_on_the_reused_connection(
    round_trips: list[str], keys: Keys, authorize: Callable[[str | None], dict[str, Any]]
) -> None:
    # GIVEN a warm authorizer (its first call opened the connection, checked migrations)
    created = keys.create("acme", ["query"])
    authorize(created.key)
    round_trips.clear()
    # WHEN it answers three more requests
    for _ in range(3):
        assert _statement(authorize(created.key))["Effect"] == "Allow"
    # THEN each cost one statement: the indexed lookup of the key's digest
    assert len(round_trips) == 3, round_trips


def test_a_request_that_is_not_an_api_gateway_method_fails_loudly(
    authorizer: ModuleType, lambda_context: LambdaContext
) -> None:
    with pytest.raises(ValueError, match="method ARN"):
        authorizer.lambda_handler({"authorizationToken": "x", "methodArn": "*"}, lambda_context)
