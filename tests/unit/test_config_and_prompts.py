"""Settings are validated once; prompt templates are checked when loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
from ragline.config import Settings
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
