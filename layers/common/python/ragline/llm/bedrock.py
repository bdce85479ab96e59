"""Chat models on Amazon Bedrock through the Converse API (one request shape for all models)."""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ragline.errors import ModelError
from ragline.llm.base import ChatModel, Completion, GenerationRequest, Usage
from ragline.providers.clients import aws_client, aws_error
from ragline.tokens import count_tokens

if TYPE_CHECKING:
    from ragline.config import Settings


def converse_params(model_id: str, request: GenerationRequest) -> dict[str, Any]:
    """The Converse request for a generation request."""
    return {
        "modelId": model_id,
        "messages": [
            *({"role": role, "content": [{"text": text}]} for role, text in request.history),
            {"role": "user", "content": [{"text": request.user}]},
        ],
        "system": [{"text": request.system}],
        "inferenceConfig": {"maxTokens": request.max_tokens, "temperature": request.temperature},
    }


def converse_usage(usage: dict[str, Any]) -> Usage:
    """Bedrock counts cache reads and writes apart from ``inputTokens``; ragline's
    ``input_tokens`` is every prompt token, so they are added back in."""
    read = usage.get("cacheReadInputTokens", 0)
    written = usage.get("cacheWriteInputTokens", 0)
    return Usage(usage.get("inputTokens", 0) + read + written, usage.get("outputTokens", 0), read)


class BedrockChatModel(ChatModel):
    """``bedrock:<modelId>`` (a model id or an inference profile id)."""

    provider = "bedrock"

    def __init__(self, model_id: str, client: Any) -> None:
        self.model = model_id
        self.client = client

    @classmethod
    def from_settings(cls, model: str, settings: Settings) -> BedrockChatModel:
        return cls(model, aws_client("bedrock-runtime", settings.llm_timeout_seconds))

    def generate(self, request: GenerationRequest) -> Completion:
        started = time.perf_counter()
        try:
            response = self.client.converse(**converse_params(self.model, request))
        except (BotoCoreError, ClientError) as exc:
            raise aws_error(exc, self.spec) from None
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        try:
            blocks = response["output"]["message"]["content"]
        except (KeyError, TypeError) as exc:
            raise ModelError(f"{self.spec}: the Converse response has no message") from exc
        # Reasoning models add reasoningContent blocks: the answer is the text blocks.
        text = "".join(block["text"] for block in blocks if "text" in block)
        return Completion(
            text,
            converse_usage(response.get("usage", {})),
            self.provider,
            self.model,
            details={"latency_ms": latency_ms, "finish_reason": response.get("stopReason")},
        )

    def stream(self, request: GenerationRequest) -> Generator[str | Completion, None, None]:
        """ConverseStream: text deltas as the model writes them; the usage comes in the
        stream's last (metadata) event, with cache reads and writes as Converse gives them."""
        started = time.perf_counter()
        try:
            response = self.client.converse_stream(**converse_params(self.model, request))
        except (BotoCoreError, ClientError) as exc:
            raise aws_error(exc, self.spec) from None
        events = response["stream"]
        written: list[str] = []
        usage: dict[str, Any] | None = None
        stop_reason: str | None = None
        first_token_ms: float | None = None
        try:
            # An error event of the stream (throttling, a model error) raises here.
            for event in events:
                if "contentBlockDelta" in event:
                    text = event["contentBlockDelta"].get("delta", {}).get("text")
                    if text:  # reasoning deltas carry reasoningContent, not text
                        if first_token_ms is None:
                            first_token_ms = round((time.perf_counter() - started) * 1000, 2)
                        written.append(text)
                        yield text
                elif "messageStop" in event:
                    stop_reason = event["messageStop"].get("stopReason")
                elif "metadata" in event:
                    usage = event["metadata"].get("usage")
        except (BotoCoreError, ClientError) as exc:
            raise aws_error(exc, self.spec) from None
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()  # the HTTP connection, when the caller stops early
        text = "".join(written)
        yield Completion(
            text,
            converse_usage(usage) if usage is not None else _estimated(request, text),
            self.provider,
            self.model,
            details={
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                "first_token_ms": first_token_ms,
                "finish_reason": stop_reason,
            },
        )


def _estimated(request: GenerationRequest, text: str) -> Usage:
    """Counted from the text, for a stream that ended without its metadata event."""
    prompt = request.prompt_tokens()
    return Usage(prompt, count_tokens(text), estimated=True)
