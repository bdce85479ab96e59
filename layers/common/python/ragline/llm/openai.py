"""Chat models behind the OpenAI API, or any server speaking it (``OPENAI_BASE_URL``).

``openai:gpt-4o-mini`` against api.openai.com, or ``openai:llama3.1`` against Ollama,
vLLM, llama.cpp's server, TGI's Messages API or LM Studio: the same code, another base URL.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import openai

from ragline.errors import ModelError
from ragline.llm.base import ChatModel, Completion, GenerationRequest, Usage
from ragline.providers.clients import OpenAIConnection, openai_connection, openai_error
from ragline.tokens import count_tokens

if TYPE_CHECKING:
    from ragline.config import Settings

# OpenAI's reasoning models take max_completion_tokens and only the default temperature;
# every other model (and every compatible server) takes max_tokens and temperature.
_REASONING_MODEL_PREFIXES = ("o1", "o3", "o4", "gpt-5")


class OpenAIChatModel(ChatModel):
    """Chat completions through the official SDK."""

    provider = "openai"

    def __init__(self, model: str, connection: OpenAIConnection) -> None:
        self.model = model
        self.connection = connection

    @classmethod
    def from_settings(cls, model: str, settings: Settings) -> OpenAIChatModel:
        connection = openai_connection(settings.llm_timeout_seconds, settings.openai_secret_arn)
        return cls(model, connection)

    def _limits(self, request: GenerationRequest) -> dict[str, Any]:
        if self.model.startswith(_REASONING_MODEL_PREFIXES):
            return {"max_completion_tokens": request.max_tokens}
        return {"max_tokens": request.max_tokens, "temperature": request.temperature}

    def generate(self, request: GenerationRequest) -> Completion:
        started = time.perf_counter()
        try:
            response = self.connection.client().chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": request.system},
                    {"role": "user", "content": request.user},
                ],
                **self._limits(request),
            )
        except openai.OpenAIError as exc:
            raise openai_error(exc, self.spec) from None
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        if not response.choices:
            raise ModelError(f"{self.spec}: the response has no choices", retryable=True)
        choice = response.choices[0]
        text = choice.message.content or ""
        return Completion(
            text,
            _usage(response.usage, request, text),
            self.provider,
            self.model,
            details={"latency_ms": latency_ms, "finish_reason": choice.finish_reason},
        )


def _usage(reported: Any, request: GenerationRequest, text: str) -> Usage:
    """The server's token counts; estimated from the text when it sent none."""
    if reported is None:
        return Usage(
            count_tokens(request.system) + count_tokens(request.user),
            count_tokens(text),
            estimated=True,
        )
    details = getattr(reported, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) or 0
    return Usage(reported.prompt_tokens or 0, reported.completion_tokens or 0, cached)
