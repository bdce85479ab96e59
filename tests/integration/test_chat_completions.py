"""The OpenAI-compatible door, driven by the official openai SDK over real HTTP: the query
handler behind the local gateway as `ragline dev` serves it (its streaming entry point,
the key authorizer reading `Authorization: Bearer`), answering with a loopback
OpenAI-compatible model server."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest
from ragline.config import Settings
from ragline.dev.context import LambdaFunction
from ragline.dev.gateway import ApiGateway
from ragline.dev.stack import key_authorizer
from ragline.ingest import Ingestor
from ragline.store import get_store
from ragline.tenancy import get_keys

from tests.support.openai_server import CHAT, OpenAICompatibleServer

HANDBOOK = {
    "s3://docs/handbook/leave.md": b"# Leave policy\n\n## Vacation\nEmployees get 25 vacation "
    b"days each year. Unused vacation days expire on 31 March.\n",
    "s3://docs/handbook/travel.md": b"# Travel\n\nTrain tickets are booked through the travel "
    b"desk. Taxis are refunded after nine in the evening.\n",
}
QUESTION = "How many vacation days do employees get?"
ANSWER = "Employees get 25 vacation days each year [1]."
REWRITTEN = "When do unused vacation days expire?"
# the loopback server's usage for every call (tests/support/openai_server.py)
PROMPT_TOKENS, COMPLETION_TOKENS, CACHED_TOKENS = 412, 23, 256


def reply(body: dict[str, Any]) -> str:
    """The condense prompt gets a standalone query; every other prompt the answer."""
    system = body["messages"][0]["content"]
    return REWRITTEN if "standalone search query" in system else ANSWER


@pytest.fixture(scope="module")
def seeded(database_url: str) -> str:
    ingestor = Ingestor.from_settings(Settings(database_url=database_url))
    for source, data in HANDBOOK.items():
        ingestor.ingest_bytes(source, data)
    get_store.cache_clear()
    return database_url


@pytest.fixture
def server() -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer(reply=reply) as running:
        yield running


@pytest.fixture
def ragline_url(
    seeded: str, server: OpenAICompatibleServer, cold_start: Callable[..., ModuleType]
) -> Iterator[str]:
    """The query function as `ragline dev` serves it: streaming entry point, gateway, and
    the key authorizer on the store's keys."""
    api = cold_start(
        "query",
        RAGLINE_DATABASE_URL=seeded,
        OPENAI_BASE_URL=server.base_url,
        OPENAI_API_KEY="upstream-key",
        RAGLINE_LLM="openai:gpt-4o-mini",
        RAGLINE_LLM_MAX_RETRIES="0",
    )
    function = LambdaFunction(
        "ragline-query", api.lambda_handler, stream_handler=api.stream_handler
    )
    gateway = ApiGateway(function, port=0, authorizer=key_authorizer)
    try:
        yield gateway.start()
    finally:
        gateway.stop()
        function.close()


@pytest.fixture
def api_key(seeded: str, ragline_url: str) -> str:
    return get_keys(Settings(database_url=seeded)).create("default", name="sdk").key


@pytest.fixture
def client(ragline_url: str, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{ragline_url}/v1", api_key=api_key, max_retries=0)


def test_the_sdk_gets_a_cited_answer_with_the_models_exact_usage(
    client: openai.OpenAI, server: OpenAICompatibleServer
) -> None:
    # WHEN the SDK asks a question of the default model
    completion = client.chat.completions.create(
        model="ragline", messages=[{"role": "user", "content": QUESTION}]
    )
    # THEN it is a chat completion whose text carries the numbered marker
    assert completion.object == "chat.completion" and completion.model == "ragline"
    (choice,) = completion.choices
    assert choice.message.content == ANSWER and choice.finish_reason == "stop"
    # AND the cited passage travels in the extra field the marker numbers
    citations = (completion.model_extra or {})["citations"]
    assert citations[0]["n"] == 1 and citations[0]["source"] == "s3://docs/handbook/leave.md"
    # AND the usage is the model server's own count
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert usage.total_tokens == PROMPT_TOKENS + COMPLETION_TOKENS
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == CACHED_TOKENS
    extras = (completion.model_extra or {})["ragline"]
    assert extras["profile"] == "simple" and extras["cost_usd"] > 0
    assert completion.id == f"chatcmpl-{extras['request_id']}"
    # AND the model was asked once, with the key ragline holds, not the caller's
    (request,) = server.received(CHAT)
    assert request.headers["authorization"] == "Bearer upstream-key"


def test_the_sdk_streams_the_answer_in_chunks_ending_with_the_usage(
    client: openai.OpenAI,
) -> None:
    # WHEN the SDK streams the answer with the usage included
    stream = client.chat.completions.create(
        model="simple",
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    # THEN the first chunk opens the assistant's message and carries the citations
    first = chunks[0]
    assert first.object == "chat.completion.chunk"
    assert first.choices[0].delta.role == "assistant"
    assert (first.model_extra or {})["citations"][0]["source"] == "s3://docs/handbook/leave.md"
    # AND the text deltas make the answer, closed by the finish reason
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finishing] == ["stop"]
    # AND the last chunk has no choices and the model server's exact usage
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
    )
    assert len({c.id for c in chunks}) == 1


def test_earlier_messages_are_the_conversation_and_the_usage_counts_the_rewrite(
    client: openai.OpenAI, server: OpenAICompatibleServer
) -> None:
    # WHEN the SDK sends a follow-up after an earlier exchange (and a system message)
    completion = client.chat.completions.create(
        model="ragline",
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": ANSWER},
            {"role": "user", "content": "And when do they expire?"},
        ],
    )
    # THEN the follow-up was rewritten by the condense profile's model and searched for
    extras = (completion.model_extra or {})["ragline"]
    assert extras["rewritten_query"] == REWRITTEN
    condense, answer = server.received(CHAT)
    assert "And when do they expire?" in condense.body["messages"][-1]["content"]
    # AND the answer model read the earlier turns as messages (the system one left out)
    roles = [m["role"] for m in answer.body["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert answer.body["messages"][1]["content"] == QUESTION
    # AND the usage counts both calls, each as the server reported it
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        2 * PROMPT_TOKENS,
        2 * COMPLETION_TOKENS,
    )


def test_the_models_are_the_answer_profiles(client: openai.OpenAI) -> None:
    # WHEN the SDK lists the models
    names = [model.id for model in client.models.list()]
    # THEN they are the default and the answer profiles; the rewriter is not one
    assert names == ["ragline", "critical", "reasoning", "simple"]


@pytest.mark.parametrize(
    ("messages", "model", "message"),
    [
        ([{"role": "assistant", "content": "Hi"}], "ragline", "the last message must be the user"),
        ([{"role": "user", "content": QUESTION}], "gpt-4o", "unknown profile 'gpt-4o'"),
        ([], "ragline", "messages: List should have at least 1 item"),
        (
            [{"role": "tool", "content": "42", "tool_call_id": "t"}],
            "ragline",
            "'tool' is not served",
        ),
        ([{"role": "user", "content": "a\u0000b"}], "ragline", "must not contain NUL"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
            "ragline",
            "only text parts are read",
        ),
    ],
)
def test_invalid_requests_are_400_with_a_readable_reason(
    client: openai.OpenAI, messages: list[dict[str, Any]], model: str, message: str
) -> None:
    # WHEN the SDK sends a request ragline cannot serve
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=model, messages=messages)  # type: ignore[arg-type]
    # THEN it is a 400 whose OpenAI-shaped error names the reason
    assert raised.value.status_code == 400
    assert message in raised.value.message


def test_a_missing_or_wrong_key_is_401(ragline_url: str) -> None:
    # WHEN the SDK presents a key ragline does not know
    wrong = openai.OpenAI(base_url=f"{ragline_url}/v1", api_key="rgl_nope", max_retries=0)
    # THEN it is refused before the function runs
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_the_x_api_key_header_opens_the_door_too(ragline_url: str, api_key: str) -> None:
    # WHEN a client sends the key as x-api-key (as to every other route)
    split = urlsplit(ragline_url)
    connection = http.client.HTTPConnection(split.hostname or "", split.port, timeout=10)
    connection.request("GET", "/v1/models", headers={"x-api-key": api_key})
    response = connection.getresponse()
    # THEN it is served
    assert response.status == 200
    assert json.loads(response.read())["object"] == "list"
