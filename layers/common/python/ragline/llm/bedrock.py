"""Chat models on Amazon Bedrock through the Converse API (one request shape for all models)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ragline.errors import ModelError
from ragline.llm.base import ChatModel, Completion, GenerationRequest, Usage
from ragline.providers.clients import aws_client, aws_error

if TYPE_CHECKING:
    from ragline.config import Settings


def converse_params(model_id: str, request: GenerationRequest) -> dict[str, Any]:
    """The Converse request for a generation request."""
    return {
        "modelId": model_id,
        "messages": [{"role": "user", "content": [{"text": request.user}]}],
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
