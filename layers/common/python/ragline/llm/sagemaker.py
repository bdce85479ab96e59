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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ragline.errors import ModelError
from ragline.llm.base import ChatModel, Completion, GenerationRequest, Usage
from ragline.providers.clients import aws_client, invoke_endpoint
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
    return count_tokens(request.system) + count_tokens(request.user)


# --- messages: the OpenAI chat shape ---------------------------------------------------------


def messages_body(request: GenerationRequest) -> dict[str, Any]:
    """The OpenAI-style chat request vLLM, LMI and TGI's Messages API accept."""
    return {
        "messages": [
            {"role": "system", "content": request.system},
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
    return {"inputs": f"{request.system}\n\n{request.user}", "parameters": parameters}


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
