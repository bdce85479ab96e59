"""Chat models on a SageMaker real-time endpoint (an open model on your own GPU).

Two request shapes cover the common LLM serving containers; ``RAGLINE_SAGEMAKER_PAYLOAD``
picks one:

- ``messages``: the OpenAI chat shape (vLLM, DJL LMI, TGI with its Messages API). The
  container applies the model's chat template, and reports usage like OpenAI does.
- ``tgi``: Text Generation Inference's ``inputs``/``parameters``. The prompt is sent as
  plain text; ``details: true`` makes TGI report how many tokens it generated.

Counts the container does not report are estimated and the usage is marked estimated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ragline.errors import ModelError
from ragline.llm.base import ChatModel, Completion, GenerationRequest, Usage
from ragline.providers.clients import aws_client, invoke_endpoint, invoke_endpoint_stream
from ragline.tokens import count_tokens

if TYPE_CHECKING:
    from ragline.config import Settings


@dataclass(frozen=True)
class Parsed:
    """What a container's response says: the text, the usage and why it stopped."""

    text: str
    usage: Usage
    finish_reason: str | None = None


def _prompt_tokens(request: GenerationRequest) -> int:
    return request.prompt_tokens()


# --- messages: the OpenAI chat shape ---------------------------------------------------------


def messages_body(request: GenerationRequest) -> dict[str, Any]:
    """The OpenAI-style chat request vLLM, LMI and TGI's Messages API accept."""
    return {
        "messages": [
            {"role": "system", "content": request.system},
            *({"role": role, "content": text} for role, text in request.history),
            {"role": "user", "content": request.user},
        ],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
    }


def parse_messages(data: Any, request: GenerationRequest) -> Parsed:
    choice = data["choices"][0]
    text = choice["message"]["content"] or ""
    usage = data.get("usage")
    if not usage:
        return Parsed(text, Usage(_prompt_tokens(request), count_tokens(text), estimated=True))
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return Parsed(
        text,
        Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0), cached),
        choice.get("finish_reason"),
    )


# --- tgi: inputs / parameters ----------------------------------------------------------------


def tgi_body(request: GenerationRequest) -> dict[str, Any]:
    """TGI's generate request. TGI rejects temperature 0: greedy decoding is do_sample off."""
    parameters: dict[str, Any] = {
        "max_new_tokens": request.max_tokens,
        "details": True,
        "return_full_text": False,
        "do_sample": request.temperature > 0,
    }
    if request.temperature > 0:
        parameters["temperature"] = request.temperature
    turns = "".join(f"{role.capitalize()}: {text}\n\n" for role, text in request.history)
    return {"inputs": f"{request.system}\n\n{turns}{request.user}", "parameters": parameters}


def parse_tgi(data: Any, request: GenerationRequest) -> Parsed:
    # TGI answers a list with one generation; some wrappers unwrap it to the object.
    generation = data[0] if isinstance(data, list) else data
    text = generation["generated_text"]
    details = generation.get("details") or {}
    output = details.get("generated_tokens")
    prefill = details.get("prefill")  # only with decoder_input_details, often absent
    usage = Usage(
        len(prefill) if prefill else _prompt_tokens(request),
        output if output is not None else count_tokens(text),
        estimated=not prefill or output is None,
    )
    return Parsed(text, usage, details.get("finish_reason"))


# --- streamed: server-sent events in the payload parts ----------------------------------------


@dataclass
class StreamedParts:
    """What a streamed answer's events said so far: usage and finish reason, when given."""

    usage: Usage | None = None
    finish_reason: str | None = None


def sse_data(parts: Iterator[bytes]) -> Iterator[Any]:
    """The JSON of each ``data:`` line of a server-sent event stream split arbitrarily into
    payload parts (``[DONE]`` and other lines skipped)."""
    buffer = b""
    for part in parts:
        buffer += part
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            line = line.strip()
            if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
                yield json.loads(line[5:])


def messages_delta(data: Any, seen: StreamedParts) -> str | None:
    """One OpenAI-style chunk: its text, and the usage in the last chunk."""
    usage = data.get("usage")
    if usage:
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        seen.usage = Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0), cached)
    choices = data.get("choices") or []
    if not choices:
        return None
    seen.finish_reason = choices[0].get("finish_reason") or seen.finish_reason
    return (choices[0].get("delta") or {}).get("content")


def tgi_delta(data: Any, seen: StreamedParts) -> str | None:
    """One TGI token event: its text (special tokens aside); the last one has details."""
    details = data.get("details") or {}
    if details:
        seen.finish_reason = details.get("finish_reason")
        if details.get("generated_tokens") is not None:
            # TGI never counts the prompt in a stream: the input side stays an estimate.
            seen.usage = Usage(0, details["generated_tokens"], estimated=True)
    token = data.get("token") or {}
    return None if token.get("special") else token.get("text")


DeltaParser = Callable[[Any, StreamedParts], "str | None"]
STREAMED: dict[str, DeltaParser] = {"messages": messages_delta, "tgi": tgi_delta}


def stream_body(payload: str, request: GenerationRequest) -> dict[str, Any]:
    """The request body asking the container to stream."""
    body = PAYLOADS[payload][0](request)
    if payload == "messages":
        return {**body, "stream": True, "stream_options": {"include_usage": True}}
    return {**body, "stream": True}


# payload style -> (request body builder, response parser)
BodyBuilder = Callable[[GenerationRequest], dict[str, Any]]
ResponseParser = Callable[[Any, GenerationRequest], Parsed]
PAYLOADS: dict[str, tuple[BodyBuilder, ResponseParser]] = {
    "messages": (messages_body, parse_messages),
    "tgi": (tgi_body, parse_tgi),
}


class SageMakerChatModel(ChatModel):
    """``sagemaker:<endpoint>``: invoke_endpoint with the configured payload style."""

    provider = "sagemaker"

    def __init__(
        self,
        endpoint: str,
        client: Any,
        payload: str = "messages",
        inference_component: str | None = None,
    ) -> None:
        if payload not in PAYLOADS:
            raise ValueError(f"payload must be one of {', '.join(PAYLOADS)}")
        self.model = endpoint
        self.client = client
        self.payload = payload
        self.inference_component = inference_component

    @classmethod
    def from_settings(cls, model: str, settings: Settings) -> SageMakerChatModel:
        client = aws_client("sagemaker-runtime", settings.llm_timeout_seconds)
        return cls(
            model, client, settings.sagemaker_payload, settings.sagemaker_inference_component
        )

    def generate(self, request: GenerationRequest) -> Completion:
        build, parse = PAYLOADS[self.payload]
        started = time.perf_counter()
        raw = invoke_endpoint(
            self.client, self.model, build(request), self.spec, self.inference_component
        )
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        try:
            parsed = parse(json.loads(raw), request)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            snippet = raw[:200].decode("utf-8", "replace")
            raise ModelError(
                f"{self.spec}: the endpoint's response is not a {self.payload!r} payload "
                f"(check RAGLINE_SAGEMAKER_PAYLOAD): {snippet}"
            ) from exc
        return Completion(
            parsed.text,
            parsed.usage,
            self.provider,
            self.model,
            details={"latency_ms": latency_ms, "finish_reason": parsed.finish_reason},
        )

    def stream(self, request: GenerationRequest) -> Generator[str | Completion, None, None]:
        """invoke_endpoint_with_response_stream: the container's server-sent events
        (OpenAI chunks or TGI tokens), text as it comes; usage from the last event, or
        estimated when the container sends none."""
        started = time.perf_counter()
        parse = STREAMED[self.payload]
        parts = invoke_endpoint_stream(
            self.client, self.model, stream_body(self.payload, request), self.spec,
            self.inference_component,
        )  # fmt: skip
        seen = StreamedParts()
        written: list[str] = []
        first_token_ms: float | None = None
        try:
            for data in sse_data(parts):
                text = parse(data, seen)
                if text:
                    if first_token_ms is None:
                        first_token_ms = round((time.perf_counter() - started) * 1000, 2)
                    written.append(text)
                    yield text
        except (ValueError, AttributeError, TypeError) as exc:
            raise ModelError(
                f"{self.spec}: the endpoint's stream is not {self.payload!r} events "
                f"(check RAGLINE_SAGEMAKER_PAYLOAD): {exc}"
            ) from exc
        finally:
            parts.close()
        text = "".join(written)
        yield Completion(
            text,
            _streamed_usage(seen.usage, request, text),
            self.provider,
            self.model,
            details={
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                "first_token_ms": first_token_ms,
                "finish_reason": seen.finish_reason,
            },
        )


def _streamed_usage(usage: Usage | None, request: GenerationRequest, text: str) -> Usage:
    """The usage the stream reported, its missing counts estimated (and marked so)."""
    if usage is None:
        return Usage(_prompt_tokens(request), count_tokens(text), estimated=True)
    if usage.estimated and usage.input_tokens == 0:
        return Usage(_prompt_tokens(request), usage.output_tokens, estimated=True)
    return usage
