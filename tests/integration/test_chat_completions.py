"""The OpenAI-compatible door, driven by the official openai SDK over real HTTP: the query
handler behind the local gateway as `ragline dev` serves it (its streaming entry point,
the key authorizer reading `Authorization: Bearer`), answering with a loopback
OpenAI-compatible model server. Then the deployed shape: `POST /v1/chat/completions` as
API Gateway's STREAM integration passes it to the streaming function, whose runtime loop
answers through a loopback Lambda Runtime API."""

from __future__ import annotations

import copy
import http.client
import json
import threading
import uuid
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
from ragline.streaming_runtime import RuntimeApi, serve
from ragline.tenancy import get_keys

from tests.support.openai_server import CHAT, OpenAICompatibleServer
from tests.support.runtime_api import GatewayShim, RuntimeApiServer, StreamedResponse

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


# --- the deployed shape: the streaming function's runtime loop ---------------------------

TOKEN_DELAY = 0.05


@pytest.fixture
def deployed(
    seeded: str, server: OpenAICompatibleServer, cold_start: Callable[..., ModuleType]
) -> ModuleType:
    """The query code as the streaming function imports it (its ``stream_handler``)."""
    server.token_delay = TOKEN_DELAY
    return cold_start(
        "query",
        RAGLINE_DATABASE_URL=seeded,
        OPENAI_BASE_URL=server.base_url,
        OPENAI_API_KEY="upstream-key",
        RAGLINE_LLM="openai:gpt-4o-mini",
        RAGLINE_LLM_MAX_RETRIES="0",
    )


def chat_event(event: Callable[[str], dict[str, Any]], body: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/chat/completions as API Gateway's STREAM integration passes it on: the key
    in Authorization: Bearer, the tenant as the Bearer authorizer named it."""
    request = copy.deepcopy(event("api_query"))
    request["path"] = "/v1/chat/completions"
    request["requestContext"]["path"] = "/v1/v1/chat/completions"
    request["requestContext"]["requestId"] = str(uuid.uuid4())
    for headers in (request["headers"], request["multiValueHeaders"]):
        bearer = headers.pop("x-api-key")
        headers["Authorization"] = (
            [f"Bearer {bearer[0]}"] if isinstance(bearer, list) else f"Bearer {bearer}"
        )
    request["body"] = json.dumps(body)
    return request


def run_loop(api: ModuleType, runtime: RuntimeApiServer, invocations: int) -> threading.Thread:
    """The streaming function's runtime loop (``stream_handler``, as the exec wrapper runs
    it) against ``runtime``, for ``invocations`` events."""
    loop = threading.Thread(
        target=serve,
        args=(api.stream_handler, RuntimeApi(runtime.runtime_api)),
        kwargs={"environment": {"AWS_LAMBDA_FUNCTION_NAME": "ragline-query-stream"},
                "invocations": invocations},
        daemon=True,
    )  # fmt: skip
    loop.start()
    return loop


def run_deployed(api: ModuleType, requests: list[dict[str, Any]]) -> list[StreamedResponse]:
    with RuntimeApiServer() as runtime:
        ids = [runtime.invoke(request) for request in requests]
        loop = run_loop(api, runtime, len(requests))
        loop.join(30)
        assert not loop.is_alive(), "the runtime loop did not finish"
        return [runtime.response(request_id) for request_id in ids]


def content_type(prelude: dict[str, Any]) -> str:
    single = {k.lower(): v for k, v in (prelude.get("headers") or {}).items()}
    multi = {k.lower(): v for k, v in (prelude.get("multiValueHeaders") or {}).items()}
    return str(single.get("content-type") or multi["content-type"][0])


def data_frames(response: StreamedResponse) -> list[tuple[float, bytes]]:
    """The chunks after the prelude's, each stamped with its arrival."""
    (_, first), *rest = response.chunks
    assert first.endswith(b"\x00" * 8), "the prelude is a chunk of its own"
    return rest


def test_the_deployed_chat_route_streams_one_chunk_frame_per_chunk_with_exact_usage(
    deployed: ModuleType, event: Callable[[str], dict[str, Any]], server: OpenAICompatibleServer
) -> None:
    # GIVEN the streaming function's runtime loop, and a model writing a word every 50 ms
    body = {
        "model": "ragline",
        "messages": [{"role": "user", "content": QUESTION}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    # WHEN the STREAM integration invokes it with a streamed chat request
    (response,) = run_deployed(deployed, [chat_event(event, body)])
    # THEN the response is posted in streaming mode: a 200 of server-sent events
    assert response.headers["Lambda-Runtime-Function-Response-Mode"] == "streaming"
    assert response.complete and response.trailers == {}
    assert response.prelude["statusCode"] == 200
    assert content_type(response.prelude) == "text/event-stream"
    # AND each chunk of the stream is one data: line of its own, [DONE] the last
    frames = data_frames(response)
    assert all(d.startswith(b"data: ") and d.endswith(b"\n\n") for _, d in frames)
    assert all(d.count(b"data: ") == 1 for _, d in frames)
    assert frames[-1][1] == b"data: [DONE]\n\n"
    chunks = [json.loads(d[6:]) for _, d in frames[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    # AND the first opens the assistant's message with the citations, before the model's
    # first token; the text deltas make the answer and left spread as the model wrote
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[0]["citations"][0]["source"] == "s3://docs/handbook/leave.md"
    (first_token,) = server.first_token_at
    assert frames[0][0] < first_token
    texts = [(at, c) for (at, _), c in zip(frames, chunks, strict=False)
             if c["choices"] and c["choices"][0]["delta"].get("content")]  # fmt: skip
    assert "".join(c["choices"][0]["delta"]["content"] for _, c in texts) == ANSWER
    assert len(texts) == len(ANSWER.split()) > 3
    assert texts[-1][0] - texts[0][0] > 0.5 * TOKEN_DELAY * (len(texts) - 1)
    # AND the usage chunk, last before [DONE], is the model server's own count
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    served = server.usage
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
    )
    assert (served.prompt_tokens, served.completion_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert usage["prompt_tokens_details"]["cached_tokens"] == CACHED_TOKENS == served.cached_tokens
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"


def test_the_deployed_chat_route_answers_a_buffered_request_in_one_json_body(
    deployed: ModuleType, event: Callable[[str], dict[str, Any]]
) -> None:
    # GIVEN the streaming function's runtime loop
    body = {"model": "ragline", "messages": [{"role": "user", "content": QUESTION}]}
    # WHEN the STREAM integration invokes it with a chat request that does not stream
    (response,) = run_deployed(deployed, [chat_event(event, body)])
    # THEN it is posted in streaming mode all the same, as a 200 JSON body in one piece
    assert response.headers["Lambda-Runtime-Function-Response-Mode"] == "streaming"
    assert response.prelude["statusCode"] == 200
    assert content_type(response.prelude) == "application/json"
    (frame,) = data_frames(response)
    completion = json.loads(frame[1])
    # AND it is the chat completion with the citations and the exact usage
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["content"] == ANSWER
    assert completion["citations"][0]["n"] == 1
    assert (completion["usage"]["prompt_tokens"], completion["usage"]["completion_tokens"]) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
    )


@pytest.mark.parametrize("stream", [True, False])
def test_the_deployed_chat_route_refuses_in_openai_s_error_shape(
    deployed: ModuleType,
    event: Callable[[str], dict[str, Any]],
    server: OpenAICompatibleServer,
    stream: bool,
) -> None:
    # GIVEN chat requests ragline cannot serve: an assistant's last word, a body over
    # RAGLINE_MAX_BODY_BYTES (32 KiB)
    refused = [
        {"model": "ragline", "stream": stream,
         "messages": [{"role": "user", "content": QUESTION},
                      {"role": "assistant", "content": "25."}]},
        {"model": "ragline", "stream": stream,
         "messages": [{"role": "user", "content": "vacation " * 4000}]},
    ]  # fmt: skip
    # WHEN the streaming function answers them
    responses = run_deployed(deployed, [chat_event(event, body) for body in refused])
    # THEN each is a JSON error with its status, before any stream, in OpenAI's shape
    # beside ragline's own message, and no model was asked
    for response, status, kind in zip(
        responses, (400, 413), ("invalid_request_error", "invalid_request_error"), strict=True
    ):
        assert response.prelude["statusCode"] == status
        assert content_type(response.prelude) == "application/json"
        error = json.loads(response.payload)
        assert error["error"]["type"] == kind and error["error"]["code"] == str(status)
        assert error["error"]["message"] == error["message"]
    assert "last message must be the user's question" in json.loads(responses[0].payload)["message"]
    assert server.received(CHAT) == []


def test_the_sdk_reads_the_deployed_chat_route_buffered_and_streamed(
    deployed: ModuleType, event: Callable[[str], dict[str, Any]]
) -> None:
    # GIVEN the streaming function's runtime loop behind a shim that turns each HTTP
    # request into the proxy event API Gateway would pass, and writes the status, the
    # headers and the body the loop posted
    with (
        RuntimeApiServer() as runtime,
        GatewayShim(runtime, lambda body: chat_event(event, json.loads(body))) as shim,
    ):
        loop = run_loop(deployed, runtime, invocations=2)
        client = openai.OpenAI(base_url=f"{shim.address}/v1", api_key="rgl_x", max_retries=0)
        # WHEN the official SDK asks, buffered then streamed
        completion = client.chat.completions.create(
            model="ragline", messages=[{"role": "user", "content": QUESTION}]
        )
        stream = client.chat.completions.create(
            model="ragline",
            messages=[{"role": "user", "content": QUESTION}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        loop.join(30)
    # THEN both carry the cited answer and the model server's exact usage
    assert completion.choices[0].message.content == ANSWER
    assert completion.usage is not None and completion.usage.prompt_tokens == PROMPT_TOKENS
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    last = chunks[-1]
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
    )
    assert (chunks[0].model_extra or {})["citations"][0]["n"] == 1
