"""POST /query with real model providers: the openai SDK against a loopback server,
SageMaker through moto, the fallback chain, routing profiles and templates at cold start."""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from moto import mock_aws
from ragline.config import Settings, get_settings
from ragline.errors import ConfigurationError
from ragline.ingest import Ingestor
from ragline.prompts import load_prompt
from ragline.store import get_store

from tests.support.openai_server import CHAT, OpenAICompatibleServer
from tests.support.sagemaker import endpoint_payloads, queue_endpoint_results

HANDBOOK = {
    "s3://docs/handbook/leave.md": b"""# Leave policy

## Vacation
Employees get 25 vacation days each year. Unused vacation days expire on 31 March.

## Sick leave
Sick leave needs a doctor's note after three consecutive days.
""",
    "s3://docs/handbook/expenses.md": b"""# Expenses

## Meals
Meals on business trips are reimbursed up to 60 euros per day with receipts.

## Travel
Book trains for trips under four hours; flights need a manager's approval.
""",
}
QUESTION = "How many vacation days do employees get?"
ANSWER = "Employees get 25 vacation days each year [1]."
ABSTAIN = "The documents do not answer this."

Post = Callable[..., tuple[int, dict[str, Any]]]


@pytest.fixture(scope="module")
def seeded(database_url: str) -> str:
    ingestor = Ingestor.from_settings(Settings(database_url=database_url))
    for source, data in HANDBOOK.items():
        ingestor.ingest_bytes(source, data)
    get_store.cache_clear()
    return database_url


@pytest.fixture
def server() -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer(reply=ANSWER) as running:
        yield running


@pytest.fixture
def start(
    seeded: str, server: OpenAICompatibleServer, cold_start: Callable[..., ModuleType]
) -> Callable[..., ModuleType]:
    """Cold-start the query handler against the loopback server, with more settings."""

    def begin(**environment: str) -> ModuleType:
        defaults = {
            "RAGLINE_DATABASE_URL": seeded,
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_API_KEY": "test",
            "RAGLINE_LLM_MAX_RETRIES": "1",
        }
        return cold_start("query", **{**defaults, **environment})

    return begin


@pytest.fixture
def post(event: Callable[[str], dict[str, Any]], lambda_context: Any) -> Post:
    """POST a JSON body to /query through a handler, as API Gateway would."""

    def send(api: ModuleType, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        request = copy.deepcopy(event("api_query"))
        request["body"] = json.dumps(body)
        response = api.lambda_handler(request, lambda_context)
        return response["statusCode"], json.loads(response["body"])

    return send


# --- the openai provider through POST /query ------------------------------------------------


def test_openai_answer_usage_and_model_come_from_the_server(
    start: Callable[..., ModuleType], post: Post, server: OpenAICompatibleServer
) -> None:
    # GIVEN the query Lambda configured for an OpenAI-compatible server
    api = start(RAGLINE_LLM="openai:gpt-4o-mini")
    # WHEN a question is posted
    status, body = post(api, {"question": QUESTION})
    # THEN the answer, the token counts and the model are the server's
    assert status == 200, body
    assert body["answer"] == ANSWER and body["abstained"] is False
    assert body["model"] == {"provider": "openai", "name": "gpt-4o-mini", "prompt": "answer@v2"}
    usage = body["usage"]
    assert (usage["input_tokens"], usage["output_tokens"], usage["cached_input_tokens"]) == (
        412,
        23,
        256,
    )
    assert usage["estimated"] is False
    assert (body["profile"], body["fallback"], body["needs_review"]) == ("simple", False, False)
    assert body["citations"][0]["source"] == "s3://docs/handbook/leave.md"
    # AND the server received what the answer@v2 template rendered
    (request,) = server.received(CHAT)
    system, user = (m["content"] for m in request.body["messages"])
    template = load_prompt("answer@v2")
    assert system == template.render(question="-", context="-").system
    assert f"Question: {QUESTION}" in user
    cited = body["citations"][0]
    assert f"[1] {cited['title']} — {cited['section']}\n{cited['text']}" in user
    assert "[2] " in user  # the other retrieved passages are numbered too
    assert request.body["model"] == "gpt-4o-mini"


def test_a_failing_model_falls_back_to_the_next(
    start: Callable[..., ModuleType], post: Post, server: OpenAICompatibleServer
) -> None:
    # GIVEN a primary model the server fails with 500, and a healthy fallback
    server.fail_model("gpt-broken", 500)
    api = start(RAGLINE_LLM="openai:gpt-broken", RAGLINE_LLM_FALLBACK="openai:gpt-4o-mini")
    # WHEN a question is posted
    status, body = post(api, {"question": QUESTION})
    # THEN the fallback answered, and the response names it and says so
    assert status == 200, body
    assert body["answer"] == ANSWER and body["fallback"] is True
    assert body["model"]["name"] == "gpt-4o-mini"
    # AND the primary was tried once more before giving up (RAGLINE_LLM_MAX_RETRIES=1)
    asked = [r.body["model"] for r in server.received(CHAT)]
    assert asked == ["gpt-broken", "gpt-broken", "gpt-4o-mini"]


def test_a_failing_openai_model_falls_back_to_a_sagemaker_endpoint(
    start: Callable[..., ModuleType], post: Post, server: OpenAICompatibleServer
) -> None:
    server.fail_model("gpt-broken", 503)
    with mock_aws():
        reply = {"choices": [{"message": {"content": "25 days [1]."}}],
                 "usage": {"prompt_tokens": 90, "completion_tokens": 4}}  # fmt: skip
        queue_endpoint_results(reply)
        api = start(RAGLINE_LLM="openai:gpt-broken", RAGLINE_LLM_FALLBACK="sagemaker:llm-endpoint")
        status, body = post(api, {"question": QUESTION})
    assert status == 200, body
    assert body["model"] == {"provider": "sagemaker", "name": "llm-endpoint",
                             "prompt": "answer@v2"}  # fmt: skip
    assert body["fallback"] is True and body["usage"]["input_tokens"] == 90


def test_a_model_the_provider_does_not_know_is_not_reported_as_a_transient_outage(
    start: Callable[..., ModuleType], post: Post, server: OpenAICompatibleServer
) -> None:
    # GIVEN a model name the provider answers 404 for (a misconfiguration, not an outage)
    server.fail_model("gpt-gone", 404)
    api = start(RAGLINE_LLM="openai:gpt-gone")
    # WHEN a question is posted
    status, body = post(api, {"question": QUESTION})
    # THEN the message says a retry will not help, gives the provider's 404 and what to
    # check, and does not ask the caller to retry later; the passages still come back
    assert status == 502
    message = body["message"]
    assert "retrying will not help" in message and "HTTP 404" in message, message
    assert "openai:gpt-gone" in message and "RAGLINE_LLM" in message
    assert "retry later" not in message
    assert body["citations"]


def test_when_every_model_fails_the_caller_gets_503_with_the_sources(
    start: Callable[..., ModuleType], post: Post, server: OpenAICompatibleServer
) -> None:
    # GIVEN two models that both fail: one 500, one with a bad key (401)
    server.fail_model("gpt-broken", 500)
    server.fail_model("gpt-unauthorized", 401)
    api = start(RAGLINE_LLM="openai:gpt-broken", RAGLINE_LLM_FALLBACK="openai:gpt-unauthorized")
    # WHEN a question is posted
    status, body = post(api, {"question": QUESTION})
    # THEN 503 with a readable message, and the retrieved passages as citations
    assert status == 503
    assert "no model could answer" in body["message"]
    assert "openai:gpt-broken, openai:gpt-unauthorized" in body["message"]
    assert "Traceback" not in json.dumps(body)
    sources = {c["source"] for c in body["citations"]}
    assert "s3://docs/handbook/leave.md" in sources
    assert [c["n"] for c in body["citations"]] == list(range(1, len(body["citations"]) + 1))
    # AND the 401 was not retried, the 500 was
    asked = [r.body["model"] for r in server.received(CHAT)]
    assert asked == ["gpt-broken", "gpt-broken", "gpt-unauthorized"]


# --- SageMaker through POST /query ------------------------------------------------------------


def test_a_model_scaled_to_zero_gets_503_retry_after_and_the_sources(
    start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN the chat model on an inference component that has no copy running, and SageMaker
    # answering as it does then (through botocore's Stubber)
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    stub = Stubber(client)
    stub.add_client_error(
        "invoke_endpoint",
        "ValidationError",
        "Inference Component has no capacity to process this request. ApplicationAutoScaling "
        "may be in-progress (if configured) or try to increase the capacity by invoking "
        "UpdateInferenceComponentRuntimeConfig API.",
        400,
    )
    monkeypatch.setattr("ragline.llm.sagemaker.aws_client", lambda *_: client)
    api = start(
        RAGLINE_LLM="sagemaker:ragline-llm", RAGLINE_SAGEMAKER_INFERENCE_COMPONENT="ragline-llm-ic"
    )
    # WHEN a question is posted
    request = copy.deepcopy(event("api_query"))
    request["body"] = json.dumps({"question": QUESTION})
    with stub:
        response = api.lambda_handler(request, lambda_context)
    # THEN 503 says the model is warming up and when to retry, with the retrieved sources
    body = json.loads(response["body"])
    assert response["statusCode"] == 503, body
    assert "warming up" in body["message"]
    headers = {
        name: values[-1] for name, values in (response.get("multiValueHeaders") or {}).items()
    }
    headers.update(response.get("headers") or {})
    assert headers["Retry-After"] == "120"
    assert "s3://docs/handbook/leave.md" in {c["source"] for c in body["citations"]}
    stub.assert_no_pending_responses()


@pytest.mark.parametrize("style", ["messages", "tgi"])
def test_sagemaker_endpoint_answers_through_post_query(
    start: Callable[..., ModuleType], post: Post, style: str
) -> None:
    replies = {
        "messages": {"choices": [{"message": {"content": ANSWER}}],
                     "usage": {"prompt_tokens": 300, "completion_tokens": 11}},
        "tgi": [{"generated_text": ANSWER, "details": {"generated_tokens": 11}}],
    }  # fmt: skip
    with mock_aws():
        # GIVEN a SageMaker endpoint (moto) speaking the configured payload style
        queue_endpoint_results(replies[style])
        api = start(RAGLINE_LLM="sagemaker:llm-endpoint", RAGLINE_SAGEMAKER_PAYLOAD=style)
        # WHEN a question is posted
        status, body = post(api, {"question": QUESTION})
        payloads = endpoint_payloads()
    # THEN the endpoint's completion is the answer, with its counts where it gave them
    assert status == 200, body
    assert body["answer"] == ANSWER
    assert body["model"] == {"provider": "sagemaker", "name": "llm-endpoint",
                             "prompt": "answer@v2"}  # fmt: skip
    assert body["usage"]["output_tokens"] == 11
    assert body["usage"]["estimated"] is (style == "tgi")
    # AND the endpoint got the rendered prompt in its own shape
    (payload,) = payloads
    prompt = payload["messages"][1]["content"] if style == "messages" else payload["inputs"]
    assert f"Question: {QUESTION}" in prompt and "[1] " in prompt


# --- routing profiles -------------------------------------------------------------------------


def test_an_unknown_profile_is_a_400_listing_the_known_ones(
    start: Callable[..., ModuleType], post: Post
) -> None:
    api = start()
    status, body = post(api, {"question": QUESTION, "profile": "turbo"})
    assert status == 400
    assert body["message"] == "unknown profile 'turbo'; known: critical, reasoning, simple"


def test_reasoning_uses_its_model_and_the_step_by_step_template(
    start: Callable[..., ModuleType], post: Post, server: OpenAICompatibleServer
) -> None:
    # GIVEN a small default model and a larger one for reasoning, by configuration only
    api = start(RAGLINE_LLM="openai:gpt-4o-mini", RAGLINE_REASONING_LLM="openai:gpt-4o")
    # WHEN a question asks for the reasoning profile
    status, body = post(api, {"question": QUESTION, "profile": "reasoning"})
    # THEN the larger model answered from the step-by-step template, over more passages
    assert status == 200, body
    assert body["profile"] == "reasoning"
    assert body["model"] == {"provider": "openai", "name": "gpt-4o", "prompt": "answer-steps@v2"}
    (request,) = server.received(CHAT)
    assert request.body["model"] == "gpt-4o"
    system, user = (m["content"] for m in request.body["messages"])
    assert 'write "Steps:"' in system and "step by step" in user
    # AND a question without a profile still goes to the small model
    post(api, {"question": QUESTION})
    assert server.received(CHAT)[-1].body["model"] == "gpt-4o-mini"


def test_critical_keeps_only_similar_passages_and_flags_review(
    start: Callable[..., ModuleType], post: Post, server: OpenAICompatibleServer
) -> None:
    api = start(RAGLINE_LLM="openai:gpt-4o-mini")
    # WHEN a question the handbook answers goes to the critical profile
    status, body = post(api, {"question": QUESTION, "profile": "critical"})
    # THEN only passages above the similarity bar reached the model, with the strict template
    assert status == 200, body
    assert (body["profile"], body["needs_review"], body["abstained"]) == ("critical", True, False)
    assert body["model"]["prompt"] == "answer-strict@v2"
    user = server.received(CHAT)[0].body["messages"][1]["content"]
    assert "[1] " in user and "25 vacation days" in user
    assert "[2] " not in user and "60 euros" not in user
    assert [c["source"] for c in body["citations"]] == ["s3://docs/handbook/leave.md"]


def test_critical_abstains_without_a_model_call_when_nothing_clears_the_bar(
    start: Callable[..., ModuleType], post: Post, server: OpenAICompatibleServer
) -> None:
    api = start(RAGLINE_LLM="openai:gpt-4o-mini")
    status, body = post(api, {"question": "Which Kubernetes version runs production?",
                              "profile": "critical"})  # fmt: skip
    assert status == 200, body
    assert body["abstained"] is True and body["answer"] == ABSTAIN
    assert body["citations"] == [] and body["needs_review"] is True
    assert body["usage"]["input_tokens"] == 0 and server.received(CHAT) == []


@pytest.mark.parametrize("reply", ["Employees get 25 vacation days.", "They get 25 days [7]."])
def test_critical_turns_an_uncited_answer_into_an_abstention(
    start: Callable[..., ModuleType], post: Post, server: OpenAICompatibleServer, reply: str
) -> None:
    # GIVEN a model that answers without citing a passage it was given
    server.reply = reply
    api = start(RAGLINE_LLM="openai:gpt-4o-mini")
    # WHEN the critical profile serves the question
    status, body = post(api, {"question": QUESTION, "profile": "critical"})
    # THEN the unverifiable answer is withheld, but the call is still accounted for
    assert status == 200, body
    assert body["abstained"] is True and body["answer"] == ABSTAIN and body["citations"] == []
    assert body["needs_review"] is True and body["usage"]["input_tokens"] == 412
    # AND the simple profile lets the same uncited answer through
    status, body = post(api, {"question": QUESTION})
    assert body["answer"] == reply and body["abstained"] is False


def test_the_default_profile_is_configurable(start: Callable[..., ModuleType], post: Post) -> None:
    api = start(RAGLINE_DEFAULT_PROFILE="critical")
    status, body = post(api, {"question": QUESTION})
    assert status == 200 and body["profile"] == "critical" and body["needs_review"] is True


# --- templates and profiles are checked at cold start ------------------------------------------


def write_profiles(path: Path, prompt: str) -> Path:
    file = path / "profiles.toml"
    file.write_text(
        f'[profiles.simple]\nprompt = "{prompt}"\n\n[profiles.custom]\nprompt = "{prompt}"\n'
    )
    return file


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ('variables = ["question", "context"]\nuser = "{question} {contxt} {context}"',
         "variable 'contxt' is used but not declared"),
        ('variables = ["question", "context", "audience"]\n'
         'user = "{question} {context} {audience}"',
         "declares variable 'audience'; answers supply only question, context"),
    ],
)  # fmt: skip
def test_a_bad_template_fails_the_cold_start_naming_the_variable(
    start: Callable[..., ModuleType], tmp_path: Path, template: str, message: str
) -> None:
    # GIVEN a prompts dir with a broken template, and a profile that references it
    (tmp_path / "answer-custom").mkdir()
    (tmp_path / "answer-custom" / "v1.toml").write_text(
        f'id = "answer-custom"\nversion = "v1"\nsystem = "Be exact."\n{template}\n'
    )
    profiles = write_profiles(tmp_path, "answer-custom@v1")
    # WHEN the query Lambda starts THEN it fails, naming the variable
    with pytest.raises(ConfigurationError, match=message):
        start(RAGLINE_PROMPTS_DIR=str(tmp_path), RAGLINE_PROFILES_FILE=str(profiles))


def test_a_custom_template_serves_when_it_is_good(
    start: Callable[..., ModuleType], post: Post, server: OpenAICompatibleServer, tmp_path: Path
) -> None:
    (tmp_path / "answer-custom").mkdir()
    (tmp_path / "answer-custom" / "v2.toml").write_text(
        'id = "answer-custom"\nversion = "v2"\nvariables = ["question", "context"]\n'
        'system = "House rules."\nuser = "Q: {question}\\n{context}"\n'
    )
    profiles = write_profiles(tmp_path, "answer-custom@v2")
    api = start(RAGLINE_LLM="openai:gpt-4o-mini", RAGLINE_PROMPTS_DIR=str(tmp_path),
                RAGLINE_PROFILES_FILE=str(profiles))  # fmt: skip
    status, body = post(api, {"question": QUESTION, "profile": "custom"})
    assert status == 200 and body["model"]["prompt"] == "answer-custom@v2"
    system, user = (m["content"] for m in server.received(CHAT)[0].body["messages"])
    # (the context is fenced passages whatever the template: a custom one is as safe)
    assert system == "House rules." and user.startswith(f'Q: {QUESTION}\n<passage n="1" ')
    assert '">\n[1] ' in user


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"RAGLINE_DEFAULT_PROFILE": "fast"}, "'fast' is not a profile; known: critical"),
        ({"RAGLINE_REASONING_LLM": "gemini:pro"}, "unknown model provider 'gemini'"),
    ],
)
def test_bad_routing_configuration_fails_the_cold_start(
    start: Callable[..., ModuleType], environment: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        start(**environment)


# --- embeddings of another size than the collection's ------------------------------------------


def test_query_with_openai_embeddings_on_a_hash_collection_is_a_409(
    start: Callable[..., ModuleType], post: Post, server: OpenAICompatibleServer
) -> None:
    # GIVEN the handbook embedded with the hash model (384 dimensions)
    # WHEN the Lambda is configured for OpenAI embeddings of 256 dimensions
    api = start(RAGLINE_EMBEDDINGS="openai:text-embedding-3-small",
                RAGLINE_EMBEDDING_DIMENSIONS="256")  # fmt: skip
    status, body = post(api, {"question": QUESTION})
    # THEN the mismatch is a clear conflict, not a meaningless search
    assert status == 409
    assert "holds 384-dimensional vectors from 'hash'" in body["message"]
    assert "'openai:text-embedding-3-small' (256 dimensions)" in body["message"]


def test_the_answer_log_line_names_profile_model_and_prompt(
    start: Callable[..., ModuleType], post: Post, caplog: pytest.LogCaptureFixture
) -> None:
    api = start(RAGLINE_LLM="openai:gpt-4o-mini")
    with caplog.at_level("INFO", logger="ragline.answer"):
        post(api, {"question": QUESTION, "profile": "reasoning"})
    (record,) = [r for r in caplog.records if r.name == "ragline.answer"]
    assert record.getMessage() == (
        "answered with profile reasoning, model openai:gpt-4o-mini, prompt answer-steps@v2"
    )
    assert (record.profile, record.prompt, record.fallback) == (  # type: ignore[attr-defined]
        "reasoning",
        "answer-steps@v2",
        False,
    )


def test_a_model_the_provider_does_not_know_is_a_502_naming_it(
    start: Callable[..., ModuleType], post: Post, server: OpenAICompatibleServer
) -> None:
    # GIVEN a primary and a fallback model the server does not know (HTTP 404)
    server.fail_model("gpt-typo", 404)
    server.fail_model("gpt-gone", 404)
    api = start(RAGLINE_LLM="openai:gpt-typo", RAGLINE_LLM_FALLBACK="openai:gpt-gone")
    # WHEN a question is posted
    status, body = post(api, {"question": QUESTION})
    # THEN a 502 says the configuration is wrong, not that the service is busy
    assert status == 502, body
    assert "openai:gpt-typo: not found at the provider" in body["message"]
    assert "retrying will not help" in body["message"]
    assert "retry later" not in body["message"]
    # AND the passages retrieved still come back, and no model was asked twice
    assert body["citations"][0]["source"] == "s3://docs/handbook/leave.md"
    assert [r.body["model"] for r in server.received(CHAT)] == ["gpt-typo", "gpt-gone"]


def test_a_missing_model_beside_a_failing_one_is_still_an_outage(
    start: Callable[..., ModuleType], post: Post, server: OpenAICompatibleServer
) -> None:
    # GIVEN a missing primary, and a fallback that is down (500): a retry may reach it
    server.fail_model("gpt-typo", 404)
    server.fail_model("gpt-broken", 500)
    api = start(RAGLINE_LLM="openai:gpt-typo", RAGLINE_LLM_FALLBACK="openai:gpt-broken")
    # WHEN a question is posted THEN 503, naming both
    status, body = post(api, {"question": QUESTION})
    assert status == 503, body
    assert "openai:gpt-typo, openai:gpt-broken" in body["message"]


def test_ragline_ask_json_prints_the_error_as_json(
    seeded: str, server: OpenAICompatibleServer, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:  # fmt: skip
    # GIVEN `ragline ask --json` configured with a model the provider does not know
    server.fail_model("gpt-typo", 404)
    for name, value in {
        "RAGLINE_DATABASE_URL": seeded, "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": "test", "RAGLINE_LLM": "openai:gpt-typo",
        # what `ragline ask` sets for itself, set here so that it ends with the test
        "POWERTOOLS_METRICS_DISABLED": "true",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    from ragline.answer import get_answerer
    from ragline.dev.commands import ask

    monkeypatch.setattr(ask, "use_data_dir", lambda _: None)
    monkeypatch.setattr(ask, "local_embeddings", lambda: None)
    get_answerer.cache_clear()
    get_settings.cache_clear()
    args = argparse.Namespace(
        question=QUESTION, collection=None, top_k=None, profile=None, json=True, data_dir=None
    )
    # WHEN it is asked
    try:
        code = ask.cmd_ask(args)
    finally:
        get_answerer.cache_clear()
        get_settings.cache_clear()
    # THEN it fails, and stdout is the API's error body as JSON
    assert code == 1
    error = json.loads(capsys.readouterr().out)
    assert error["statusCode"] == 502 and "not found at the provider" in error["message"]
    assert error["citations"]
