"""Embeddings from a text-embeddings container on a SageMaker endpoint.

The request is ``{"inputs": [text, ...]}`` and the response one vector per text, as
Hugging Face's Text Embeddings Inference (TEI) serves them. The dimension is the
model's: ``RAGLINE_EMBEDDING_DIMENSIONS`` when set, otherwise learned from one call.
TEI does not report token counts, so they are estimated and marked as such.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from ragline.embeddings.base import Embedder, EmbeddingResult
from ragline.errors import ModelError
from ragline.providers.clients import aws_client, invoke_endpoint
from ragline.providers.retry import RetryPolicy
from ragline.tokens import count_tokens

if TYPE_CHECKING:
    from ragline.config import Settings

# TEI's default --max-client-batch-size: larger requests are refused.
DEFAULT_BATCH_SIZE = 32


def parse_vectors(data: Any) -> list[list[float]]:
    """Vectors from a TEI-style response: a list of vectors, or ``{"embeddings": [...]}``."""
    if isinstance(data, dict):
        data = data.get("embeddings")
    if not isinstance(data, list) or not data:
        raise ValueError("expected a list of vectors")
    for row in data:
        if not isinstance(row, list) or not row or not isinstance(row[0], int | float):
            raise ValueError("expected a list of vectors")
    return data


class SageMakerEmbedder(Embedder):
    """``sagemaker:<endpoint>`` serving a text-embeddings container."""

    batch_size = DEFAULT_BATCH_SIZE

    def __init__(
        self,
        endpoint: str,
        client: Any,
        *,
        dimensions: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(dimensions)
        self.endpoint = endpoint
        self.name = f"sagemaker:{endpoint}"
        self.client = client
        self.batch_size = batch_size
        self.retry = retry or RetryPolicy()

    @classmethod
    def from_settings(cls, model: str, settings: Settings) -> SageMakerEmbedder:
        return cls(
            model,
            aws_client("sagemaker-runtime", settings.llm_timeout_seconds),
            dimensions=settings.embedding_dimensions,
            retry=RetryPolicy.from_settings(settings),
        )

    def embed_batch(self, texts: list[str]) -> EmbeddingResult:
        """One endpoint call; TEI reports no token counts, so they are estimated."""
        import numpy as np  # here, not at import: see embeddings/base.py

        held: list[float] = []

        def call() -> bytes:
            started = time.perf_counter()
            raw = invoke_endpoint(self.client, self.endpoint, {"inputs": texts}, self.name)
            held.append(time.perf_counter() - started)
            return raw

        raw, _ = self.retry.run(call, what=f"{self.name} embeddings")
        try:
            rows = parse_vectors(json.loads(raw))
        except ValueError as exc:
            snippet = raw[:200].decode("utf-8", "replace")
            raise ModelError(f"{self.name}: not a text-embeddings response: {snippet}") from exc
        if len(rows) != len(texts):
            raise ModelError(f"{self.name} returned {len(rows)} vectors for {len(texts)} texts")
        vectors = np.asarray(rows, dtype=np.float32)
        # The instance is billed by the hour: the call that answered is what it cost (as for
        # the SageMaker chat model), priced with RAGLINE_EMBEDDINGS_INSTANCE_TYPE.
        tokens = sum(count_tokens(t) for t in texts)
        return EmbeddingResult(vectors, tokens, estimated_tokens=True, seconds=held[-1])
