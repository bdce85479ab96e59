"""The REST API: routes, API keys, usage plan, access logs, request validation, outputs."""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft4Validator
from pydantic import BaseModel, ValidationError
from ragline.schemas import ChatCompletionRequest, QueryRequest, RetrieveRequest

from tests.infrastructure.synthesis import CDK_CONTEXT, Synthesized

REPOSITORY = Path(__file__).resolve().parents[2]

ROUTES = {
    ("POST", "/query"),
    ("POST", "/query/stream"),
    ("POST", "/retrieve"),
    ("POST", "/feedback"),
    ("GET", "/documents"),
    ("GET", "/documents/{id}"),
    ("DELETE", "/documents/{id}"),
    ("GET", "/health"),
    ("GET", "/swagger"),
    ("POST", "/v1/chat/completions"),
    ("GET", "/v1/models"),
    # the review queue (stacks/reviews.py)
    ("GET", "/reviews"),
    ("GET", "/reviews/{id}"),
    *(
        ("POST", f"/reviews/{{id}}/{action}")
        for action in ("claim", "approve", "correct", "reject")
    ),
}
# The OpenAI-compatible door's routes: the key as Authorization: Bearer (stacks/api.py).
OPENAI_ROUTES = {("POST", "/v1/chat/completions"), ("GET", "/v1/models")}
OPEN_ROUTES = {("GET", "/health"), ("GET", "/swagger")}
STREAMED = ("POST", "/query/stream")
CHAT = ("POST", "/v1/chat/completions")
# The routes through the STREAM integration to the streaming function (stacks/api.py).
STREAMED_ROUTES = {STREAMED, CHAT}


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
    for route, method in methods.items():
        integration = method["Integration"]
        assert integration["Type"] == "AWS_PROXY"
        if route not in STREAMED_ROUTES:  # the streamed answers have a function of their own
            assert query in json.dumps(integration["Uri"])


def test_streamed_answers_go_through_a_stream_integration_to_their_own_function(
    nat: Synthesized,
) -> None:
    # GIVEN the API and its functions WHEN synthesized
    methods = _methods(nat)
    functions = nat.of_type("AWS::Lambda::Function")
    buffered = functions[nat.logical_id("Query/Function")]["Properties"]
    streaming = functions[nat.logical_id("QueryStream/Function")]["Properties"]
    stream_id = nat.logical_id("QueryStream/Function")
    # THEN POST /query/stream and POST /v1/chat/completions are proxy integrations in
    # STREAM mode, invoked with InvokeWithResponseStream, kept open up to the streaming
    # function's timeout
    for route in STREAMED_ROUTES:
        integration = methods[route]["Integration"]
        assert integration["Type"] == "AWS_PROXY"
        assert integration["ResponseTransferMode"] == "STREAM"
        uri = json.dumps(integration["Uri"])
        assert stream_id in uri and nat.logical_id("Query/Function") not in uri
        assert "2021-11-15/functions/" in uri and "/response-streaming-invocations" in uri
        assert integration["TimeoutInMillis"] == streaming["Timeout"] * 1000 == 300_000
    # AND every other route stays buffered, on the function that stops within 29 s
    for route, method in methods.items():
        if route not in STREAMED_ROUTES:
            assert method["Integration"].get("ResponseTransferMode", "BUFFERED") == "BUFFERED"
            assert "response-streaming-invocations" not in json.dumps(method["Integration"])
    assert buffered["Timeout"] <= 29
    # AND the streaming function is the query code, its stream_handler run by ragline's
    # runtime loop (the exec wrapper shipped beside the handler)
    assert streaming["Handler"] == "handler.stream_handler"
    assert buffered["Handler"] == "handler.lambda_handler"
    variables = streaming["Environment"]["Variables"]
    assert variables["AWS_LAMBDA_EXEC_WRAPPER"] == "/var/task/streaming-runtime"
    assert os.access(REPOSITORY / "functions" / "query" / "streaming-runtime", os.X_OK)
    assert streaming["Code"] == buffered["Code"] and streaming["Layers"] == buffered["Layers"]
    # AND it reads the same settings as the buffered function, the wrapper aside
    same = {k: v for k, v in variables.items() if k != "AWS_LAMBDA_EXEC_WRAPPER"}
    assert same == buffered["Environment"]["Variables"]

    # AND API Gateway may invoke it on those routes (and the buffered function no longer
    # on the chat route), and they need a key like /query
    def permitted(function_id: str) -> str:
        return json.dumps(
            [
                p["Properties"]["SourceArn"]
                for p in nat.of_type("AWS::Lambda::Permission").values()
                if function_id in json.dumps(p["Properties"]["FunctionName"])
            ]
        )

    assert "/POST/query/stream" in permitted(stream_id)
    assert "/POST/v1/chat/completions" in permitted(stream_id)
    assert "/POST/v1/chat/completions" not in permitted(nat.logical_id("Query/Function"))
    assert all(methods[route]["ApiKeyRequired"] is True for route in STREAMED_ROUTES)


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
        ("POST", "/query/stream"),
        ("POST", "/retrieve"),
        ("POST", "/feedback"),
        ("POST", "/v1/chat/completions"),
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
    assert models[("POST", "/query/stream")] == models[("POST", "/query")]
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


def test_the_chat_route_takes_what_openai_clients_send(nat: Synthesized) -> None:
    # GIVEN the chat route's request model as API Gateway checks it
    validator = Draft4Validator(_request_models(nat)[("POST", "/v1/chat/completions")])
    sdk_body = {
        "model": "ragline",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "How many vacation days?"}]},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.2,  # fields ragline ignores pass, as an OpenAI server lets them
        "user": "u-1",
    }
    # THEN a body as an OpenAI SDK sends it passes, and so does the handler's check
    assert list(validator.iter_errors(sdk_body)) == []
    ChatCompletionRequest.model_validate(sdk_body)
    # AND bodies the handler refuses are refused at the gateway too
    for refused in (
        {"model": "ragline", "messages": []},
        {"model": "ragline"},
        {"model": "ragline", "messages": [{"role": "robot", "content": "hi"}]},
        {"model": "ragline", "messages": [{"role": "user", "content": "hi"}], "n": 2},
    ):
        assert not validator.is_valid(refused), refused
        with pytest.raises(ValidationError):
            ChatCompletionRequest.model_validate(refused)


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
