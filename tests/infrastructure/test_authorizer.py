"""The key authorizer: on every route but /health and /swagger, its answers cached as
configured, usage plans per tenant fed by it, and the function's own least privilege."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from ragline.config import Settings
from ragline.tenancy import new_key

from stacks.api import KEY_PATTERN, usage_identifier
from tests.infrastructure.synthesis import CDK_CONTEXT, Synthesized
from tests.infrastructure.test_api import OPEN_ROUTES, OPENAI_ROUTES, ROUTES, _methods
from tests.infrastructure.test_iam import _actions, _granted, _statements

AUTHORIZER = "Api/KeyAuthorizer"
BEARER_AUTHORIZER = "Api/BearerAuthorizer"


def _authorizer(synthesized: Synthesized, name: str = AUTHORIZER) -> dict[str, Any]:
    authorizers = synthesized.of_type("AWS::ApiGateway::Authorizer")
    assert len(authorizers) == 2  # x-api-key, and Authorization: Bearer on /v1
    return dict(authorizers[synthesized.logical_id(name)]["Properties"])


def _plans(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    """API Gateway key value -> the properties of the usage plan it belongs to."""
    keys = synthesized.of_type("AWS::ApiGateway::ApiKey")
    plans = synthesized.of_type("AWS::ApiGateway::UsagePlan")
    found: dict[str, dict[str, Any]] = {}
    for link in synthesized.of_type("AWS::ApiGateway::UsagePlanKey").values():
        key = keys[link["Properties"]["KeyId"]["Ref"]]["Properties"]
        found[key["Value"]] = plans[link["Properties"]["UsagePlanId"]["Ref"]]["Properties"]
    return found


def _environment(synthesized: Synthesized, function: str) -> dict[str, str]:
    properties = synthesized.resources[synthesized.logical_id(f"{function}/Function")]
    variables: dict[str, str] = properties["Properties"]["Environment"]["Variables"]
    return variables


@pytest.mark.parametrize("configuration", ["nat", "data-api"])
def test_every_route_but_health_and_swagger_goes_through_the_key_authorizer(
    synthesized: Any, configuration: str
) -> None:
    # GIVEN the API WHEN synthesized
    template: Synthesized = synthesized(configuration)
    authorizer = {"Ref": template.logical_id(AUTHORIZER)}
    bearer = {"Ref": template.logical_id(BEARER_AUTHORIZER)}
    methods = _methods(template)
    assert set(methods) == ROUTES
    for route, method in methods.items():
        if route in OPEN_ROUTES:
            # THEN the open routes have no authorizer (and need no key)
            assert method["AuthorizationType"] == "NONE", route
            assert "AuthorizerId" not in method and method["ApiKeyRequired"] is False
        else:
            # THEN every other route has the key authorizer, and a usage plan's key (named
            # by the authorizer) is required, so the plans apply
            # (the OpenAI-compatible routes read it from Authorization: Bearer)
            assert method["AuthorizationType"] == "CUSTOM", route
            expected = bearer if route in OPENAI_ROUTES else authorizer
            assert method["AuthorizerId"] == expected, route
            assert method["ApiKeyRequired"] is True, route


def test_the_authorizer_reads_x_api_key_and_is_cached_for_the_configured_time(
    nat: Synthesized, openai: Synthesized
) -> None:
    # GIVEN the default configuration THEN a TOKEN authorizer on the x-api-key header,
    # on the authorizer function, its answers cached for authorizer_cache_seconds (300)
    properties = _authorizer(nat)
    assert properties["Type"] == "TOKEN"
    assert properties["IdentitySource"] == "method.request.header.x-api-key"
    assert properties["AuthorizerResultTtlInSeconds"] == 300
    assert nat.logical_id("Authorizer/Function") in json.dumps(properties["AuthorizerUri"])
    # GIVEN authorizer_cache_seconds=60 THEN the cache keeps answers a minute
    assert _authorizer(openai)["AuthorizerResultTtlInSeconds"] == 60


def test_the_openai_routes_read_the_key_as_openai_clients_send_it(nat: Synthesized) -> None:
    # GIVEN the second authorizer WHEN synthesized
    properties = _authorizer(nat, BEARER_AUTHORIZER)
    key = _authorizer(nat)
    # THEN it reads Authorization, on the same function, cached as the key authorizer is
    assert properties["Type"] == "TOKEN"
    assert properties["IdentitySource"] == "method.request.header.Authorization"
    assert properties["AuthorizerUri"] == key["AuthorizerUri"]
    assert properties["AuthorizerResultTtlInSeconds"] == key["AuthorizerResultTtlInSeconds"]
    # AND only "Bearer <a ragline key>" reaches the function
    pattern = re.compile(properties["IdentityValidationExpression"])
    assert all(pattern.fullmatch(f"Bearer {new_key()}") for _ in range(50))
    for refused in (new_key(), "Bearer sk-proj-abc", "Basic dXNlcjpwYXNz", "Bearer "):
        assert not pattern.fullmatch(refused), refused


def test_api_gateway_refuses_malformed_keys_before_the_authorizer(nat: Synthesized) -> None:
    # GIVEN the authorizer's validation expression
    pattern = re.compile(_authorizer(nat)["IdentityValidationExpression"])
    assert pattern.pattern == KEY_PATTERN
    # THEN every key ragline makes passes it, and what is not a ragline key does not
    assert all(pattern.fullmatch(new_key()) for _ in range(200))
    for refused in ("", "test-key", "rgl_0123456789ab_short", usage_identifier("R", "*")):
        assert not pattern.fullmatch(refused), refused


def test_refused_keys_answer_401_in_the_handlers_error_shape(nat: Synthesized) -> None:
    responses = {
        response["Properties"]["ResponseType"]: response["Properties"]
        for response in nat.of_type("AWS::ApiGateway::GatewayResponse").values()
    }
    # GIVEN a missing or malformed key THEN 401 with a message naming the header
    missing = responses["UNAUTHORIZED"]
    assert missing["StatusCode"] == "401"
    body = json.loads(missing["ResponseTemplates"]["application/json"])
    assert body["statusCode"] == 401 and "x-api-key" in body["message"]
    # GIVEN the authorizer's Deny (unknown, revoked, expired) THEN 401 with its reason
    denied = responses["ACCESS_DENIED"]
    assert denied["StatusCode"] == "401"
    template = denied["ResponseTemplates"]["application/json"]
    assert "$context.authorizer.message" in template and '"statusCode": 401' in template


def test_usage_plans_take_their_key_from_the_authorizer(nat: Synthesized) -> None:
    # GIVEN the default configuration (no tenant plans)
    api = nat.resources[nat.logical_id("Api/RestApi")]["Properties"]
    # THEN the usage identifier comes from the authorizer's answer, not a header
    assert api["ApiKeySourceType"] == "AUTHORIZER"
    # AND one shared plan with the stack's limits holds the key the authorizer names for
    # every tenant
    shared = usage_identifier(CDK_CONTEXT.get("stack_name", "Ragline"), "*")
    (plan,) = _plans(nat).values()
    assert set(_plans(nat)) == {shared}
    assert plan["Throttle"] == {
        "RateLimit": CDK_CONTEXT["api_throttle_rate"],
        "BurstLimit": CDK_CONTEXT["api_throttle_burst"],
    }
    variables = _environment(nat, "Authorizer")
    settings = Settings.from_env({"RAGLINE_USAGE_PLAN_KEYS": variables["RAGLINE_USAGE_PLAN_KEYS"]})
    assert settings.usage_plan_key("acme") == settings.usage_plan_key("default") == shared


def test_tenants_may_have_usage_plans_of_their_own(openai: Synthesized) -> None:
    # GIVEN tenant_usage_plans for acme and globex
    plans = _plans(openai)
    variables = _environment(openai, "Authorizer")
    settings = Settings.from_env({"RAGLINE_USAGE_PLAN_KEYS": variables["RAGLINE_USAGE_PLAN_KEYS"]})
    # THEN each has its own plan with its limits, on the API's stage, and the authorizer
    # names that plan's key for the tenant and the shared plan's for any other
    acme, globex, other = (settings.usage_plan_key(t) for t in ("acme", "globex", "initech"))
    assert len({acme, globex, other}) == 3 and set(plans) == {acme, globex, other}
    assert acme is not None and globex is not None
    assert plans[acme]["Throttle"] == {"RateLimit": 5, "BurstLimit": 10}
    assert plans[acme]["Quota"] == {"Limit": 1000, "Period": "DAY"}
    assert plans[globex]["Throttle"] == {"RateLimit": 50, "BurstLimit": 100}
    assert plans[globex]["Quota"] == {"Limit": 100000, "Period": "DAY"}
    stage = {"Ref": openai.logical_id("Api/RestApi/DeploymentStage.v1")}
    assert all(plan["ApiStages"][0]["Stage"] == stage for plan in plans.values())


@pytest.mark.parametrize("configuration", ["nat", "data-api"])
def test_the_authorizer_reaches_the_database_as_the_query_function_does_and_nothing_else(
    synthesized: Any, configuration: str
) -> None:
    template: Synthesized = synthesized(configuration)
    role = "Authorizer/Role"
    # GIVEN the authorizer's role THEN its database grants are the query function's
    for action in ("secretsmanager:GetSecretValue", "rds-data:ExecuteStatement"):
        assert _granted(template, role, action) == _granted(template, "Query/Role", action)
    assert _granted(template, role, "secretsmanager:GetSecretValue")
    # AND it writes only its own log group, and may call no model
    assert _granted(template, role, "logs:PutLogEvents") == [
        {"Fn::GetAtt": [template.logical_id("Authorizer/Logs"), "Arn"]}
    ]
    actions = {a for statement in _statements(template, role) for a in _actions(statement)}
    assert not {a for a in actions if a.startswith(("bedrock:", "sagemaker:"))}
    # AND it has the database's environment and its usage plan keys, no model settings
    variables = _environment(template, "Authorizer")
    query = _environment(template, "Query")
    for name in ("RAGLINE_DATABASE_SECRET_ARN", "RAGLINE_DATABASE_DRIVER"):
        assert variables.get(name) == query.get(name), name
    assert "RAGLINE_USAGE_PLAN_KEYS" in variables and "RAGLINE_LLM" not in variables
    # AND the query function acts only for the tenant the authorizer names: no fallback
    # tenant for a request without one (that is a 401)
    assert "RAGLINE_GATEWAY_KEY_TENANT" not in query
    # AND API Gateway alone may invoke it
    permissions = [
        permission["Properties"]
        for permission in template.of_type("AWS::Lambda::Permission").values()
        if template.logical_id("Authorizer/Function") in json.dumps(permission["Properties"])
    ]
    assert permissions and all(p["Principal"] == "apigateway.amazonaws.com" for p in permissions)


def test_a_data_api_stack_names_what_ragline_keys_needs(
    default: Synthesized, nat: Synthesized
) -> None:
    # GIVEN the default configuration (the Data API) THEN the outputs name the cluster
    # and the secret `ragline keys` sends its statements with
    outputs = default.template.to_json()["Outputs"]
    assert outputs["DatabaseClusterArn"]["Value"]["Fn::Join"][1][-1] == {
        "Ref": default.logical_id("Database/Cluster")
    }
    assert outputs["DatabaseSecretArn"]["Value"] == {
        "Ref": default.logical_id("Database/Cluster/Secret/Attachment")
    }
    # GIVEN the functions in the VPC (no Data API) THEN neither: a tunnel is the way in
    assert not {"DatabaseClusterArn", "DatabaseSecretArn"} & set(nat.template.to_json()["Outputs"])
