"""Settings are validated once; prompt templates are checked when loaded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ragline.config import POWERTOOLS_NAMES, REMOVED, RENAMED, Settings, variable
from ragline.errors import ConfigurationError
from ragline.prompts import load_prompt, parse_template


def test_settings_from_environment() -> None:
    settings = Settings.from_env(
        {
            "RAGLINE_LLM": "openai:gpt-4o-mini",
            "RAGLINE_LLM_FALLBACK": "extractive, bedrock:x",
            "RAGLINE_TOP_K": "7",
            "RAGLINE_DATABASE_URL": "",
        }
    )
    assert settings.llm == "openai:gpt-4o-mini"
    assert settings.llm_fallback == ("extractive", "bedrock:x")
    assert settings.top_k == 7
    assert settings.database_url is None


def test_invalid_settings_name_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="RAGLINE_TOP_K"):
        Settings.from_env({"RAGLINE_TOP_K": "lots"})
    with pytest.raises(ConfigurationError, match="RAGLINE_CHUNK_OVERLAP"):
        Settings.from_env({"RAGLINE_CHUNK_TOKENS": "64", "RAGLINE_CHUNK_OVERLAP": "64"})


def test_every_field_is_read_from_its_variable_by_one_rule() -> None:
    # GIVEN each field's variable (RAGLINE_<FIELD>, Powertools' names for its two settings)
    # set to a value other than the default that the field accepts
    chosen = {
        "database_driver": "data-api", "data_dir": "/srv/ragline", "llm_fallback": "a:x,b:y",
        "sagemaker_payload": "tgi", "profiles_file": "/p.toml", "prompts_dir": "/prompts",
        "keyword_scorer": "sql",
        "prices_file": "/prices.json", "reranker_url": "http://tei:80", "fusion": "rrf",
        "fusion_vector_weight": "0.25", "index_build_memory_mb": "256", "chunk_overlap": "41",
        "embedding_dimensions": "256", "log_questions": "true", "tracing": "true",
        "max_top_k": "40", "top_k": "6", "hnsw_ef_construction": "200", "onnx_threads": "3",
        "usage_plan_keys": "acme=usage-key-a,*=usage-key-b", "api_auth": "iam",
        "iam_principals": '{"arn:aws:iam::123456789012:role/etl": {"tenant": "acme", '
                          '"scopes": ["read"]}}',
        "review_topic_arn": "arn:aws:sns:eu-west-1:123456789012:reviews",
    }  # fmt: skip
    environ = {}
    for field, info in Settings.model_fields.items():
        default = info.default
        value = chosen.get(field)
        if value is None:
            if isinstance(default, bool):
                value = str(not default).lower()
            elif isinstance(default, int | float):
                value = str(default + 1)
            else:
                value = f"{field}-value"
        environ[variable(field)] = value
    # WHEN the settings are read
    settings = Settings.from_env(environ)
    # THEN every field took its variable's value, not its default
    fields = Settings.model_fields.items()
    assert [f for f, info in fields if getattr(settings, f) == info.default] == []
    assert variable("llm_timeout_seconds") == "RAGLINE_LLM_TIMEOUT_SECONDS"
    assert variable("metrics_namespace") == "POWERTOOLS_METRICS_NAMESPACE"
    assert (settings.metrics_namespace, settings.service_name) == (
        "metrics_namespace-value",
        "service_name-value",
    )


@pytest.mark.parametrize(("old", "new"), sorted({**RENAMED, **POWERTOOLS_NAMES}.items()))
def test_a_renamed_variable_fails_naming_the_new_one(old: str, new: str) -> None:
    # GIVEN a variable set under a name ragline no longer reads (the new one set or not)
    # WHEN the settings are read THEN the cold start fails naming the variable to set
    for environ in ({old: "10"}, {old: "10", new: "10"}):
        with pytest.raises(ConfigurationError, match=f"{old} .*{new}"):
            Settings.from_env(environ)
    assert Settings.from_env({old: " "}) == Settings.from_env({})  # blank is unset


@pytest.mark.parametrize("old", sorted(REMOVED))
def test_a_removed_variable_fails_saying_why(old: str) -> None:
    # GIVEN a variable ragline no longer reads WHEN the settings are read
    # THEN the cold start fails, naming it and what replaced it
    with pytest.raises(ConfigurationError, match=re.escape(f"{old} was removed: {REMOVED[old]}")):
        Settings.from_env({old: "acme"})
    assert Settings.from_env({old: " "}) == Settings.from_env({})  # blank is unset


def test_building_settings_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN variables in the process's environment
    monkeypatch.setenv("RAGLINE_TOP_K", "9")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Elsewhere")
    # WHEN settings are built from values THEN only the values count
    assert Settings(llm="fake:x").top_k == Settings.model_fields["top_k"].default
    assert Settings(metrics_namespace="Mine").metrics_namespace == "Mine"
    assert Settings().with_overrides(top_k=3).metrics_namespace == "Ragline"
    # AND from_env() without a mapping reads the process's environment
    assert (Settings.from_env().top_k, Settings.from_env().metrics_namespace) == (9, "Elsewhere")


@pytest.mark.parametrize("value", ["9", "1001", "many"])
def test_hnsw_ef_search_is_bounded_by_what_pgvector_accepts(value: str) -> None:
    # GIVEN a candidate list size outside 10..1000 (pgvector's own ceiling is 1000)
    # WHEN the settings are read THEN the error names the variable
    with pytest.raises(ConfigurationError, match="RAGLINE_HNSW_EF_SEARCH"):
        Settings.from_env({"RAGLINE_HNSW_EF_SEARCH": value})


def test_hnsw_ef_search_is_read_from_the_environment() -> None:
    # GIVEN the variable set, and unset
    # THEN it is taken as given, and the default is what the recall benchmark chose
    assert Settings.from_env({"RAGLINE_HNSW_EF_SEARCH": "250"}).hnsw_ef_search == 250
    assert Settings.from_env({}).hnsw_ef_search == Settings().hnsw_ef_search


def test_hnsw_build_parameters_are_checked_as_pgvector_would() -> None:
    # GIVEN an ef_construction below twice m, which pgvector refuses to build
    # WHEN the settings are read THEN the error names the variable before any index exists
    with pytest.raises(ConfigurationError, match="RAGLINE_HNSW_EF_CONSTRUCTION"):
        Settings.from_env({"RAGLINE_HNSW_M": "32", "RAGLINE_HNSW_EF_CONSTRUCTION": "40"})
    with pytest.raises(ConfigurationError, match="RAGLINE_HNSW_M"):
        Settings.from_env({"RAGLINE_HNSW_M": "1"})
    settings = Settings.from_env({"RAGLINE_HNSW_M": "24", "RAGLINE_HNSW_EF_CONSTRUCTION": "200"})
    assert (settings.hnsw_m, settings.hnsw_ef_construction) == (24, 200)


def test_the_client_keyword_scorer_needs_psycopg() -> None:
    # GIVEN the Data API driver, whose responses stop at 1 MiB (a term's postings may not)
    data_api = {"RAGLINE_DATABASE_DRIVER": "data-api"}
    # WHEN the client scorer is asked for THEN the error names the variable
    with pytest.raises(ConfigurationError, match="RAGLINE_KEYWORD_SCORER"):
        Settings.from_env({**data_api, "RAGLINE_KEYWORD_SCORER": "client"})
    with pytest.raises(ConfigurationError, match="RAGLINE_KEYWORD_SCORER"):
        Settings.from_env({"RAGLINE_KEYWORD_SCORER": "numpy"})
    # AND "auto" or "sql" are fine on either driver
    chosen = Settings.from_env({**data_api, "RAGLINE_KEYWORD_SCORER": "auto"})
    assert chosen.keyword_scorer == "auto"
    assert Settings.from_env({"RAGLINE_KEYWORD_SCORER": "client"}).keyword_scorer == "client"


def test_packaged_answer_template_renders() -> None:
    template = load_prompt("answer@v1")
    assert template.ref == "answer@v1"
    rendered = template.render(question="Q?", context="[1] text")
    assert "Question: Q?" in rendered.user
    assert "[n]" in rendered.system and template.abstain in rendered.system
    assert load_prompt("answer").version >= "v1"


def test_undeclared_variable_fails_at_load_naming_it() -> None:
    text = 'id="x"\nversion="v1"\nvariables=["question"]\nsystem="s"\nuser="{question} {contxt}"'
    with pytest.raises(ConfigurationError, match="'contxt' is used but not declared"):
        parse_template(text, "x/v1.toml")


def test_unused_variable_fails_at_load_naming_it() -> None:
    text = 'id="x"\nversion="v1"\nvariables=["question","context"]\nsystem="s"\nuser="{question}"'
    with pytest.raises(ConfigurationError, match="'context' is declared but never used"):
        parse_template(text, "x/v1.toml")


def test_prompts_dir_overrides_and_checks_path(tmp_path: Path) -> None:
    (tmp_path / "answer").mkdir()
    (tmp_path / "answer" / "v9.toml").write_text(
        'id="answer"\nversion="v9"\nvariables=["question","context"]\n'
        'system="Be brief."\nuser="{context}\\n{question}"\n'
    )
    assert load_prompt("answer", tmp_path).ref == "answer@v9"
    with pytest.raises(ConfigurationError, match="unknown prompt template 'nope'"):
        load_prompt("nope", tmp_path)


def test_usage_plan_keys_name_each_tenants_plan_and_the_shared_one() -> None:
    # GIVEN the authorizer's usage plan keys: one tenant's own and the shared one
    settings = Settings.from_env({"RAGLINE_USAGE_PLAN_KEYS": " acme=key-a , *=key-shared "})
    # THEN a tenant with a plan gets its key, any other the shared one
    assert settings.usage_plan_key("acme") == "key-a"
    assert settings.usage_plan_key("globex") == "key-shared"
    # AND without the variable no tenant has a usage identifier (no plans to feed)
    assert Settings.from_env({}).usage_plan_key("acme") is None
    # AND a pair without "=" fails the cold start, naming the variable
    with pytest.raises(ConfigurationError, match="RAGLINE_USAGE_PLAN_KEYS"):
        Settings.from_env({"RAGLINE_USAGE_PLAN_KEYS": "acme"})
