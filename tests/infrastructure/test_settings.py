"""Deployment settings: parsed from CDK context strings, validated with clear errors."""

from __future__ import annotations

import re

import pytest

from stacks.settings import DeploymentSettings, SettingsError
from tests.infrastructure.synthesis import CDK_CONTEXT


def test_cdk_json_context_is_valid_and_keeps_the_cheap_defaults() -> None:
    # GIVEN the context shipped in cdk.json
    # WHEN it is parsed
    settings = DeploymentSettings.from_context(CDK_CONTEXT)
    # THEN the idle-cost defaults hold: one NAT gateway, Aurora pausing, no GPU endpoint
    assert settings.network == "nat"
    assert settings.nat_gateways == 1
    assert settings.database_min_capacity == 0
    assert not settings.creates_sagemaker_endpoint
    assert settings.waf is False


def test_command_line_strings_are_coerced() -> None:
    # GIVEN values as `cdk deploy -c key=value` delivers them: all strings
    context = {
        "ingest_batch_size": "20",
        "ingest_max_batching_window_seconds": "10",
        "database_max_capacity": "4.5",
        "tracing": "false",
        "llm_fallback": "openai:gpt-4o-mini, extractive",
        "vpc_endpoint_services": "secretsmanager,bedrock-runtime",
    }
    # WHEN they are parsed
    settings = DeploymentSettings.from_context(context)
    # THEN numbers, booleans and lists come out typed
    assert settings.ingest_batch_size == 20
    assert settings.database_max_capacity == 4.5
    assert settings.tracing is False
    assert settings.llm_fallback == ("openai:gpt-4o-mini", "extractive")
    assert settings.vpc_endpoint_services == ("secretsmanager", "bedrock-runtime")


def test_a_blank_value_switches_an_option_back_to_its_default() -> None:
    # GIVEN `-c sagemaker_model_id=` (empty)
    settings = DeploymentSettings.from_context({"sagemaker_model_id": ""})
    # THEN no endpoint is created
    assert settings.sagemaker_model_id is None


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"netwrok": "isolated"}, "did you mean network"),
        ({"network": "public"}, "network"),
        ({"llm": "minilm"}, "unknown provider 'minilm'"),
        ({"embeddings": "bedrock"}, "needs a model or endpoint name"),
        ({"database_min_capacity": "0.3"}, "steps of 0.5 ACU"),
        ({"database_min_capacity": "4", "database_max_capacity": "2"}, "database_max_capacity"),
        ({"log_retention_days": "10"}, "CloudWatch Logs accepts only"),
        ({"network": "isolated", "llm": "openai:gpt-4o-mini"}, "needs the internet"),
        (
            {"network": "isolated", "vpc_endpoint_services": "secretsmanager"},
            "needs the VPC endpoints ['bedrock-runtime']",
        ),
        ({"vpc_endpoint_services": "dynamodb"}, "unknown ['dynamodb']"),
        ({"ingest_concurrency": "1"}, "ingest_concurrency"),
        ({"query_timeout_seconds": "60"}, "query_timeout_seconds"),
    ],
)
def test_invalid_settings_fail_with_a_message_naming_the_problem(
    context: dict[str, str], message: str
) -> None:
    # GIVEN an invalid context WHEN parsed THEN SettingsError names the key and the problem
    with pytest.raises(SettingsError, match=re.escape(message)):
        DeploymentSettings.from_context(context)


def test_keys_of_cdk_itself_are_not_mistaken_for_typos() -> None:
    # GIVEN CDK's own context keys (feature flags, lookups, CLI options)
    context = {
        "@aws-cdk/aws-iam:minimizePolicies": True,
        "availability-zones:account=123456789012:region=us-east-1": ["us-east-1a"],
        "aws:cdk:enable-path-metadata": True,
    }
    # WHEN parsed THEN they are ignored
    assert DeploymentSettings.from_context(context).network == "nat"
