"""Chat models behind the OpenAI API, or any server speaking it (``OPENAI_BASE_URL``).

``openai:gpt-4o-mini`` against api.openai.com, or ``openai:llama3.1`` against Ollama,
vLLM, llama.cpp's server, TGI's Messages API or LM Studio: the same code, another base URL.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import openai

from ragline.errors import ModelError
from ragline.llm.base import ChatModel, Completion, GenerationRequest, Usage
from ragline.providers.clients import OpenAIConnection, openai_connection, openai_error
from ragline.tokens import count_tokens

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

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

    def _messages(self, request: GenerationRequest) -> list[ChatCompletionMessageParam]:
        history: list[ChatCompletionMessageParam] = [
            {"role": "assistant", "content": text}
            if role == "assistant"
            else {"role": "user", "content": text}
            for role, text in request.history
        ]
        return [
            {"role": "system", "content": request.system},
            *history,
            {"role": "user", "content": request.user},
        ]

    def generate(self, request: GenerationRequest) -> Completion:
        started = time.perf_counter()
        try:
            response = self.connection.client().chat.completions.create(
                model=self.model, messages=self._messages(request), **self._limits(request)
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

    def stream(self, request: GenerationRequest) -> Generator[str | Completion, None, None]:
        """Chat completion chunks as they come; ``include_usage`` makes the server send
        the exact usage (cached tokens included) in a last chunk without choices."""
        started = time.perf_counter()
        try:
            chunks = self.connection.client().chat.completions.create(
                model=self.model,
                messages=self._messages(request),
                stream=True,
                stream_options={"include_usage": True},
                **self._limits(request),
            )
        except openai.OpenAIError as exc:
            raise openai_error(exc, self.spec) from None
        written: list[str] = []
        reported: Any = None
        finish_reason: str | None = None
        first_token_ms: float | None = None
        with chunks:  # closes the connection when the caller stops early, too
            try:
                for chunk in chunks:
                    if chunk.usage is not None:
                        reported = chunk.usage
                    if not chunk.choices:
                        continue
                    choice = chunk.choices[0]
                    finish_reason = choice.finish_reason or finish_reason
                    delta = choice.delta.content if choice.delta is not None else None
                    if delta:
                        if first_token_ms is None:
                            first_token_ms = round((time.perf_counter() - started) * 1000, 2)
                        written.append(delta)
                        yield delta
            except openai.OpenAIError as exc:
                raise openai_error(exc, self.spec) from None
        text = "".join(written)
        yield Completion(
            text,
            _usage(reported, request, text),
            self.provider,
            self.model,
            details={
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                "first_token_ms": first_token_ms,
                "finish_reason": finish_reason,
            },
        )


def _usage(reported: Any, request: GenerationRequest, text: str) -> Usage:
    """The server's token counts; estimated from the text when it sent none."""
    if reported is None:
        return Usage(
            request.prompt_tokens(),
            count_tokens(text),
            estimated=True,
        )
    details = getattr(reported, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) or 0
    return Usage(reported.prompt_tokens or 0, reported.completion_tokens or 0, cached)
