"""Every model streams: Bedrock's ConverseStream and SageMaker's response stream through the
real botocore client (binary event streams from a loopback server), the extractive model's
one delta, and the fallback chain before and after the first token."""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from ragline.errors import ModelError, ModelUnavailableError
from ragline.llm import ChatModel, Completion, GenerationRequest, ModelChain, RetryPolicy
from ragline.llm.base import StreamInterruptedError, Usage
from ragline.llm.bedrock import BedrockChatModel
from ragline.llm.extractive import ExtractiveModel
from ragline.llm.sagemaker import SageMakerChatModel

from tests.support.eventstream import EventStreamServer, event, exception, payload_part

MODEL_ID = "anthropic.claude-3-haiku-20240307-v1:0"
REQUEST = GenerationRequest(
    system="Answer from the passages.",
    user="[1] Dock B opens at 8.\n\nQuestion: When does dock B open?",
    question="When does dock B open?",
    passages=(),
    abstain_text="The documents do not answer this.",
    max_tokens=300,
)


def split(items: list[str | Completion]) -> tuple[list[str], Completion]:
    *deltas, completion = items
    assert isinstance(completion, Completion)
    assert all(isinstance(d, str) for d in deltas)
    return [str(d) for d in deltas], completion


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[EventStreamServer]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with EventStreamServer() as running:
        yield running


def client(service: str, server: EventStreamServer) -> Any:
    config = Config(retries={"max_attempts": 1, "mode": "standard"})
    factory: Any = boto3.client  # the service name is a variable: no overload to pick
    return factory(service, region_name="us-east-1", endpoint_url=server.address, config=config)


# --- Bedrock ConverseStream -------------------------------------------------------------------


def converse_events(*texts: str, usage: dict[str, int] | None = None) -> list[bytes]:
    events = [event("messageStart", {"role": "assistant"})]
    events += [
        event("contentBlockDelta", {"delta": {"text": t}, "contentBlockIndex": 0}) for t in texts
    ]
    events += [
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("messageStop", {"stopReason": "end_turn"}),
    ]
    if usage is not None:
        events.append(event("metadata", {"usage": usage, "metrics": {"latencyMs": 321}}))
    return events


def test_bedrock_streams_deltas_and_the_metadata_usage(server: EventStreamServer) -> None:
    # GIVEN ConverseStream answering in three deltas, usage with cache reads last
    usage = {"inputTokens": 40, "outputTokens": 5, "totalTokens": 1069,
             "cacheReadInputTokens": 1024}  # fmt: skip
    server.events = converse_events("At ", "8 ", "[1].", usage=usage)
    model = BedrockChatModel(MODEL_ID, client("bedrock-runtime", server))
    # WHEN the model streams
    deltas, completion = split(list(model.stream(REQUEST)))
    # THEN the deltas are the text, and the usage is Bedrock's, cached reads included
    assert deltas == ["At ", "8 ", "[1]."]
    assert completion.text == "At 8 [1]."
    assert completion.usage == Usage(40 + 1024, 5, 1024)
    assert completion.details["finish_reason"] == "end_turn"
    # AND the request was the Converse request, on the stream route
    ((path, body),) = server.requests
    assert path.endswith("/converse-stream")
    assert body["system"] == [{"text": REQUEST.system}]
    assert body["inferenceConfig"] == {"maxTokens": 300, "temperature": 0.0}


def test_bedrock_error_event_mid_stream_is_a_model_error(server: EventStreamServer) -> None:
    # GIVEN a stream that fails after its first delta
    server.events = [
        *converse_events("At ")[:2],
        exception("modelStreamErrorException", "the model fell over"),
    ]
    model = BedrockChatModel(MODEL_ID, client("bedrock-runtime", server))
    stream = model.stream(REQUEST)
    # WHEN it is read
    assert next(stream) == "At "
    # THEN the error event is a ModelError naming the model
    with pytest.raises(ModelError, match="modelStreamErrorException"):
        next(stream)


def test_bedrock_stream_without_metadata_estimates_the_usage(server: EventStreamServer) -> None:
    # GIVEN a stream that ends without its metadata event
    server.events = converse_events("At 8 [1].")
    model = BedrockChatModel(MODEL_ID, client("bedrock-runtime", server))
    # WHEN it is read to the end
    _, completion = split(list(model.stream(REQUEST)))
    # THEN the usage is counted from the text and marked estimated
    assert completion.usage.estimated is True and completion.usage.output_tokens > 0


# --- SageMaker response streams ---------------------------------------------------------------


def sse(*objects: Any) -> bytes:
    return b"".join(b"data: " + json.dumps(o).encode() + b"\n\n" for o in objects)


def test_sagemaker_messages_stream_split_across_payload_parts(server: EventStreamServer) -> None:
    # GIVEN a vLLM-style endpoint streaming OpenAI chunks, cut mid-line across parts
    body = sse(
        {"choices": [{"delta": {"content": "At "}, "finish_reason": None}]},
        {"choices": [{"delta": {"content": "8 [1]."}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 6,
                                  "prompt_tokens_details": {"cached_tokens": 32}}},
    ) + b"data: [DONE]\n\n"  # fmt: skip
    server.events = [payload_part(body[i : i + 37]) for i in range(0, len(body), 37)]
    model = SageMakerChatModel("llm-endpoint", client("sagemaker-runtime", server))
    # WHEN the model streams
    deltas, completion = split(list(model.stream(REQUEST)))
    # THEN the text comes in the container's deltas, with its exact usage
    assert deltas == ["At ", "8 [1]."]
    assert completion.usage == Usage(50, 6, 32)
    assert completion.details["finish_reason"] == "stop"
    # AND the endpoint was asked to stream, with the usage included
    ((path, request),) = server.requests
    assert path == "/endpoints/llm-endpoint/invocations-response-stream"
    assert request["stream"] is True and request["stream_options"] == {"include_usage": True}


def test_sagemaker_tgi_stream_counts_generated_tokens(server: EventStreamServer) -> None:
    # GIVEN a TGI endpoint streaming tokens, the last with details
    server.events = [
        payload_part(sse({"token": {"text": "At", "special": False}, "details": None})),
        payload_part(sse({"token": {"text": " 8", "special": False}, "details": None})),
        payload_part(sse({"token": {"text": "</s>", "special": True},
                          "details": {"generated_tokens": 3, "finish_reason": "eos_token"}})),
    ]  # fmt: skip
    model = SageMakerChatModel("tgi-endpoint", client("sagemaker-runtime", server), "tgi")
    # WHEN the model streams
    deltas, completion = split(list(model.stream(REQUEST)))
    # THEN special tokens are left out; output tokens are TGI's, the prompt's estimated
    assert deltas == ["At", " 8"]
    assert completion.usage.output_tokens == 3 and completion.usage.estimated is True
    assert completion.usage.input_tokens > 0


def test_sagemaker_stream_error_event_is_a_model_error(server: EventStreamServer) -> None:
    # GIVEN an endpoint whose container fails mid-stream
    server.events = [
        payload_part(sse({"choices": [{"delta": {"content": "At "}}]})),
        exception("ModelStreamError", "the container stopped"),
    ]
    model = SageMakerChatModel("llm-endpoint", client("sagemaker-runtime", server))
    stream = model.stream(REQUEST)
    assert next(stream) == "At "
    # WHEN the rest is read THEN it is a ModelError
    with pytest.raises(ModelError, match="ModelStreamError"):
        next(stream)


# --- the extractive model and the fallback chain ----------------------------------------------


def test_the_extractive_model_streams_its_answer_as_one_delta() -> None:
    # GIVEN the extractive model and no passages
    model = ExtractiveModel()
    # WHEN it streams
    deltas, completion = split(list(model.stream(REQUEST)))
    # THEN one delta carries the whole answer
    assert deltas == [completion.text]


class Scripted(ChatModel):
    """A model streaming ``words`` then failing with ``error`` after ``fail_after`` words
    (None: it completes); records how many streams it started and closed."""

    provider = "scripted"

    def __init__(self, name: str, words: list[str], fail_after: int | None = None) -> None:
        self.model = name
        self.words = words
        self.fail_after = fail_after
        self.started = 0
        self.closed = 0

    def generate(self, request: GenerationRequest) -> Completion:
        raise NotImplementedError

    def stream(self, request: GenerationRequest) -> Generator[str | Completion, None, None]:
        self.started += 1
        try:
            for n, word in enumerate(self.words):
                if n == self.fail_after:
                    raise ModelError(f"{self.spec}: HTTP 503", retryable=True)
                yield word
            if self.fail_after == len(self.words):
                raise ModelError(f"{self.spec}: HTTP 503", retryable=True)
            yield Completion(
                "".join(self.words), Usage(10, len(self.words)), "scripted", self.model
            )
        finally:
            self.closed += 1


def chain(*models: ChatModel) -> ModelChain:
    return ModelChain(models, RetryPolicy(max_retries=1, sleep=lambda _: None))


def test_the_chain_retries_and_falls_back_before_the_first_token() -> None:
    # GIVEN a primary failing before any word, and a fallback that answers
    broken, backup = Scripted("broken", ["x"], fail_after=0), Scripted("backup", ["At ", "8."])
    # WHEN the chain streams
    deltas, completion = split(list(chain(broken, backup).stream(REQUEST)))
    # THEN the primary was retried once, then the fallback's words came
    assert broken.started == 2 and deltas == ["At ", "8."]
    assert completion.details["fallback"] is True
    assert completion.details["failed"] == ["scripted:broken"]


def test_the_chain_does_not_fall_back_after_the_first_token() -> None:
    # GIVEN a primary failing after two words, and a fallback
    flaky, backup = Scripted("flaky", ["At ", "8 ", "[1]."], fail_after=2), Scripted("b", ["x"])
    stream = chain(flaky, backup).stream(REQUEST)
    # WHEN the stream is read
    assert [next(stream), next(stream)] == ["At ", "8 "]
    with pytest.raises(StreamInterruptedError) as raised:
        next(stream)
    # THEN the failure carries the text and an estimated usage so far; nothing was retried
    assert raised.value.partial.text == "At 8 "
    assert raised.value.partial.usage.estimated is True
    assert raised.value.partial.usage.output_tokens > 0
    assert flaky.started == 1 and backup.started == 0


def test_no_model_starting_is_model_unavailable() -> None:
    # GIVEN two models failing before their first word
    models = Scripted("a", ["x"], fail_after=0), Scripted("b", ["x"], fail_after=0)
    # WHEN the chain streams THEN no model could answer
    with pytest.raises(ModelUnavailableError, match="scripted:a, scripted:b"):
        list(chain(*models).stream(REQUEST))


def test_closing_the_chain_closes_the_model_stream() -> None:
    # GIVEN a streaming answer under way
    model = Scripted("m", ["At ", "8 ", "[1]."])
    stream = chain(model).stream(REQUEST)
    assert next(stream) == "At "
    # WHEN the reader closes it
    stream.close()
    # THEN the model's own stream was closed (its connection, for a real provider)
    assert model.closed == 1
