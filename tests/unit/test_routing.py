"""Routing profiles: the file format, references to settings, and the router."""

from __future__ import annotations

from pathlib import Path

import pytest
from ragline.answer.routing import Router, load_profiles, parse_profiles, resolve_llm
from ragline.config import Settings
from ragline.errors import ConfigurationError, InvalidRequestError
from ragline.llm import ModelChain

from tests.support.models import ScriptedModel

SETTINGS = Settings(llm="fake:small")


def specs(chain: ModelChain) -> tuple[str, ...]:
    """The chain's models as ``provider:model`` strings, in the order they are tried."""
    return tuple(model.spec for model in chain.models)


def test_the_packaged_profiles() -> None:
    # WHEN the packaged file is loaded with nothing set
    profiles = load_profiles(SETTINGS)
    # THEN three answer profiles and the follow-ups' rewriter route to RAGLINE_LLM with
    # their own rules
    assert sorted(profiles) == ["condense", "critical", "reasoning", "simple"]
    assert {p.llm for p in profiles.values()} == {"fake:small"}
    condense = profiles["condense"]
    assert (condense.task, condense.prompt) == ("condense", "condense@v1")
    assert {p.task for n, p in profiles.items() if n != "condense"} == {"answer"}
    simple, reasoning, critical = (profiles[n] for n in ("simple", "reasoning", "critical"))
    assert (simple.prompt, simple.min_score, simple.review) == ("answer@v2", None, False)
    assert (reasoning.prompt, reasoning.top_k) == ("answer-steps@v2", 8)
    assert critical.prompt == "answer-strict@v2" and critical.top_k == 10
    assert critical.min_score == 0.3 and critical.require_citations and critical.review


def test_profile_models_follow_the_environment() -> None:
    environ = {"RAGLINE_LLM": "fake:small", "RAGLINE_REASONING_LLM": "fake:large"}
    profiles = load_profiles(Settings.from_env(environ))
    assert profiles["reasoning"].llm == "fake:large"
    assert profiles["simple"].llm == profiles["critical"].llm == "fake:small"


def test_profile_models_are_settings() -> None:
    # GIVEN the profile models as settings, with nothing in the environment
    settings = Settings(llm="fake:small", reasoning_llm="fake:large", critical_llm="fake:strict")
    # WHEN the packaged profiles are loaded
    profiles = load_profiles(settings)
    # THEN @reasoning_llm and @critical_llm resolve to the settings
    assert profiles["reasoning"].llm == "fake:large"
    assert profiles["critical"].llm == "fake:strict"
    assert profiles["simple"].llm == "fake:small"


@pytest.mark.parametrize(
    ("value", "environ", "expected"),
    [
        ("@llm", {"RAGLINE_LLM": "openai:gpt-4o"}, "openai:gpt-4o"),  # the setting
        ("@llm", {}, "extractive"),
        ("", {"RAGLINE_LLM": "fake:small"}, "fake:small"),  # empty: RAGLINE_LLM
        ("bedrock:model:0", {"RAGLINE_REASONING_LLM": "openai:o3"}, "bedrock:model:0"),
        ("@reasoning_llm", {"RAGLINE_REASONING_LLM": "openai:o3"}, "openai:o3"),
        ("@reasoning_llm", {"RAGLINE_REASONING_LLM": "  ", "RAGLINE_LLM": "fake:small"},
         "fake:small"),  # blank is unset: RAGLINE_LLM
        ("sagemaker:llm-1", {}, "sagemaker:llm-1"),
    ],
)  # fmt: skip
def test_references_are_resolved(value: str, environ: dict[str, str], expected: str) -> None:
    # GIVEN settings read from this environment
    settings = Settings.from_env(environ)
    # WHEN a profile's llm is resolved
    # THEN @<setting> is that setting (RAGLINE_LLM when unset), anything else is literal
    assert resolve_llm(value, settings) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("${RAGLINE_REASONING_LLM}",
         'no longer read environment variables; write llm = "@reasoning_llm"'),
        ("${RAGLINE_LLM}", 'write llm = "@llm"'),
        ("${BIG_MODEL:-bedrock:model:0}", 'write llm = "bedrock:model:0", or a setting: "@llm"'),
        ("sagemaker:${ENDPOINT}", 'write the provider:model itself, or a setting: "@llm"'),
        ("@big_model", "names no model setting; known: llm, reasoning_llm, critical_llm"),
        ("@database_url", "names no model setting"),
    ],
)  # fmt: skip
def test_environment_references_fail_saying_what_to_write(value: str, message: str) -> None:
    # GIVEN a profile file written for the ${NAME} expansion, or naming no model setting
    text = f'[profiles.deep]\nllm = "{value}"\n'
    # WHEN it is parsed, THEN the cold start fails naming the profile and the fix
    with pytest.raises(ConfigurationError, match="profile 'deep'") as raised:
        parse_profiles(text, "p.toml", SETTINGS)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[profiles.fast]\ntopk = 3", "unknown key 'topk'; known: description, hold, llm"),
        ('[profiles.fast]\ntop_k = "3"', "top_k has the wrong type"),
        ("[profiles.fast]\nreview = 1", "review has the wrong type"),
        ("[profiles.fast]\ntop_k = 500", "top_k must be 1..50"),
        ("[profiles.fast]\nmin_score = 1.5", "min_score is a cosine similarity"),
        ("[profiles.Fast]\ntop_k = 3", "names are lowercase"),
        ("[other]\nx = 1", "no [profiles.<name>] tables"),
        ("[profiles.fast", "invalid TOML"),
    ],
)
def test_bad_profile_files_name_the_problem(table: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("[", r"\[").replace(".", r"\.")):
        parse_profiles(table, "p.toml", SETTINGS)


def test_the_router_builds_each_model_once_with_the_fallback_chain(tmp_path: Path) -> None:
    # GIVEN two profiles sharing a model, and a fallback that is also a primary
    (tmp_path / "p.toml").write_text(
        '[profiles.simple]\nllm = "fake:small"\n\n'
        '[profiles.deep]\nllm = "fake:large"\nprompt = "answer-steps@v1"\n'
    )
    settings = Settings(profiles_file=tmp_path / "p.toml", llm_fallback=("fake:small", "fake:b"))
    models = {
        spec: ScriptedModel(spec, default="x") for spec in ("fake:small", "fake:large", "fake:b")
    }
    # WHEN the router is built
    router = Router.from_settings(settings, models=models)
    # THEN each route's chain is its model then the fallbacks, without repeats
    assert specs(router.route("simple").chain) == ("fake:small", "fake:b")
    assert specs(router.route("deep").chain) == ("fake:large", "fake:small", "fake:b")
    assert router.route("deep").chain.models[1] is router.route("simple").chain.primary
    assert router.route(None) is router.route("simple")
    assert router.route("deep").prompt.ref == "answer-steps@v1"
    with pytest.raises(InvalidRequestError, match="unknown profile 'x'; known: deep, simple"):
        router.route("x")


def test_a_missing_profile_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="RAGLINE_PROFILES_FILE"):
        load_profiles(Settings(profiles_file=tmp_path / "nope.toml"))


def test_the_condense_profile_is_the_routers_rewriter_not_a_route() -> None:
    # GIVEN RAGLINE_CONDENSE_LLM set to a cheaper model than RAGLINE_LLM
    settings = Settings(llm="fake:large", condense_llm="fake:cheap")
    models = {spec: ScriptedModel(spec, default="x") for spec in ("fake:large", "fake:cheap")}
    # WHEN the router is built from the packaged profiles
    router = Router.from_settings(settings, models=models)
    # THEN the condense profile rewrites with the cheap model and its own template
    assert router.condenser is not None
    assert specs(router.condenser.chain) == ("fake:cheap",)
    assert router.condenser.prompt.ref == "condense@v1"
    # AND a request cannot name it as its answer profile
    assert "condense" not in router.routes
    with pytest.raises(InvalidRequestError, match="unknown profile 'condense'"):
        router.route("condense")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[profiles.x]\ntask = "summarize"', "task must be one of answer, condense"),
        (
            '[profiles.a]\ntask = "condense"\n[profiles.b]\ntask = "condense"',
            "one profile may condense follow-ups; a, b",
        ),
    ],
)
def test_bad_tasks_name_the_problem(table: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_profiles(table, "p.toml", SETTINGS)


def test_a_condense_template_must_take_the_question(tmp_path: Path) -> None:
    # GIVEN a condense profile whose template is an answer template (question, context)
    (tmp_path / "p.toml").write_text(
        '[profiles.simple]\nllm = "fake:small"\n\n'
        '[profiles.rewrite]\ntask = "condense"\nprompt = "answer@v2"\n'
    )
    settings = Settings(profiles_file=tmp_path / "p.toml", llm="fake:small")
    models = {"fake:small": ScriptedModel("fake:small", default="x")}
    # WHEN the router is built THEN the cold start names the template's wrong variables
    with pytest.raises(ConfigurationError, match="must declare question, and may declare"):
        Router.from_settings(settings, models=models)
