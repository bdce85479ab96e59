"""Least privilege: each function may do exactly what it does, on exactly what it uses."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infrastructure.synthesis import (
    CRITICAL_ENDPOINT,
    INFERENCE_PROFILE,
    REASONING_MODEL,
    RERANK_MODEL,
    Synthesized,
)

# Actions that have no resource-level permissions, so "*" is the only possible resource.
UNSCOPABLE_ACTIONS = {
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "ecr:GetAuthorizationToken",
    "bedrock:Rerank",
}
TITAN = "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0"
HAIKU = "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0"


def _statements(synthesized: Synthesized, role_path: str) -> list[dict[str, Any]]:
    role = {"Ref": synthesized.logical_id(role_path)}
    return [
        statement
        for policy in synthesized.of_type("AWS::IAM::Policy").values()
        if role in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def _granted(synthesized: Synthesized, role_path: str, action: str) -> list[Any]:
    """Every resource ``action`` is allowed on for the role."""
    resources: list[Any] = []
    for statement in _statements(synthesized, role_path):
        if action in _actions(statement):
            found = statement["Resource"]
            resources.extend(found if isinstance(found, list) else [found])
    return resources


@pytest.mark.parametrize("configuration", ["nat", "isolated", "endpoint", "openai"])
def test_wildcard_resources_only_for_actions_that_cannot_be_scoped(
    configuration: str, synthesized: Any
) -> None:
    # GIVEN every IAM policy of the configuration WHEN synthesized
    for policy in synthesized(configuration).of_type("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            # THEN a "*" resource appears only with actions that have no resource scope
            resources = statement["Resource"]
            if "*" in (resources if isinstance(resources, list) else [resources]):
                assert set(_actions(statement)) <= UNSCOPABLE_ACTIONS, statement
            # AND no action is a service-wide wildcard
            assert not any(action.endswith(":*") for action in _actions(statement)), statement


def test_each_function_writes_only_its_own_log_group(nat: Synthesized) -> None:
    for function in ("Ingestion/Ingest", "Query", "Database/Migrate"):
        # GIVEN the function's role THEN it writes logs to its own group only
        assert _granted(nat, f"{function}/Role", "logs:PutLogEvents") == [
            {"Fn::GetAtt": [nat.logical_id(f"{function}/Logs"), "Arn"]}
        ]
        # AND the function logs there
        function_properties = nat.resources[nat.logical_id(f"{function}/Function")]["Properties"]
        assert function_properties["LoggingConfig"]["LogGroup"] == {
            "Ref": nat.logical_id(f"{function}/Logs")
        }


def test_ingest_reads_documents_and_invokes_only_the_embedding_model(nat: Synthesized) -> None:
    bucket = nat.logical_id("Ingestion/Documents")
    role = "Ingestion/Ingest/Role"
    # GIVEN the ingest role THEN it reads objects of the documents bucket only
    assert _granted(nat, role, "s3:GetObject") == [
        {"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, "/*"]]}
    ]
    assert _granted(nat, role, "s3:ListBucket") == [{"Fn::GetAtt": [bucket, "Arn"]}]
    # AND reads the tags of those objects (a document's metadata), nothing else's
    assert _granted(nat, role, "s3:GetObjectTagging") == [
        {"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, "/*"]]}
    ]
    assert not _granted(nat, role, "s3:PutObject") and not _granted(nat, role, "s3:DeleteObject")
    # AND reads exactly the database secret
    assert _granted(nat, role, "secretsmanager:GetSecretValue") == [
        {"Ref": nat.logical_id("Database/Cluster/Secret/Attachment")}
    ]
    # AND invokes only the embedding model
    assert _granted(nat, role, "bedrock:InvokeModel") == [TITAN]


def test_query_invokes_exactly_the_configured_models_and_touches_no_bucket(
    nat: Synthesized,
) -> None:
    role = "Query/Role"
    # GIVEN the query role THEN it invokes the embedding model and the LLM, nothing else
    assert sorted(_granted(nat, role, "bedrock:InvokeModel")) == [TITAN, HAIKU]
    # AND it has no S3 permission at all
    assert not any(
        action.startswith("s3:")
        for statement in _statements(nat, role)
        for action in _actions(statement)
    )
    assert _granted(nat, role, "secretsmanager:GetSecretValue") == [
        {"Ref": nat.logical_id("Database/Cluster/Secret/Attachment")}
    ]


def test_profile_models_reach_the_query_function_with_their_grants(
    isolated: Synthesized,
) -> None:
    # GIVEN reasoning_llm on Bedrock and critical_llm on a SageMaker endpoint
    query = isolated.resources[isolated.logical_id("Query/Function")]["Properties"]
    variables = query["Environment"]["Variables"]
    # THEN the query function is told which models the profiles use
    assert variables["RAGLINE_REASONING_LLM"] == f"bedrock:{REASONING_MODEL}"
    assert variables["RAGLINE_CRITICAL_LLM"] == f"sagemaker:{CRITICAL_ENDPOINT}"
    # AND its role may invoke them, besides the embedding model and the LLM
    reasoning = f"arn:aws:bedrock:us-east-1::foundation-model/{REASONING_MODEL}"
    granted = _granted(isolated, "Query/Role", "bedrock:InvokeModel")
    assert sorted(granted) == sorted([TITAN, HAIKU, reasoning])
    assert _granted(isolated, "Query/Role", "sagemaker:InvokeEndpoint") == [
        f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{CRITICAL_ENDPOINT}"
    ]
    # AND the ingest function neither knows nor may call them
    ingest = isolated.resources[isolated.logical_id("Ingestion/Ingest/Function")]["Properties"]
    assert "RAGLINE_REASONING_LLM" not in ingest["Environment"]["Variables"]
    assert _granted(isolated, "Ingestion/Ingest/Role", "bedrock:InvokeModel") == [TITAN]


def test_migrate_reads_the_database_secret_and_calls_no_model(nat: Synthesized) -> None:
    actions = {a for s in _statements(nat, "Database/Migrate/Role") for a in _actions(s)}
    assert "secretsmanager:GetSecretValue" in actions
    assert not any(a.startswith(("bedrock:", "sagemaker:", "s3:")) for a in actions)


def test_openai_key_is_a_secret_read_at_run_time(openai: Synthesized) -> None:
    secret = {"Ref": openai.logical_id("OpenAiKey")}
    for function in ("Ingestion/Ingest", "Query"):
        # GIVEN an OpenAI model WHEN synthesized
        properties = openai.resources[openai.logical_id(f"{function}/Function")]["Properties"]
        variables = properties["Environment"]["Variables"]
        # THEN the function gets the secret's ARN, never a key
        assert variables["RAGLINE_OPENAI_SECRET_ARN"] == secret
        assert "OPENAI_API_KEY" not in variables
        # AND its role may read exactly that secret
        assert secret in _granted(openai, f"{function}/Role", "secretsmanager:GetSecretValue")
    # AND the secret's value is generated, not written in the template
    openai.template.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {"Description": "ragline: the OpenAI API key (set the value after deploy)"},
    )


def test_inference_profile_grants_the_profile_and_its_model(openai: Synthesized) -> None:
    # GIVEN a cross-region inference profile as fallback WHEN synthesized
    granted = _granted(openai, "Query/Role", "bedrock:InvokeModel")
    # THEN the query role may invoke the profile and the model it routes to (and the
    # reranking model this configuration also sets)
    foundation = INFERENCE_PROFILE.split(".", 1)[1]
    assert sorted(granted) == [
        f"arn:aws:bedrock:*::foundation-model/{foundation}",
        f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/{INFERENCE_PROFILE}",
        f"arn:aws:bedrock:us-east-1::foundation-model/{RERANK_MODEL}",
    ]
    # AND the ingest role, whose embeddings are OpenAI's, may invoke no Bedrock model
    assert _granted(openai, "Ingestion/Ingest/Role", "bedrock:InvokeModel") == []


def test_tracing_setting_reaches_the_functions_and_their_roles(
    nat: Synthesized, openai: Synthesized
) -> None:
    for synthesized, tracing in ((nat, True), (openai, False)):
        # GIVEN tracing on (the default) or off
        query = synthesized.resources[synthesized.logical_id("Query/Function")]["Properties"]
        # THEN the function's X-Ray mode, the library's setting and the role agree
        assert ("TracingConfig" in query) is tracing
        assert query["Environment"]["Variables"]["RAGLINE_TRACING"] == str(tracing).lower()
        assert bool(_granted(synthesized, "Query/Role", "xray:PutTraceSegments")) is tracing


def test_a_bedrock_reranker_is_granted_only_where_configured(
    nat: Synthesized, openai: Synthesized
) -> None:
    # GIVEN the openai configuration with reranker=bedrock:amazon.rerank-v1:0
    rerank_model = f"arn:aws:bedrock:us-east-1::foundation-model/{RERANK_MODEL}"
    query = openai.resources[openai.logical_id("Query/Function")]["Properties"]
    variables = query["Environment"]["Variables"]
    # THEN the query function is told to rerank, with how many candidates
    assert variables["RAGLINE_RERANKER"] == f"bedrock:{RERANK_MODEL}"
    assert variables["RAGLINE_RERANK_DEPTH"] == "20"
    # AND its role may call the Rerank API (no resource type: "*") and run that one model
    assert _granted(openai, "Query/Role", "bedrock:Rerank") == ["*"]
    assert rerank_model in _granted(openai, "Query/Role", "bedrock:InvokeModel")
    # AND the ingest function may do neither
    assert _granted(openai, "Ingestion/Ingest/Role", "bedrock:Rerank") == []
    assert rerank_model not in _granted(openai, "Ingestion/Ingest/Role", "bedrock:InvokeModel")
    # AND without a reranker (the default) nothing of it is granted or set
    nat_query = nat.resources[nat.logical_id("Query/Function")]["Properties"]
    assert "RAGLINE_RERANKER" not in nat_query["Environment"]["Variables"]
    for role in ("Query/Role", "Ingestion/Ingest/Role", "Database/Migrate/Role"):
        assert _granted(nat, role, "bedrock:Rerank") == []
