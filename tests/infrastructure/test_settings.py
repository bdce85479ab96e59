"""Deployment settings: parsed from CDK context strings, validated with clear errors."""

from __future__ import annotations

import re

import pytest
from ragline import embeddings, llm, rerankers

from stacks.settings import (
    EMBEDDING_PROVIDERS,
    LLM_PROVIDERS,
    NOT_IN_LAYER,
    RERANKER_PROVIDERS,
    DeploymentSettings,
    SettingsError,
)
from tests.infrastructure.synthesis import CDK_CONTEXT, Synthesized


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
        # A batch of 20 parses, each up to 30 s, fits in a function of 900 s.
        "ingest_parse_timeout_seconds": "30",
        "ingest_timeout_seconds": "900",
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
        ({"reranker": "cohere:rerank-v3.5"}, "known: none, bedrock, http, sagemaker"),
        ({"reranker": "bedrock"}, "needs a model or endpoint name"),
        ({"reranker": "http:bge-reranker-base"}, "needs reranker_url"),
        ({"reranker_url": "tei.internal:8080"}, "reranker_url"),
        ({"rerank_depth": "0"}, "rerank_depth"),
        (
            {
                "network": "isolated",
                "reranker": "sagemaker:rerank",
                "vpc_endpoint_services": "secretsmanager,bedrock-runtime",
            },
            "needs the VPC endpoints ['sagemaker-runtime']",
        ),
        ({"query_timeout_seconds": "60"}, "query_timeout_seconds"),
        ({"stream_timeout_seconds": "901"}, "stream_timeout_seconds"),
        ({"stream_timeout_seconds": "29"}, "stream_timeout_seconds"),
        ({"hnsw_ef_search": "9"}, "hnsw_ef_search"),
        ({"hnsw_ef_search": "1001"}, "hnsw_ef_search"),
        ({"hnsw_m": "24", "hnsw_ef_construction": "40"}, "at least twice hnsw_m"),
        ({"reconcile_schedule": "every day"}, "reconcile_schedule"),
        ({"reconcile_schedule": "rate(1 fortnight)"}, "reconcile_schedule"),
        (
            {"ingest_parse_timeout_seconds": "60"},
            "a batch of 5 documents that each parse until ingest_parse_timeout_seconds=60",
        ),
        ({"ingest_batch_size": "10"}, "raise ingest_timeout_seconds to 510"),
        ({"ingest_memory_mb": "768"}, "raise ingest_memory_mb to"),
        ({"ingest_parse_memory_mb": "2048"}, "ingest_parse_memory_mb=2048"),
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


def test_the_deployable_providers_are_the_library_registries() -> None:
    # GIVEN the providers the library can build and those the stack accepts
    # THEN they are the same names, less the ones the layer cannot ship
    assert set(EMBEDDING_PROVIDERS) == set(embeddings.PROVIDERS) - NOT_IN_LAYER
    assert set(LLM_PROVIDERS) == set(llm.PROVIDERS) - NOT_IN_LAYER
    assert set(RERANKER_PROVIDERS) == set(rerankers.PROVIDERS)


def test_profile_models_are_checked_and_count_as_configured_models() -> None:
    # GIVEN a reasoning model on OpenAI and a critical one on Bedrock
    settings = DeploymentSettings.from_context(
        {"reasoning_llm": "openai:gpt-4o", "critical_llm": "bedrock:anthropic.claude-v2"}
    )
    # THEN their providers are the stack's to provision (the OpenAI key secret, grants)
    assert settings.profile_llms == ("openai:gpt-4o", "bedrock:anthropic.claude-v2")
    assert settings.uses_openai and {"openai", "bedrock"} <= settings.providers
    # AND an unknown provider or a blank value is handled like `llm`'s
    with pytest.raises(SettingsError, match="unknown provider 'gemini'"):
        DeploymentSettings.from_context({"critical_llm": "gemini:pro"})
    assert DeploymentSettings.from_context({"reasoning_llm": ""}).reasoning_llm is None


def test_reranking_is_off_by_default_and_a_bedrock_one_brings_its_endpoint() -> None:
    # GIVEN no reranker setting THEN reranking is off and no endpoint is added for it
    default = DeploymentSettings.from_context({"network": "isolated"})
    assert default.reranker == "none" and default.reranker_provider is None
    assert "bedrock-agent-runtime" not in default.interface_endpoints
    # WHEN a Bedrock reranker is configured in the isolated mode
    settings = DeploymentSettings.from_context(
        {"network": "isolated", "reranker": "bedrock:cohere.rerank-v3-5:0"}
    )
    # THEN the Rerank API's own endpoint joins the listed ones, once
    assert settings.reranker_provider == "bedrock"
    assert settings.interface_endpoints == (*default.interface_endpoints, "bedrock-agent-runtime")
    # AND an http reranker with its URL needs no endpoint of AWS
    served = DeploymentSettings.from_context(
        {"reranker": "http:bge-reranker-base", "reranker_url": "http://tei.internal:8080"}
    )
    assert served.interface_endpoints == served.vpc_endpoint_services


def test_hnsw_ef_search_reaches_only_the_query_function(
    openai: Synthesized, nat: Synthesized
) -> None:
    # GIVEN `-c hnsw_ef_search=300` (the openai configuration), and no such key (nat)
    def variables(synthesized: Synthesized, function: str) -> dict[str, str]:
        resource = synthesized.resources[synthesized.logical_id(function)]
        return dict(resource["Properties"]["Environment"]["Variables"])

    # THEN the query function searches with it
    assert variables(openai, "Query/Function")["RAGLINE_HNSW_EF_SEARCH"] == "300"
    # AND the ingest function, which never searches, is not told
    assert "RAGLINE_HNSW_EF_SEARCH" not in variables(openai, "Ingestion/Ingest/Function")
    # AND unset, the library's default applies
    assert "RAGLINE_HNSW_EF_SEARCH" not in variables(nat, "Query/Function")


def test_hnsw_build_parameters_reach_every_function_that_may_create_the_index(
    openai: Synthesized, nat: Synthesized
) -> None:
    # GIVEN `-c hnsw_ef_construction=200` (the openai configuration), and nothing (nat)
    for function in ("Query/Function", "Ingestion/Ingest/Function"):
        resource = openai.resources[openai.logical_id(function)]
        variables = resource["Properties"]["Environment"]["Variables"]
        # THEN both the ingest and the query function build the index with it
        assert variables["RAGLINE_HNSW_EF_CONSTRUCTION"] == "200"
        # AND m, unset, is left to the library's default
        assert "RAGLINE_HNSW_M" not in variables
    resource = nat.resources[nat.logical_id("Ingestion/Ingest/Function")]
    assert "RAGLINE_HNSW_EF_CONSTRUCTION" not in resource["Properties"]["Environment"]["Variables"]


def test_the_embeddings_instance_type_reaches_both_functions_that_embed(
    endpoint: Synthesized, nat: Synthesized
) -> None:
    # GIVEN `-c embeddings_instance_type=ml.g5.2xlarge` (endpoint), and no such key (nat)
    for function in ("Query/Function", "Ingestion/Ingest/Function"):
        resource = endpoint.resources[endpoint.logical_id(function)]
        variables = resource["Properties"]["Environment"]["Variables"]
        # THEN the ingest and the query function price a SageMaker embedder's time with it
        assert variables["RAGLINE_EMBEDDINGS_INSTANCE_TYPE"] == "ml.g5.2xlarge"
        resource = nat.resources[nat.logical_id(function)]
        assert (
            "RAGLINE_EMBEDDINGS_INSTANCE_TYPE"
            not in resource["Properties"]["Environment"]["Variables"]
        )
    # AND a value that is not an instance type is refused at synthesis
    with pytest.raises(SettingsError, match="embeddings_instance_type"):
        DeploymentSettings.from_context({"embeddings_instance_type": "g5.xlarge"})


def test_the_endpoint_meter_period_is_minutes_within_an_hour() -> None:
    # GIVEN a GPU endpoint WHEN the meter's period is not set THEN it reads every 5 minutes
    endpoint = {"sagemaker_model_id": "Qwen/Qwen2.5-7B-Instruct"}
    assert DeploymentSettings.from_context(endpoint).endpoint_meter_minutes == 5
    assert (
        DeploymentSettings.from_context(
            {**endpoint, "endpoint_meter_minutes": "15"}
        ).endpoint_meter_minutes
        == 15
    )
    # AND a period EventBridge's rate or a day's sum would not take is refused
    for minutes in ("0", "61"):
        with pytest.raises(SettingsError, match="endpoint_meter_minutes"):
            DeploymentSettings.from_context({**endpoint, "endpoint_meter_minutes": minutes})


def test_sagemaker_api_endpoint_joins_the_isolated_mode_only_with_a_gpu_endpoint() -> None:
    # GIVEN network=isolated without a GPU endpoint THEN SageMaker's API gets no endpoint
    isolated = DeploymentSettings.from_context({"network": "isolated"})
    assert "sagemaker-api" not in isolated.interface_endpoints
    # WHEN the stack deploys one THEN its meter's API endpoint is added, once
    metered = DeploymentSettings.from_context(
        {"network": "isolated", "sagemaker_model_id": "Qwen/Qwen2.5-7B-Instruct"}
    )
    assert metered.interface_endpoints == (*isolated.interface_endpoints, "sagemaker-api")
    listed = DeploymentSettings.from_context(
        {
            "network": "isolated",
            "sagemaker_model_id": "Qwen/Qwen2.5-7B-Instruct",
            "vpc_endpoint_services": "secretsmanager,bedrock-runtime,sagemaker-runtime,"
            "sagemaker-api",
        }
    )
    assert listed.interface_endpoints.count("sagemaker-api") == 1


def test_a_longer_parse_timeout_is_accepted_with_a_timeout_that_covers_the_batch() -> None:
    # GIVEN parses of up to 60 s in batches of 5, in a function of 385 s
    context = {"ingest_parse_timeout_seconds": "60", "ingest_timeout_seconds": "385"}
    # WHEN parsed THEN it is consistent: 5 x (60 + 5) + 60 s for the rest of the batch
    settings = DeploymentSettings.from_context(context)
    assert (settings.ingest_parse_timeout_seconds, settings.ingest_timeout_seconds) == (60, 385)
