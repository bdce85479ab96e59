"""Amazon Titan Text Embeddings V2 on Bedrock (``bedrock:amazon.titan-embed-text-v2:0``).

Titan embeds one text per ``invoke_model`` call, so a batch is sent as concurrent calls
on the one (thread-safe) client. Vectors are 256, 512 or 1,024 long
(``RAGLINE_EMBEDDING_DIMENSIONS``, default 1,024) and come back normalized.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ragline.embeddings.base import Embedder, EmbeddingResult
from ragline.errors import ConfigurationError, ModelError
from ragline.providers.clients import aws_client, aws_error
from ragline.providers.retry import RetryPolicy

if TYPE_CHECKING:
    from ragline.config import Settings

# Model id prefix -> (default dimensions, allowed dimensions).
MODELS: dict[str, tuple[int, tuple[int, ...]]] = {
    "amazon.titan-embed-text-v2": (1024, (256, 512, 1024)),
}
# Concurrent calls per batch: enough to hide the per-call latency, few enough to stay
# clear of the account's requests-per-minute quota.
DEFAULT_WORKERS = 8


def _model_family(model_id: str) -> tuple[int, tuple[int, ...]]:
    for prefix, family in MODELS.items():
        if model_id.startswith(prefix):
            return family
    raise ConfigurationError(
        f"bedrock embeddings: {model_id!r} is not supported; known: "
        + ", ".join(f"{prefix}:0" for prefix in MODELS)
    )


class BedrockEmbedder(Embedder):
    """``bedrock:<modelId>``: one ``invoke_model`` per text, run concurrently."""

    def __init__(
        self,
        model_id: str,
        client: Any,
        *,
        dimensions: int | None = None,
        retry: RetryPolicy | None = None,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        default, allowed = _model_family(model_id)
        dimensions = dimensions or default
        if dimensions not in allowed:
            raise ConfigurationError(
                f"RAGLINE_EMBEDDING_DIMENSIONS={dimensions} is not offered by {model_id}; "
                f"choose one of {', '.join(map(str, allowed))}"
            )
        super().__init__(dimensions)
        self.model_id = model_id
        self.name = f"bedrock:{model_id}"
        self.client = client
        self.retry = retry or RetryPolicy()
        self.workers = workers

    @classmethod
    def from_settings(cls, model: str, settings: Settings) -> BedrockEmbedder:
        return cls(
            model,
            aws_client("bedrock-runtime", settings.llm_timeout_seconds),
            dimensions=settings.embedding_dimensions,
            retry=RetryPolicy.from_settings(settings),
        )

    def embed_batch(self, texts: list[str]) -> EmbeddingResult:
        """The whole input as concurrent calls (Titan takes one text a call)."""
        import numpy as np  # here, not at import: see embeddings/base.py

        if self.workers <= 1 or len(texts) == 1:
            results = [self._embed_one(text) for text in texts]
        else:
            with ThreadPoolExecutor(min(self.workers, len(texts))) as pool:
                results = list(pool.map(self._embed_one, texts))
        vectors = np.asarray([vector for vector, _ in results], dtype=np.float32)
        return EmbeddingResult(vectors, sum(tokens for _, tokens in results))

    def _embed_one(self, text: str) -> tuple[list[float], int]:
        body = {"inputText": text, "dimensions": self.dimensions, "normalize": True}

        def call() -> dict[str, Any]:
            try:
                response = self.client.invoke_model(
                    modelId=self.model_id,
                    body=json.dumps(body),
                    contentType="application/json",
                    accept="application/json",
                )
                data: dict[str, Any] = json.loads(response["body"].read())
            except (BotoCoreError, ClientError) as exc:
                raise aws_error(exc, self.name) from None
            return data

        data, _ = self.retry.run(call, what=f"{self.name} embeddings")
        vector = data.get("embedding")
        if not isinstance(vector, list) or len(vector) != self.dimensions:
            raise ModelError(f"{self.name}: expected a {self.dimensions}-dimensional embedding")
        return vector, int(data.get("inputTextTokenCount", 0))
