"""The API's other ways of identifying callers (``api_auth``: IAM, Cognito) on every route
but /health and /swagger, the query function told how to read them, and the per-tenant
daily cost alarms on the metric the query function emits. cdk-nag and cfn-lint run on
each of these configurations in test_compliance.py (every configuration of synthesis.py).
"""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import pytest
from ragline.api import authentication, caller
from ragline.config import Settings
from ragline.errors import ForbiddenError
from ragline.identity import Identity
from ragline.outcomes import QuerySignals
from ragline.telemetry.metrics import MetricsEmitter

from stacks.settings import DeploymentSettings, SettingsError
from tests.infrastructure.synthesis import (
    IAM_PRINCIPALS,
    TENANT_COST_ALARMS,
    USER_POOL_ARN,
    Synthesized,
)
from tests.infrastructure.test_api import OPEN_ROUTES, ROUTES, _methods
from tests.support.emf import emf_documents


def _query_environment(synthesized: Synthesized) -> dict[str, str]:
    function = synthesized.resources[synthesized.logical_id("Query/Function")]
    variables: dict[str, str] = function["Properties"]["Environment"]["Variables"]
    return variables


def _check_routes(template: Synthesized, authorization: str, authorizer: Any) -> None:
    methods = _methods(template)
    assert set(methods) == ROUTES
    for route, method in methods.items():
        # THEN no route needs a usage-plan key (no key authorizer names the plan)
        assert method["ApiKeyRequired"] is False, route
        if route in OPEN_ROUTES:
            assert method["AuthorizationType"] == "NONE", route
            assert "AuthorizerId" not in method, route
        else:
            # AND every other route has the configured authorization
            assert method["AuthorizationType"] == authorization, route
            assert method.get("AuthorizerId") == authorizer, route


def test_iam_guards_every_route_but_health_and_swagger(synthesized: Any) -> None:
    # GIVEN api_auth=iam WHEN synthesized
    iam: Synthesized = synthesized("iam")
    # THEN the data routes are AWS_IAM, with no authorizer resource at all
    _check_routes(iam, "AWS_IAM", None)
    iam.template.resource_count_is("AWS::ApiGateway::Authorizer", 0)
    # AND no key authorizer function, usage plan or API Gateway key is made
    for resource in ("AWS::ApiGateway::UsagePlan", "AWS::ApiGateway::ApiKey"):
        iam.template.resource_count_is(resource, 0)
    functions = json.dumps(iam.of_type("AWS::Lambda::Function"))
    assert "API keys to tenants" not in functions


def test_the_query_function_maps_the_configured_principals_as_the_context_says(
    synthesized: Any,
) -> None:
    # GIVEN the query function's variables in the IAM configuration
    environment = _query_environment(synthesized("iam"))
    assert environment["RAGLINE_API_AUTH"] == "iam"
    assert json.loads(environment["RAGLINE_IAM_PRINCIPALS"]) == IAM_PRINCIPALS
    # WHEN the function reads them as at cold start (those the template resolves later,
    # such as the database's ARNs, left out)
    literal = {name: value for name, value in environment.items() if isinstance(value, str)}
    auth = authentication(Settings.from_env(literal))
    # THEN a session of the mapped role acts for its tenant with its scopes
    session = "arn:aws:sts::123456789012:assumed-role/etl/nightly"
    event = {"requestContext": {"identity": {"userArn": session}}}
    assert caller(event, auth) == Identity("team-a", frozenset({"query"}))
    # AND the same role name in another account is no one's
    elsewhere = {"requestContext": {"identity": {"userArn": session.replace("1234", "9999")}}}
    with pytest.raises(ForbiddenError, match="mapped to no tenant"):
        caller(elsewhere, auth)


def test_a_created_user_pool_guards_every_route_and_keeps_the_tenant_an_admins(
    synthesized: Any,
) -> None:
    # GIVEN api_auth=cognito without a pool ARN WHEN synthesized
    cognito: Synthesized = synthesized("cognito")
    (authorizer_id, authorizer), *_ = cognito.of_type("AWS::ApiGateway::Authorizer").items()
    # THEN a user pool authorizer on the pool the stack creates guards the data routes
    _check_routes(cognito, "COGNITO_USER_POOLS", {"Ref": authorizer_id})
    (pool_id, pool), *_ = cognito.of_type("AWS::Cognito::UserPool").items()
    properties = authorizer["Properties"]
    assert properties["Type"] == "COGNITO_USER_POOLS"
    assert properties["ProviderARNs"] == [{"Fn::GetAtt": [pool_id, "Arn"]}]
    assert properties["AuthorizerResultTtlInSeconds"] == 0  # authorizer_cache_seconds=0
    # AND the pool admits only users an administrator makes, with MFA, and has the
    # tenant attribute the query function reads (custom:tenant)
    pool = pool["Properties"]
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert pool["MfaConfiguration"] == "ON"
    assert {"AttributeDataType": "String", "Name": "tenant"} in [
        {k: a[k] for k in ("AttributeDataType", "Name")} for a in pool["Schema"]
    ]
    assert _query_environment(cognito)["RAGLINE_TENANT_CLAIM"] == "custom:tenant"
    # AND its app client cannot write that attribute: a user cannot change tenants
    (client,) = cognito.of_type("AWS::Cognito::UserPoolClient").values()
    written = client["Properties"]["WriteAttributes"]
    assert written and not [name for name in written if name.startswith("custom:")]
    assert client["Properties"]["GenerateSecret"] is False
    # AND the outputs say where to make users and sign in
    outputs = cognito.template.to_json()["Outputs"]
    assert outputs["UserPoolId"]["Value"] == {"Ref": pool_id}
    assert "UserPoolClientId" in outputs


def test_an_existing_user_pool_is_used_as_it_is(synthesized: Any) -> None:
    # GIVEN api_auth=cognito with a pool ARN and a claim of its own WHEN synthesized
    pool: Synthesized = synthesized("cognito_pool")
    (authorizer_id, authorizer), *_ = pool.of_type("AWS::ApiGateway::Authorizer").items()
    # THEN the authorizer is on that pool, and no pool is created
    assert authorizer["Properties"]["ProviderARNs"] == [USER_POOL_ARN]
    pool.template.resource_count_is("AWS::Cognito::UserPool", 0)
    assert "UserPoolId" not in pool.template.to_json()["Outputs"]
    _check_routes(pool, "COGNITO_USER_POOLS", {"Ref": authorizer_id})
    # AND the query function reads the tenant from that claim
    environment = _query_environment(pool)
    assert (environment["RAGLINE_API_AUTH"], environment["RAGLINE_TENANT_CLAIM"]) == (
        "cognito", "tenant_id",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("context", "problem"),
    [
        ({"api_auth": "iam"}, "api_auth=iam needs iam_principals"),
        ({"iam_principals": json.dumps(IAM_PRINCIPALS)}, "with api_auth=iam only"),
        (
            {"api_auth": "iam", "iam_principals": '{"etl": {"tenant": "a", "scopes": ["query"]}}'},
            "not principal ARNs",
        ),
        (
            {"api_auth": "iam", "iam_principals": '{"arn:aws:iam::1:role/x": '
             '{"tenant": "a", "scopes": ["sudo"]}}'},
            "unknown scopes",
        ),
        ({"cognito_user_pool_arn": USER_POOL_ARN}, "need api_auth=cognito"),
        ({"api_auth": "cognito", "cognito_tenant_claim": "tenant_id"}, "must be custom:<name>"),
        (
            {"api_auth": "cognito", "tenant_usage_plans": '{"a": {"rate": 1, "burst": 1, '
             '"quota": 1}}'},
            "tenant_usage_plans need api_auth=key",
        ),
        ({"tenant_cost_alarms": '{"Team A": 5}'}, "invalid tenant names"),
        ({"tenant_cost_alarms": '{"team-a": 0}'}, "must be above 0 USD"),
    ],
)  # fmt: skip
def test_inconsistent_auth_settings_are_refused_saying_why(
    context: dict[str, str], problem: str
) -> None:
    with pytest.raises(SettingsError, match=problem):
        DeploymentSettings.from_context(context)


def _emitted_tenant_directive(
    namespace: str, service: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The tenant directive of a query document as the query function writes it, with the
    namespace and service name the stack gives it, and the whole document."""
    signals = QuerySignals(
        provider="bedrock", model="m", prompt="answer@v1", profile="simple", input_tokens=10,
        output_tokens=5, cached_input_tokens=0, embedding_tokens=3, cost_usd=0.002,
        retrieve_ms=1.0, generate_ms=2.0, total_ms=3.0, chunks_retrieved=1, top_score=0.5,
        abstained=False, needs_review=False, fallback=False, tenant="team-a",
    )  # fmt: skip
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        MetricsEmitter(namespace, service).query(signals)
    (document,) = emf_documents(output.getvalue())
    directives = document["_aws"]["CloudWatchMetrics"]
    (tenant_directive,) = [d for d in directives if "Tenant" in json.dumps(d["Dimensions"])]
    return tenant_directive, document


def test_each_tenant_cost_alarm_reads_the_metric_the_query_function_emits(
    synthesized: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    # GIVEN tenant_cost_alarms for two tenants WHEN synthesized
    iam: Synthesized = synthesized("iam")
    environment = _query_environment(iam)
    # AND a query document of team-a as the query function writes it, with the namespace
    # and service the stack gives the function
    directive, document = _emitted_tenant_directive(
        environment["POWERTOOLS_METRICS_NAMESPACE"], environment["POWERTOOLS_SERVICE_NAME"]
    )
    (dimension_names,) = directive["Dimensions"]
    (cost,) = [m["Name"] for m in directive["Metrics"] if m["Name"].startswith("Cost")]
    topic = {"Ref": iam.logical_id("Monitoring/AlarmTopic")}
    for tenant, threshold in TENANT_COST_ALARMS.items():
        alarm = iam.resources[iam.logical_id(f"Monitoring/DailyCost-{tenant}")]["Properties"]
        # THEN each alarm reads that metric, in that namespace, on that dimension set with
        # the tenant's value (as a document of this tenant would carry it)
        assert (alarm["Namespace"], alarm["MetricName"]) == (directive["Namespace"], cost)
        dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        assert sorted(dimensions) == sorted(dimension_names)  # CloudWatch: a set
        assert dimensions == {**{n: document[n] for n in dimension_names}, "Tenant": tenant}
        # AND sums a day against the tenant's threshold, telling the alarm topic
        assert (alarm["Statistic"], alarm["Period"]) == ("Sum", 86400)
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (
            threshold, "GreaterThanThreshold",
        )  # fmt: skip
        assert alarm["AlarmActions"] == [topic] and alarm["OKActions"] == [topic]
    # AND they are the only alarms beyond the default configuration's
    default_alarms = len(synthesized("default").of_type("AWS::CloudWatch::Alarm"))
    assert len(iam.of_type("AWS::CloudWatch::Alarm")) == default_alarms + len(TENANT_COST_ALARMS)
