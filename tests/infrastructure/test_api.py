"""The REST API: routes, API keys, usage plan, access logs, request validation, outputs."""

from __future__ import annotations

import json
from typing import Any

from tests.infrastructure.synthesis import CDK_CONTEXT, Synthesized

ROUTES = {
    ("POST", "/query"),
    ("POST", "/retrieve"),
    ("POST", "/feedback"),
    ("GET", "/documents"),
    ("GET", "/documents/{id}"),
    ("DELETE", "/documents/{id}"),
    ("GET", "/health"),
    ("GET", "/swagger"),
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


def test_request_bodies_are_validated_and_bounded(nat: Synthesized) -> None:
    # GIVEN the POST routes WHEN synthesized
    methods = _methods(nat)
    validators = nat.of_type("AWS::ApiGateway::RequestValidator")
    models = {
        logical_id: model["Properties"]
        for logical_id, model in nat.of_type("AWS::ApiGateway::Model").items()
    }
    for route, field in ((("POST", "/query"), "question"), (("POST", "/retrieve"), "query")):
        method = methods[route]
        # THEN a validator checks the body against a JSON schema model
        validator = validators[method["RequestValidatorId"]["Ref"]]["Properties"]
        assert validator["ValidateRequestBody"] is True
        model_id = method["RequestModels"]["application/json"]["Ref"]
        schema = models[model_id]["Schema"]
        # AND the question is bounded by max_question_chars, every other string by the
        # body limit, and objects/arrays in size and depth
        assert schema["properties"][field]["maxLength"] == 2000
        assert schema["maxProperties"] <= 32
        assert _deepest_string_bound(schema["additionalProperties"]) == 32 * 1024
        assert _max_depth(schema) <= 4
    feedback = methods[("POST", "/feedback")]
    assert feedback["RequestModels"]["application/json"]["Ref"] in models
    # AND the document routes require their path parameter
    assert methods[("GET", "/documents/{id}")]["RequestParameters"] == {
        "method.request.path.id": True
    }


def test_invalid_bodies_get_the_handlers_error_shape(nat: Synthesized) -> None:
    # GIVEN the gateway response for a body that fails validation WHEN synthesized
    # THEN it answers 400 with {"message", "statusCode"} like the query handler
    nat.template.has_resource_properties(
        "AWS::ApiGateway::GatewayResponse",
        {"ResponseType": "BAD_REQUEST_BODY", "StatusCode": "400"},
    )
    (response,) = nat.of_type("AWS::ApiGateway::GatewayResponse").values()
    template = response["Properties"]["ResponseTemplates"]["application/json"]
    assert '"statusCode": 400' in template and "validationErrorString" in template


def test_outputs_name_the_url_the_bucket_and_the_key(nat: Synthesized) -> None:
    # GIVEN the stack outputs WHEN synthesized
    outputs = nat.template.to_json()["Outputs"]
    # THEN a user finds the API URL, the bucket to upload to and the API key id
    assert {"ApiUrl", "BucketName", "ApiKeyId"} <= set(outputs)
    assert outputs["BucketName"]["Value"] == {"Ref": nat.logical_id("Ingestion/Documents")}
    assert outputs["ApiKeyId"]["Value"] == {"Ref": nat.logical_id("Api/RestApi/ApiKey")}
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


def _deepest_string_bound(schema: dict[str, Any]) -> int:
    bounds = [schema.get("maxLength", 0)]
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            bounds.append(_deepest_string_bound(schema[key]))
    return max(bounds)


def _max_depth(schema: dict[str, Any]) -> int:
    children = [
        schema[key]
        for key in ("items", "additionalProperties")
        if isinstance(schema.get(key), dict)
    ]
    children += list(schema.get("properties", {}).values())
    return 1 + max((_max_depth(child) for child in children), default=0)
