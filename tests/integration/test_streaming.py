"""Streamed answers over real HTTP: the query handler's streaming entry point behind the
local gateway (a real socket, chunked transfer), and as deployed, run by the streaming
runtime loop against a loopback Lambda Runtime API, against a loopback OpenAI-compatible
server writing one word every 50 ms."""

from __future__ import annotations

import copy
import http.client
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
from ragline.config import Settings
from ragline.dev.context import LambdaFunction
from ragline.dev.gateway import ApiGateway
from ragline.identity import OPERATOR
from ragline.ingest import Ingestor
from ragline.store import get_store
from ragline.streaming_runtime import RuntimeApi, serve
from ragline.tokens import count_tokens

from tests.support.emf import check_emf, dimension_sets, emf_documents, value
from tests.support.openai_server import CHAT, OpenAICompatibleServer, Scripted
from tests.support.runtime_api import DELIMITER, RuntimeApiServer, StreamedResponse

HANDBOOK = {
    "s3://docs/handbook/leave.md": b"""# Leave policy

## Vacation
Employees get 25 vacation days each year. Unused vacation days expire on 31 March.
""",
}
QUESTION = "How many vacation days do employees get?"
ANSWER = "Employees get 25 vacation days each year [1]."
TOKEN_DELAY = 0.05
LONG_ANSWER = " ".join(["Employees get 25 vacation days each year [1]."] * 8)


@dataclass(frozen=True)
class Received:
    name: str
    data: dict[str, Any]
    at: float  # time.monotonic() when the event was read


@pytest.fixture(scope="module")
def seeded(database_url: str) -> str:
    ingestor = Ingestor.from_settings(Settings(database_url=database_url))
    for source, data in HANDBOOK.items():
        ingestor.ingest_bytes(source, data)
    get_store.cache_clear()
    return database_url


@pytest.fixture
def server() -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer(reply=ANSWER, token_delay=TOKEN_DELAY) as running:
        yield running


@pytest.fixture
def start(
    seeded: str, server: OpenAICompatibleServer, cold_start: Callable[..., ModuleType]
) -> Callable[..., ModuleType]:
    def begin(**environment: str) -> ModuleType:
        defaults = {
            "RAGLINE_DATABASE_URL": seeded,
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_API_KEY": "test",
            "RAGLINE_LLM": "openai:gpt-4o-mini",
            "RAGLINE_LLM_MAX_RETRIES": "0",
        }
        return cold_start("query", **{**defaults, **environment})

    return begin


@pytest.fixture
def gateway() -> Iterator[Callable[[ModuleType], str]]:
    """Serve a cold-started query handler as `ragline dev` does: its streaming entry point
    behind the gateway on a free port."""
    running: list[tuple[ApiGateway, LambdaFunction]] = []

    def serve(api: ModuleType) -> str:
        function = LambdaFunction(
            "ragline-query", api.lambda_handler, stream_handler=api.stream_handler
        )
        # the caller is the default tenant with every scope, whatever key it sends
        gateway = ApiGateway(function, port=0, authorizer=lambda _key: OPERATOR.to_authorizer())
        running.append((gateway, function))
        return gateway.start()

    yield serve
    for gateway, function in running:
        gateway.stop()
        function.close()


def open_stream(url: str, body: dict[str, Any], **headers: str) -> http.client.HTTPResponse:
    split = urlsplit(url)
    connection = http.client.HTTPConnection(split.hostname or "", split.port, timeout=10)
    connection.request(
        "POST", "/query", json.dumps(body), {"Content-Type": "application/json", **headers}
    )
    return connection.getresponse()


def logged_rows(database_url: str, request_id: str) -> list[dict[str, Any]]:
    """The query-log rows of a request from the last hour."""
    rows = get_store(Settings(database_url=database_url)).query_log(
        datetime.now(UTC) - timedelta(hours=1)
    )
    return [r for r in rows if r["request_id"] == request_id]


def logged(database_url: str, request_id: str) -> dict[str, Any]:
    return next(iter(logged_rows(database_url, request_id)))


def events(response: http.client.HTTPResponse) -> Iterator[Received]:
    """Server-sent events as they arrive, each stamped when read."""
    name, data = "message", ""
    while True:
        line = response.readline()
        if not line:
            return
        text = line.decode().rstrip("\r\n")
        if text.startswith("event:"):
            name = text[6:].strip()
        elif text.startswith("data:"):
            data += text[5:].strip()
        elif not text and data:
            yield Received(name, json.loads(data), time.monotonic())
            name, data = "message", ""


def test_citations_come_before_the_first_token_and_deltas_as_the_model_writes(
    start: Callable[..., ModuleType],
    gateway: Callable[[ModuleType], str],
    server: OpenAICompatibleServer,
) -> None:
    # GIVEN ragline's gateway streaming the query function, and a model writing a word
    # every 50 ms
    url = gateway(start())
    # WHEN a question is asked with "stream": true
    response = open_stream(url, {"question": QUESTION, "stream": True})
    received = list(events(response))
    # THEN it is a chunked event stream
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/event-stream"
    assert response.getheader("Transfer-Encoding") == "chunked"
    names = [e.name for e in received]
    assert names[0] == "retrieval" and names[-1] == "final"
    assert set(names[1:-1]) == {"delta"}
    # AND the citations arrived before the model wrote its first token
    (first_token,) = server.first_token_at
    retrieval = received[0]
    assert retrieval.at < first_token
    assert retrieval.data["citations"][0]["source"] == "s3://docs/handbook/leave.md"
    assert retrieval.data["request_id"]
    # AND the first delta within 100 ms of the server sending its first token
    first_delta = received[1]
    assert first_delta.at - first_token < 0.1, first_delta.at - first_token
    # AND the deltas arrived spread out as written, not in one burst at the end
    assert received[-2].at - first_delta.at > 0.5 * TOKEN_DELAY * (len(names) - 3)
    # AND the final event is the whole answer, with the server's exact usage
    final = received[-1].data
    assert "".join(e.data["text"] for e in received[1:-1]) == ANSWER == final["answer"]
    usage = final["usage"]
    assert (usage["input_tokens"], usage["output_tokens"], usage["cached_input_tokens"]) == (
        412,
        23,
        256,
    )
    assert usage["estimated"] is False and usage["cost_usd"] > 0
    assert final["request_id"] == retrieval.data["request_id"]
    assert final["citations"][0]["n"] == 1 and final["needs_review"] is False
    assert set(final["latency_ms"]) >= {"retrieve", "generate", "total"}
    # AND the model was asked to stream with the usage included
    (request,) = server.received(CHAT)
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}


def test_a_client_that_goes_away_stops_the_model_call(
    start: Callable[..., ModuleType],
    gateway: Callable[[ModuleType], str],
    server: OpenAICompatibleServer,
) -> None:
    # GIVEN a long answer being streamed
    server.reply = LONG_ANSWER
    words = len(LONG_ANSWER.split())
    url = gateway(start())
    response = open_stream(url, {"question": QUESTION}, Accept="text/event-stream")
    stream = events(response)
    # WHEN the client reads the citations and two deltas, then hangs up
    assert [next(stream).name for _ in range(3)] == ["retrieval", "delta", "delta"]
    response.close()
    # THEN the model server sees its connection closed long before the answer's end
    deadline = time.monotonic() + 5
    while not server.disconnects and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.disconnects, "the model call went on after the client left"
    assert server.disconnects[0] < words // 2
    assert server.completed_streams == 0


def logged_soon(database_url: str, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
    """The query-log row of ``request_id``, once written (after the stream, on its thread)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return logged(database_url, request_id)
        except StopIteration:
            assert time.monotonic() < deadline, f"no query-log row for {request_id}"
            time.sleep(0.05)


def test_a_client_that_goes_away_leaves_its_usage_so_far_in_the_ledger(
    seeded: str,
    start: Callable[..., ModuleType],
    gateway: Callable[[ModuleType], str],
    server: OpenAICompatibleServer,
) -> None:
    # GIVEN a long answer being streamed through the gateway of `ragline dev`
    server.reply = LONG_ANSWER
    url = gateway(start())
    response = open_stream(url, {"question": QUESTION, "stream": True})
    stream = events(response)
    # WHEN the client reads the citations and three deltas, then hangs up
    retrieval = next(stream)
    deltas = [next(stream) for _ in range(3)]
    response.close()
    # THEN the query is logged as cut off by the client (499), with the model's tokens
    # so far, estimated: the whole prompt in, at least the words read out, not the answer
    row = logged_soon(seeded, retrieval.data["request_id"])
    assert row["status_code"] == 499
    assert (row["provider"], row["model"]) == ("openai", "gpt-4o-mini")
    assert row["input_tokens"] > 100
    written = "".join(d.data["text"] for d in deltas)
    assert count_tokens(written) <= row["output_tokens"] < count_tokens(LONG_ANSWER)
    assert row["embedding_tokens"] > 0 and row["chunks_retrieved"] >= 1
    # AND it is priced as estimated, as gpt-4o-mini's tokens are
    assert row["cost_usd"] > 0 and row["cost_estimated"] is True
    assert row["sources"] == ["s3://docs/handbook/leave.md"]
    # AND the model call stopped
    deadline = time.monotonic() + 5
    while not server.disconnects and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.disconnects and server.completed_streams == 0


def test_a_model_failing_mid_answer_records_its_usage_so_far(
    seeded: str,
    start: Callable[..., ModuleType],
    gateway: Callable[[ModuleType], str],
    server: OpenAICompatibleServer,
) -> None:
    # GIVEN a model whose connection drops after three words
    server.script(CHAT, Scripted(cut_after=3))
    url = gateway(start())
    # WHEN the answer is streamed
    received = list(events(open_stream(url, {"question": QUESTION, "stream": True})))
    error = received[-1].data
    # THEN its one query-log row has the error status and the usage the error event reports
    rows = logged_rows(seeded, error["request_id"])
    assert len(rows) == 1
    (row,) = rows
    assert row["status_code"] == 502
    usage = error["usage"]
    assert (row["input_tokens"], row["output_tokens"]) == (
        usage["input_tokens"],
        usage["output_tokens"],
    )
    assert row["output_tokens"] > 0 and row["cost_usd"] == pytest.approx(usage["cost_usd"])


def test_a_model_failing_mid_answer_ends_the_stream_with_an_error_event(
    seeded: str,
    start: Callable[..., ModuleType],
    gateway: Callable[[ModuleType], str],
    server: OpenAICompatibleServer,
) -> None:
    # GIVEN a model whose connection drops after three words, and a fallback model
    server.script(CHAT, Scripted(cut_after=3))
    url = gateway(start(RAGLINE_LLM_FALLBACK="openai:gpt-4o"))
    # WHEN the answer is streamed
    response = open_stream(url, {"question": QUESTION, "stream": True})
    received = list(events(response))
    # THEN the three words arrived, then an error event, and the body ended cleanly
    assert [e.name for e in received] == ["retrieval", "delta", "delta", "delta", "error"]
    error = received[-1].data
    assert error["statusCode"] == 502 and "mid-answer" in error["message"]
    assert error["request_id"] == received[0].data["request_id"]
    # AND the usage so far: the three words written, estimated
    assert error["usage"]["output_tokens"] > 0 and error["usage"]["estimated"] is True
    # AND no fallback was tried after the first token
    assert len(server.received(CHAT)) == 1
    # AND the failure is in the query log, as a buffered 502 would be
    assert logged(seeded, error["request_id"])["status_code"] == 502


def test_a_failing_model_falls_back_before_its_first_token(
    start: Callable[..., ModuleType],
    gateway: Callable[[ModuleType], str],
    server: OpenAICompatibleServer,
) -> None:
    # GIVEN a primary model that fails and a fallback that answers
    server.fail_model("gpt-broken", 500)
    url = gateway(start(RAGLINE_LLM="openai:gpt-broken", RAGLINE_LLM_FALLBACK="openai:gpt-4o"))
    # WHEN the answer is streamed
    received = list(events(open_stream(url, {"question": QUESTION, "stream": True})))
    # THEN the fallback's answer streams and the final event says a fallback wrote it
    final = received[-1]
    assert final.name == "final" and final.data["answer"] == ANSWER
    assert final.data["fallback"] is True and final.data["model"]["name"] == "gpt-4o"


def test_the_critical_profile_streams_no_text_before_its_checks(
    start: Callable[..., ModuleType], gateway: Callable[[ModuleType], str]
) -> None:
    # GIVEN the critical profile, which withholds an answer citing no passage
    url = gateway(start())
    # WHEN its answer is streamed
    received = list(
        events(open_stream(url, {"question": QUESTION, "stream": True, "profile": "critical"}))
    )
    # THEN the retrieval and the checked final answer come, no unchecked delta
    assert [e.name for e in received] == ["retrieval", "final"]
    assert received[-1].data["answer"] == ANSWER
    assert received[-1].data["needs_review"] is True


def test_an_invalid_streamed_request_is_answered_with_its_status(
    start: Callable[..., ModuleType], gateway: Callable[[ModuleType], str]
) -> None:
    # GIVEN the streaming gateway
    url = gateway(start())
    # WHEN a streamed question names an unknown profile, or is empty
    unknown = open_stream(url, {"question": QUESTION, "stream": True, "profile": "nope"})
    empty = open_stream(url, {"question": "   ", "stream": True})
    # THEN each is a JSON 400, as the buffered API answers, not a stream
    for response in (unknown, empty):
        assert response.status == 400
        assert response.getheader("Content-Type") == "application/json"
        assert json.loads(response.read())["statusCode"] == 400


def test_buffered_and_streamed_answers_are_logged_alike(
    seeded: str,
    start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    gateway: Callable[[ModuleType], str],
) -> None:
    # GIVEN the same question asked buffered (lambda_handler) and streamed (the gateway)
    api = start()
    request = copy.deepcopy(event("api_query"))
    request["body"] = json.dumps({"question": QUESTION})
    buffered = json.loads(api.lambda_handler(request, lambda_context)["body"])
    url = gateway(api)
    streamed = list(events(open_stream(url, {"question": QUESTION, "stream": True})))[-1].data
    rows = [logged(seeded, body["request_id"]) for body in (buffered, streamed)]
    # THEN the final event is the buffered response, but for its request id and latencies
    for body in (buffered, streamed):
        body.pop("request_id"), body.pop("latency_ms")
    assert streamed == buffered
    # AND the query log holds both alike, but for their ids, times and latencies
    varying = {"request_id", "created_at", "id"} | {k for k in rows[0] if k.endswith("_ms")}
    kept = [{k: v for k, v in row.items() if k not in varying} for row in rows]
    assert kept[0] == kept[1]
    assert kept[0]["output_tokens"] == 23 and kept[0]["status_code"] == 200


def test_the_buffered_entry_point_answers_a_streamed_request_in_one_body(
    start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
) -> None:
    # GIVEN an integration that cannot stream (lambda_handler)
    api = start()
    request = copy.deepcopy(event("api_query"))
    request["body"] = json.dumps({"question": QUESTION, "stream": True})
    # WHEN a streamed answer is asked for
    response = api.lambda_handler(request, lambda_context)
    # THEN the same events come, in one text body
    assert response["statusCode"] == 200
    assert response["multiValueHeaders"]["Content-Type"] == ["text/event-stream"]
    body = response["body"]
    assert isinstance(body, str)
    assert body.startswith("event: retrieval\n") and "event: final\n" in body


# --- the deployed shape: the streaming function's runtime loop ---------------------------


def stream_event(event: Callable[[str], dict[str, Any]], body: dict[str, Any]) -> dict[str, Any]:
    """POST /query/stream as API Gateway's STREAM integration passes it on."""
    request = copy.deepcopy(event("api_query"))
    request["path"] = request["requestContext"]["path"] = "/query/stream"
    request["requestContext"]["requestId"] = str(uuid.uuid4())
    request["body"] = json.dumps(body)
    return request


def run_deployed(
    api: ModuleType, requests: list[dict[str, Any]], *, cut_after: int | None = None
) -> list[StreamedResponse]:
    """Each request through the runtime loop of the streaming function (its
    ``stream_handler``, as the exec wrapper runs it) against a loopback Runtime API."""
    with RuntimeApiServer(cut_after=cut_after) as runtime:
        ids = [runtime.invoke(request) for request in requests]
        loop = threading.Thread(
            target=serve,
            args=(api.stream_handler, RuntimeApi(runtime.runtime_api)),
            kwargs={"environment": {"AWS_LAMBDA_FUNCTION_NAME": "ragline-query-stream"},
                    "invocations": len(requests)},
            daemon=True,
        )  # fmt: skip
        loop.start()
        loop.join(30)
        assert not loop.is_alive(), "the runtime loop did not finish"
        return [runtime.responses[request_id] for request_id in ids]


def sse_events(response: StreamedResponse) -> list[Received]:
    """The server-sent events of a streamed response, each stamped with its chunk's arrival."""
    received = []
    for at, data in response.chunks:
        for frame in data.split(DELIMITER)[-1].decode().split("\n\n"):
            lines = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
            if "event" in lines:
                received.append(Received(lines["event"], json.loads(lines["data"]), at))
    return received


def test_the_deployed_runtime_streams_citations_then_deltas_as_the_model_writes(
    start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    server: OpenAICompatibleServer,
) -> None:
    # GIVEN the streaming function's entry point run by its runtime loop, and a model
    # writing a word every 50 ms
    api = start()
    # WHEN API Gateway's STREAM integration invokes it with POST /query/stream
    (response,) = run_deployed(api, [stream_event(event, {"question": QUESTION})])
    # THEN the response is posted in streaming mode: the status and headers, the
    # delimiter, then the events
    assert response.headers["Lambda-Runtime-Function-Response-Mode"] == "streaming"
    assert response.prelude["statusCode"] == 200
    assert response.prelude["multiValueHeaders"]["Content-Type"] == ["text/event-stream"]
    received = sse_events(response)
    names = [e.name for e in received]
    assert names[0] == "retrieval" and names[-1] == "final" and set(names[1:-1]) == {"delta"}
    # AND the citations left before the model wrote its first token, and the first delta
    # within 100 ms of it
    (first_token,) = server.first_token_at
    assert received[0].at < first_token
    assert received[1].at - first_token < 0.1
    # AND the deltas went out spread as written, one chunk each
    assert received[-2].at - received[1].at > 0.5 * TOKEN_DELAY * (len(names) - 3)
    assert len(response.chunks) == len(received) + 1  # the prelude, then one per event
    # AND the final event has the whole answer and the server's exact usage
    final = received[-1].data
    assert final["answer"] == ANSWER
    assert (final["usage"]["input_tokens"], final["usage"]["output_tokens"]) == (412, 23)


@pytest.mark.usefixtures("emf_on")  # it reads the EMF documents
def test_the_deployed_runtime_records_a_streamed_answer_as_a_buffered_one(
    seeded: str,
    start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the same question asked of the buffered function and of the streaming one
    api = start(POWERTOOLS_METRICS_NAMESPACE="RaglineTest")
    request = copy.deepcopy(event("api_query"))
    request["body"] = json.dumps({"question": QUESTION})
    capsys.readouterr()
    buffered = json.loads(api.lambda_handler(request, lambda_context)["body"])
    (buffered_emf,) = emf_documents(capsys.readouterr().out)
    (response,) = run_deployed(api, [stream_event(event, {"question": QUESTION})])
    (streamed_emf,) = emf_documents(capsys.readouterr().out)
    streamed = sse_events(response)[-1].data
    # THEN the final event is the buffered response, but for its request id and latencies
    rows = [logged(seeded, body["request_id"]) for body in (buffered, streamed)]
    for body in (buffered, streamed):
        body.pop("request_id"), body.pop("latency_ms")
    assert streamed == buffered
    # AND the query log holds both alike, but for their ids, times and latencies
    varying = {"request_id", "created_at", "id"} | {k for k in rows[0] if k.endswith("_ms")}
    kept = [{k: v for k, v in row.items() if k not in varying} for row in rows]
    assert kept[0] == kept[1] and kept[0]["status_code"] == 200
    # AND the EMF documents alike: the same dimensions and metrics, the same figures but
    # for the timestamps and latencies
    check_emf(streamed_emf)
    latencies = {"RetrieveLatency", "GenerateLatency", "TotalLatency", "_aws"}
    for document in (buffered_emf, streamed_emf):
        document["_aws"].pop("Timestamp")
    assert dimension_sets(streamed_emf) == dimension_sets(buffered_emf)
    assert streamed_emf["_aws"] == buffered_emf["_aws"]
    same = {k: v for k, v in streamed_emf.items() if k not in latencies}
    assert same == {k: v for k, v in buffered_emf.items() if k not in latencies}
    assert value(streamed_emf, "OutputTokens") == 23


def test_the_deployed_runtime_accounts_a_stream_nobody_reads_any_more(
    seeded: str,
    start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    server: OpenAICompatibleServer,
) -> None:
    # GIVEN a long answer, and a Runtime API that stops taking the stream after the
    # prelude, the citations and three deltas
    server.reply = LONG_ANSWER
    api = start()
    request = stream_event(event, {"question": QUESTION})
    # WHEN the streaming function answers
    (response,) = run_deployed(api, [request], cut_after=5)
    # THEN the model call stopped long before the answer's end
    deadline = time.monotonic() + 5
    while not server.disconnects and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.disconnects and server.completed_streams == 0
    assert server.disconnects[0] < len(LONG_ANSWER.split()) // 2
    # AND the query is logged as cut off (499) with the usage so far, priced
    request_id = sse_events(response)[0].data["request_id"]
    row = logged_soon(seeded, request_id)
    assert row["status_code"] == 499 and 0 < row["output_tokens"] < count_tokens(LONG_ANSWER)
    assert row["cost_usd"] > 0 and row["cost_estimated"] is True
