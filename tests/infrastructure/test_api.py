"""The REST API: routes, API keys, usage plan, access logs, request validation, outputs."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft4Validator
from pydantic import BaseModel, ValidationError
from ragline.schemas import QueryRequest, RetrieveRequest

from tests.infrastructure.synthesis import CDK_CONTEXT, Synthesized

REPOSITORY = Path(__file__).resolve().parents[2]

ROUTES = {
    ("POST", "/query"),
    ("POST", "/retrieve"),
    ("POST", "/feedback"),
    ("GET", "/documents"),
    ("GET", "/documents/{id}"),
    ("DELETE", "/documents/{id}"),
    ("GET", "/health"),
    ("GET", "/swagger"),
    # the review queue (stacks/reviews.py)
    ("GET", "/reviews"),
    ("GET", "/reviews/{id}"),
    *(
        ("POST", f"/reviews/{{id}}/{action}")
        for action in ("claim", "approve", "correct", "reject")
    ),
}
OPEN_ROUTES = {("GET", "/health"), ("GET", "/swagger")}


def _path(synthesized: Synthesized, resource_id: dict[str, Any]) -> str:
    """``/documents/{id}`` from a method's ResourceId, walking the parents."""
    if "Fn::GetAtt" in resource_id:  # the root resource
        return ""
    resource = synthesized.resources[resource_id["Ref"]]["Properties"]
    return f"{_path(synthesized, resource['ParentId'])}/{resource['PathPart']}"


def _methods(synthesized: Synthesized) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (
            method["Properties"]["HttpMethod"],
            _path(synthesized, method["Properties"]["ResourceId"]),
        ): method["Properties"]
        for method in synthesized.of_type("AWS::ApiGateway::Method").values()
    }


def test_every_route_goes_to_the_query_function(nat: Synthesized) -> None:
    # GIVEN the API WHEN synthesized
    methods = _methods(nat)
    query = nat.logical_id("Query/Function")
    # THEN it has exactly the query handler's routes, each a Lambda proxy integration
    assert set(methods) == ROUTES
    for method in methods.values():
        integration = method["Integration"]
        assert integration["Type"] == "AWS_PROXY"
        assert query in json.dumps(integration["Uri"])


def test_api_keys_are_required_except_for_health_and_swagger(nat: Synthesized) -> None:
    # GIVEN the methods WHEN synthesized
    for route, method in _methods(nat).items():
        # THEN every data route needs an API key; the open ones serve no document data
        assert method["ApiKeyRequired"] is (route not in OPEN_ROUTES), route


def test_usage_plan_throttles_and_caps_each_key(nat: Synthesized) -> None:
    # GIVEN the usage plan WHEN synthesized
    # THEN it throttles (rate + burst), has a daily quota, covers the stage, owns the key
    nat.template.has_resource_properties(
        "AWS::ApiGateway::UsagePlan",
        {
            "Throttle": {
                "RateLimit": CDK_CONTEXT["api_throttle_rate"],
                "BurstLimit": CDK_CONTEXT["api_throttle_burst"],
            },
            "Quota": {"Limit": CDK_CONTEXT["api_quota_per_day"], "Period": "DAY"},
            "ApiStages": [
                {
                    "ApiId": {"Ref": nat.logical_id("Api/RestApi")},
                    "Stage": {"Ref": nat.logical_id("Api/RestApi/DeploymentStage.v1")},
                }
            ],
        },
    )
    nat.template.resource_count_is("AWS::ApiGateway::ApiKey", 1)
    nat.template.has_resource_properties("AWS::ApiGateway::UsagePlanKey", {"KeyType": "API_KEY"})


def test_stage_writes_access_logs_and_throttles(nat: Synthesized) -> None:
    # GIVEN the stage WHEN synthesized
    stage = nat.resources[nat.logical_id("Api/RestApi/DeploymentStage.v1")]["Properties"]
    # THEN access logs go to the API's log group, in JSON with the error fields
    settings = stage["AccessLogSetting"]
    assert {"Ref": nat.logical_id("Api/AccessLogs")} in settings["DestinationArn"]["Fn::Join"][1]
    log_format = json.loads(settings["Format"])
    assert {"requestId", "status", "latencyMs", "validationError", "apiKeyId"} <= set(log_format)
    # AND execution errors are logged to a group with a retention, created first
    (method_settings,) = stage["MethodSettings"]
    assert method_settings["LoggingLevel"] == "ERROR"
    assert method_settings["DataTraceEnabled"] is False
    stage_resource = nat.resources[nat.logical_id("Api/RestApi/DeploymentStage.v1")]
    assert nat.logical_id("Api/ExecutionLogs") in stage_resource["DependsOn"]
    # AND API Gateway's account-level logging role outlives the stack (other APIs use it)
    nat.template.has_resource("AWS::ApiGateway::Account", {"DeletionPolicy": "Retain"})
    nat.template.has_resource(
        "AWS::IAM::Role",
        {
            "DeletionPolicy": "Retain",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Statement": [
                        {
                            "Action": "sts:AssumeRole",
                            "Effect": "Allow",
                            "Principal": {"Service": "apigateway.amazonaws.com"},
                        }
                    ],
                    "Version": "2012-10-17",
                }
            },
        },
    )
    # AND the stage itself throttles unkeyed routes too
    assert method_settings["ThrottlingRateLimit"] == CDK_CONTEXT["api_throttle_rate"]
    assert method_settings["ThrottlingBurstLimit"] == CDK_CONTEXT["api_throttle_burst"]
    nat.template.has_resource_properties(
        "AWS::Logs::LogGroup",
        {"RetentionInDays": 30},
    )


def _request_models(synthesized: Synthesized) -> dict[tuple[str, str], dict[str, Any]]:
    """The JSON schema model API Gateway checks each POST route's body against."""
    models = {
        logical_id: model["Properties"]["Schema"]
        for logical_id, model in synthesized.of_type("AWS::ApiGateway::Model").items()
    }
    return {
        route: models[method["RequestModels"]["application/json"]["Ref"]]
        for route, method in _methods(synthesized).items()
        if "RequestModels" in method
    }


def test_request_bodies_are_validated_against_draft4_models(nat: Synthesized) -> None:
    # GIVEN the POST routes WHEN synthesized
    methods = _methods(nat)
    validators = nat.of_type("AWS::ApiGateway::RequestValidator")
    models = _request_models(nat)
    assert set(models) == {
        ("POST", "/query"),
        ("POST", "/retrieve"),
        ("POST", "/feedback"),
        ("POST", "/reviews/{id}/correct"),
        ("POST", "/reviews/{id}/reject"),
    }
    for route, schema in models.items():
        # THEN a validator checks the body against a valid draft-4 JSON schema
        validator = validators[methods[route]["RequestValidatorId"]["Ref"]]["Properties"]
        assert validator["ValidateRequestBody"] is True
        Draft4Validator.check_schema(schema)
        assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
        # AND every reference stays inside the model and none is circular (API Gateway
        # resolves #/definitions/...; a model may not refer to itself)
        definitions = schema.get("definitions", {})
        for name, definition in definitions.items():
            assert f'"#/definitions/{name}"' not in json.dumps(definition), name
        for ref in re.findall(r'"\$ref": "([^"]+)"', json.dumps(schema)):
            assert ref.removeprefix("#/definitions/") in definitions, ref
        # AND the model is well under API Gateway's 400 KB
        assert len(json.dumps(schema)) < 100_000
    # AND the question is bounded by max_question_chars, as the handler bounds it
    assert models[("POST", "/query")]["properties"]["question"]["maxLength"] == 2000
    assert models[("POST", "/retrieve")]["properties"]["query"]["maxLength"] == 2000
    # AND the document routes require their path parameter
    assert methods[("GET", "/documents/{id}")]["RequestParameters"] == {
        "method.request.path.id": True
    }


def _documented_bodies() -> list[tuple[str, dict[str, Any]]]:
    """Every request body the README and docs/ show for /query and /retrieve: the
    ```json blocks and the bodies of `curl -d`, by route (question: /query, query:
    /retrieve)."""
    bodies = []
    for page in (REPOSITORY / "README.md", *sorted((REPOSITORY / "docs").glob("*.md"))):
        text = page.read_text()
        blocks = re.findall(r"```json\n(.*?)```", text, re.DOTALL)
        blocks += re.findall(r"-d '(\{.*?\})'", text, re.DOTALL)
        for block in blocks:
            body = json.loads(block)
            if isinstance(body, dict) and {"question", "query"} & set(body):
                bodies.append(("/query" if "question" in body else "/retrieve", body))
    return bodies


# One filter per operator of the README's table, and the deepest nesting it allows.
_KEY: dict[str, Any] = {"key": "team"}
OPERATOR_FILTERS = [
    {"eq": {**_KEY, "value": "search"}},
    {"ne": {**_KEY, "value": 3}},
    {"in": {**_KEY, "value": ["search", 2024, True]}},
    {"nin": {**_KEY, "value": ["legal"]}},
    {"gt": {**_KEY, "value": 2.5}},
    {"gte": {"key": "published", "value": "2024-01-01"}},
    {"lt": {"key": "published", "value": "2024-05-01T09:30Z"}},
    {"lte": {"key": "published", "value": "2024-02-29T23:59:59.5+02:00"}},
    {"exists": _KEY},
    {"and": [{"eq": {**_KEY, "value": "a"}}, {"not": {"exists": {"key": "draft"}}}]},
    {"or": [{"in": {**_KEY, "value": ["a", "b"]}}, {"nin": {"key": "x", "value": [1]}}]},
    {"not": {"or": [{"and": [{"not": {"and": [{"eq": {**_KEY, "value": 1}}]}}]}]}},
]
# Bodies the handler refuses, and why; the gateway must refuse them too.
INVALID_BODIES = [
    ("/query", {"question": "q", "colour": "red"}),  # unknown field
    ("/query", {"question": ""}),
    ("/query", {"question": "q", "top_k": "5"}),
    ("/query", {"question": "q", "top_k": 5.5}),
    ("/query", {"question": "q", "collection": "a/b"}),
    ("/retrieve", {"query": "q", "mode": "fuzzy"}),
    ("/retrieve", {"query": "q", "filter": {"like": {**_KEY, "value": "a"}}}),
    ("/retrieve", {"query": "q", "filter": {"eq": {**_KEY, "value": "a"}, "ne": _KEY}}),
    ("/retrieve", {"query": "q", "filter": {"eq": {**_KEY, "value": None}}}),
    ("/retrieve", {"query": "q", "filter": {"eq": {**_KEY, "value": "a" * 257}}}),
    ("/retrieve", {"query": "q", "filter": {"in": {**_KEY, "value": []}}}),
    ("/retrieve", {"query": "q", "filter": {"gte": {**_KEY, "value": "2023-02-29"}}}),
    ("/retrieve", {"query": "q", "filter": {"gte": {**_KEY, "value": "May 1st"}}}),
    ("/retrieve", {"query": "q", "filter": {"and": []}}),
    ("/retrieve", {"query": "q", "filter": {"exists": {"key": "-a"}}}),
    # seven levels of and / or / not: one more than the grammar allows
    ("/retrieve", {"query": "q", "filter": functools.reduce(
        lambda inner, _: {"not": inner}, range(7), {"exists": _KEY})}),
]  # fmt: skip


def test_every_documented_request_passes_the_gateway_and_the_handler(nat: Synthesized) -> None:
    # GIVEN the request models API Gateway checks, and the bodies the docs show
    models = _request_models(nat)
    documented = _documented_bodies()
    assert any("filter" in body for _, body in documented)  # the README's filter example
    examples = documented + [
        (path, {field: "refund policy", "filter": where})
        for where in OPERATOR_FILTERS
        for path, field in (("/query", "question"), ("/retrieve", "query"))
    ]
    handler_models: dict[str, type[BaseModel]] = {
        "/query": QueryRequest,
        "/retrieve": RetrieveRequest,
    }
    for path, body in examples:
        # WHEN each is checked as the deployed API checks it
        errors = [e.message for e in Draft4Validator(models[("POST", path)]).iter_errors(body)]
        # THEN API Gateway lets it through, and the handler accepts it
        assert errors == [], (path, body, errors)
        handler_models[path].model_validate(body)


@pytest.mark.parametrize(("path", "body"), INVALID_BODIES)
def test_the_gateway_refuses_what_the_handler_refuses(
    nat: Synthesized, path: str, body: dict[str, Any]
) -> None:
    # GIVEN a body the handler refuses
    model: type[BaseModel] = QueryRequest if path == "/query" else RetrieveRequest
    with pytest.raises(ValidationError):
        model.model_validate(body)
    # WHEN API Gateway checks it THEN it is refused before the function runs
    assert not Draft4Validator(_request_models(nat)[("POST", path)]).is_valid(body)


def test_invalid_bodies_get_the_handlers_error_shape(nat: Synthesized) -> None:
    # GIVEN the gateway response for a body that fails validation WHEN synthesized
    # THEN it answers 400 with {"message", "statusCode"} like the query handler
    nat.template.has_resource_properties(
        "AWS::ApiGateway::GatewayResponse",
        {"ResponseType": "BAD_REQUEST_BODY", "StatusCode": "400"},
    )
    (response,) = [
        response
        for response in nat.of_type("AWS::ApiGateway::GatewayResponse").values()
        if response["Properties"]["ResponseType"] == "BAD_REQUEST_BODY"
    ]
    template = response["Properties"]["ResponseTemplates"]["application/json"]
    assert '"statusCode": 400' in template and "validationErrorString" in template


def test_outputs_name_the_url_and_the_bucket(nat: Synthesized) -> None:
    # GIVEN the stack outputs WHEN synthesized
    outputs = nat.template.to_json()["Outputs"]
    # THEN a user finds the API URL and the bucket to upload to
    assert {"ApiUrl", "BucketName"} <= set(outputs)
    assert outputs["BucketName"]["Value"] == {"Ref": nat.logical_id("Ingestion/Documents")}
    # AND no API Gateway key: clients send ragline keys (`ragline keys create`), and the
    # usage plans' keys are identifiers the authorizer names, never handed out
    assert "ApiKeyId" not in outputs
    assert "execute-api" in json.dumps(outputs["ApiUrl"]["Value"])


def test_no_web_acl_unless_asked(nat: Synthesized, openai: Synthesized) -> None:
    # GIVEN the default settings THEN no WAF (it costs about $7/month idle)
    nat.template.resource_count_is("AWS::WAFv2::WebACL", 0)
    # GIVEN waf=true THEN a web ACL blocks bodies over the byte limit and is attached
    openai.template.has_resource_properties(
        "AWS::WAFv2::WebACL",
        {
            "Scope": "REGIONAL",
            "AssociationConfig": {
                "RequestBody": {"API_GATEWAY": {"DefaultSizeInspectionLimit": "KB_32"}}
            },
        },
    )
    (acl,) = openai.of_type("AWS::WAFv2::WebACL").values()
    size_rule = next(r for r in acl["Properties"]["Rules"] if r["Name"] == "BodyTooLarge")
    constraint = size_rule["Statement"]["SizeConstraintStatement"]
    assert constraint["Size"] == 32 * 1024 and constraint["ComparisonOperator"] == "GT"
    assert constraint["FieldToMatch"]["Body"]["OversizeHandling"] == "MATCH"
    assert size_rule["Action"] == {"Block": {}}
    openai.template.resource_count_is("AWS::WAFv2::WebACLAssociation", 1)
