"""From a request's context to the caller's identity, for each way the API identifies
callers (``ragline.identity.Authentication``, through ``ragline.api.caller``): the key
authorizer's context, an IAM principal, a Cognito token's claims. A credential that is
missing is 401, one that names no tenant of ours 403, and none is ever the default
tenant."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ragline.api import authentication, caller
from ragline.config import Settings
from ragline.errors import ConfigurationError, ForbiddenError, UnauthorizedError
from ragline.identity import DEFAULT_TENANT, Authentication, Identity, principal_key

ACCOUNT = "123456789012"
ETL_ROLE = f"arn:aws:iam::{ACCOUNT}:role/pipelines/etl"
AUDITOR = f"arn:aws:iam::{ACCOUNT}:user/auditor"
IAM = Authentication.iam({ETL_ROLE: ("acme", ["query", "read"]), AUDITOR: ("globex", ["read"])})
COGNITO = Authentication("cognito")
KEY_CONTEXT = {"tenant": "acme", "scopes": "query read", "keyId": "0123456789ab"}


def _event(**request_context: Any) -> dict[str, Any]:
    return {"httpMethod": "GET", "path": "/documents", "requestContext": request_context}


def _refusal(auth: Authentication, event: dict[str, Any]) -> tuple[int, str]:
    with pytest.raises((UnauthorizedError, ForbiddenError)) as refused:
        caller(event, auth)
    return refused.value.status_code, str(refused.value)


def test_the_key_authorizers_context_names_the_tenant_and_scopes() -> None:
    # GIVEN the context the key authorizer (or ragline dev's gateway) passes on
    # WHEN the handler reads it THEN it is that key's tenant, scopes and id
    assert caller(_event(authorizer=KEY_CONTEXT)) == Identity(
        "acme", frozenset({"query", "read"}), "0123456789ab"
    )
    # AND without it the request is 401, not the default tenant
    assert _refusal(Authentication(), _event(identity={"userArn": ETL_ROLE})) == (
        401, "missing API key: send it in the x-api-key header",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("user_arn", "tenant"),
    [
        (f"arn:aws:sts::{ACCOUNT}:assumed-role/etl/session-1", "acme"),  # a session of the role
        (ETL_ROLE, "acme"),
        (AUDITOR, "globex"),
    ],
)
def test_an_iam_principal_acts_for_the_tenant_it_is_mapped_to(user_arn: str, tenant: str) -> None:
    # GIVEN a SigV4-signed request, as API Gateway describes its principal
    event = _event(identity={"userArn": user_arn, "caller": "AROAEXAMPLE:session-1"})
    # WHEN its identity is read THEN it is the mapping's tenant and scopes
    identity = caller(event, IAM)
    assert identity.tenant == tenant
    assert identity.scopes == ({"query", "read"} if tenant == "acme" else {"read"})


@pytest.mark.parametrize(
    ("request_context", "status", "reason"),
    [
        (
            {"identity": {"userArn": f"arn:aws:sts::{ACCOUNT}:assumed-role/other/s"}},
            403,
            "mapped to no tenant",
        ),
        # the same role name in another account is another principal
        (
            {"identity": {"userArn": "arn:aws:sts::999999999999:assumed-role/etl/s"}},
            403,
            "mapped to no tenant",
        ),
        (
            {"identity": {"userArn": f"arn:aws:iam::{ACCOUNT}:user/auditor-2"}},
            403,
            "mapped to no tenant",
        ),
        ({"identity": {"userArn": None, "caller": None}}, 401, "sign the request with SigV4"),
        ({}, 401, "sign the request with SigV4"),
        # a key authorizer's context is not what an IAM API receives: it counts for nothing
        ({"authorizer": KEY_CONTEXT, "identity": {}}, 401, "sign the request with SigV4"),
    ],
)
def test_an_iam_request_of_no_mapped_principal_is_refused_with_the_reason(
    request_context: dict[str, Any], status: int, reason: str
) -> None:
    # WHEN its identity is read THEN it is refused, saying why
    refused_status, message = _refusal(IAM, _event(**request_context))
    assert refused_status == status and reason in message


def test_a_cognito_token_names_the_tenant_and_grants_ragline_scopes_only() -> None:
    # GIVEN a token's claims as API Gateway passes them (list claims as strings)
    claims = {
        "sub": "5f0c-user",
        "custom:tenant": "acme",
        "scope": "ragline/query other-api/admin aws.cognito.signin.user.admin",
        "cognito:groups": "[ragline-read admins]",
    }
    # WHEN its identity is read
    identity = caller(_event(authorizer={"claims": claims}), COGNITO)
    # THEN the tenant is the claim's, the scopes ragline's own scope and group only
    assert identity == Identity("acme", frozenset({"query", "read"}))
    # AND the claim naming the tenant is configurable
    named = Authentication("cognito", tenant_claim="org")
    assert caller(_event(authorizer={"claims": {"org": "globex"}}), named).tenant == "globex"


@pytest.mark.parametrize(
    ("authorizer", "status", "reason"),
    [
        (
            {"claims": {"sub": "u", "cognito:groups": "ragline-admin"}},
            403,
            "no 'custom:tenant' claim",
        ),
        ({"claims": {"sub": "u", "custom:tenant": ""}}, 403, "no 'custom:tenant' claim"),
        ({"claims": {"sub": "u", "custom:tenant": "../acme"}}, 403, "no tenant name"),
        ({"claims": {"sub": "u", "custom:tenant": "Acme"}}, 403, "no tenant name"),
        ({"claims": {}}, 401, "no token"),
        ({}, 401, "no token"),
        # the key authorizer's shape, which a Cognito API never receives, names nobody
        (KEY_CONTEXT, 401, "no token"),
    ],
)
def test_a_cognito_token_without_a_valid_tenant_claim_is_refused(
    authorizer: dict[str, Any], status: int, reason: str
) -> None:
    refused_status, message = _refusal(COGNITO, _event(authorizer=authorizer))
    assert refused_status == status and reason in message


@pytest.mark.parametrize("auth", [Authentication(), IAM, COGNITO], ids=lambda a: a.mode)
def test_no_way_of_identifying_callers_falls_back_to_the_default_tenant(
    auth: Authentication,
) -> None:
    # GIVEN requests with nothing, or with empty credentials of every shape
    empty: list[dict[str, Any]] = [
        {}, {"authorizer": {}}, {"identity": {}}, {"authorizer": {"claims": {}}},
    ]  # fmt: skip
    for context in empty:
        # WHEN the caller is read THEN it is refused: no identity, the default tenant's
        # least of all
        with pytest.raises((UnauthorizedError, ForbiddenError)):
            caller(_event(**context), auth)
    # AND not even a key context naming the default tenant passes where keys are not used
    defaulted = {"tenant": DEFAULT_TENANT, "scopes": "admin"}
    if auth.mode != "key":
        with pytest.raises((UnauthorizedError, ForbiddenError)):
            caller(_event(authorizer=defaulted, identity={}), auth)


def test_a_mapped_session_grants_that_session_only() -> None:
    # GIVEN one assumed-role session mapped, not its role
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/etl/run-1"
    auth = Authentication.iam({session: ("acme", ["query"])})
    # WHEN that session and another of the same role call
    # THEN the first acts for acme, the other is no one
    assert caller(_event(identity={"userArn": session}), auth).tenant == "acme"
    other = _event(identity={"userArn": session.replace("run-1", "run-2")})
    assert _refusal(auth, other)[0] == 403


def test_a_role_is_mapped_by_account_and_name_whatever_its_path() -> None:
    assert principal_key(ETL_ROLE) == f"arn:aws:iam::{ACCOUNT}:role/etl"
    session = f"arn:aws-us-gov:sts::{ACCOUNT}:assumed-role/etl/s1"
    assert principal_key(session) == f"arn:aws-us-gov:iam::{ACCOUNT}:role/etl"
    assert principal_key(AUDITOR) == AUDITOR


def test_the_settings_choose_the_way_and_a_bad_mapping_fails_the_cold_start() -> None:
    # GIVEN the function's variables for IAM, as the stack sets them
    principals = {ETL_ROLE: {"tenant": "acme", "scopes": "query,read"}}
    settings = Settings.from_env(
        {"RAGLINE_API_AUTH": "iam", "RAGLINE_IAM_PRINCIPALS": json.dumps(principals)}
    )
    # WHEN the handler builds its authentication THEN it maps the role
    auth = authentication(settings)
    session = {"userArn": f"arn:aws:sts::{ACCOUNT}:assumed-role/etl/x"}
    assert caller(_event(identity=session), auth).tenant == "acme"
    # AND Cognito's claim comes from its variable
    cognito = Settings.from_env({"RAGLINE_API_AUTH": "cognito", "RAGLINE_TENANT_CLAIM": "org"})
    assert authentication(cognito) == Authentication("cognito", tenant_claim="org")
    # AND a mapping naming an unknown scope, a bad tenant or no scope fails, saying which
    for grant, reason in (
        ({"tenant": "acme", "scopes": ["query", "sudo"]}, "unknown scope sudo"),
        ({"tenant": "Acme!", "scopes": ["query"]}, "invalid tenant"),
        ({"tenant": "acme", "scopes": []}, "granted no scope"),
    ):
        bad = Settings.model_validate({"api_auth": "iam", "iam_principals": {ETL_ROLE: grant}})
        with pytest.raises(ConfigurationError, match=f"RAGLINE_IAM_PRINCIPALS.*{reason}"):
            authentication(bad)
    # AND a malformed variable is refused when read
    with pytest.raises(ConfigurationError, match="RAGLINE_IAM_PRINCIPALS"):
        Settings.from_env({"RAGLINE_IAM_PRINCIPALS": '{"arn:aws:iam::1:role/x": "acme"}'})
