"""Embeddings through the OpenAI API, or any server speaking it (``OPENAI_BASE_URL``).

Requests stay inside the API's limits (2,048 inputs and 300,000 tokens a request) however
many texts the caller passes. ``RAGLINE_EMBEDDING_DIMENSIONS`` asks the model for shorter
vectors (text-embedding-3 models); without it the dimension is the model's own, known for
OpenAI's models and learned from one call for any other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import openai

from ragline.embeddings.base import Embedder, EmbeddingResult
from ragline.errors import ModelError
from ragline.providers.clients import OpenAIConnection, openai_connection, openai_error
from ragline.providers.retry import RetryPolicy
from ragline.tokens import count_tokens

if TYPE_CHECKING:
    from ragline.config import Settings

MAX_INPUTS_PER_REQUEST = 2048
MAX_TOKENS_PER_REQUEST = 300_000
# Native dimensions of OpenAI's embedding models; others are learned from a first call.
NATIVE_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


class OpenAIEmbedder(Embedder):
    """``openai:<model>``, for example ``openai:text-embedding-3-small``."""

    batch_size = MAX_INPUTS_PER_REQUEST
    batch_tokens = MAX_TOKENS_PER_REQUEST

    def __init__(
        self,
        model: str,
        connection: OpenAIConnection,
        *,
        dimensions: int | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(dimensions or NATIVE_DIMENSIONS.get(model))
        self.model = model
        self.name = f"openai:{model}"
        self.connection = connection
        self.requested_dimensions = dimensions
        self.retry = retry or RetryPolicy()

    @classmethod
    def from_settings(cls, model: str, settings: Settings) -> OpenAIEmbedder:
        connection = openai_connection(settings.llm_timeout_seconds, settings.openai_secret_arn)
        return cls(
            model,
            connection,
            dimensions=settings.embedding_dimensions,
            retry=RetryPolicy.from_settings(settings),
        )

    def embed_batch(self, texts: list[str]) -> EmbeddingResult:
        """One API request: raw vectors and the tokens the server counted."""
        import numpy as np  # here, not at import: see embeddings/base.py

        options: dict[str, Any] = {"model": self.model, "input": texts}
        if self.requested_dimensions is not None:
            options["dimensions"] = self.requested_dimensions
        # Floats, not the SDK's default base64: every compatible server speaks floats.
        options["encoding_format"] = "float"

        def call() -> Any:
            try:
                return self.connection.client().embeddings.create(**options)
            except openai.OpenAIError as exc:
                raise openai_error(exc, self.name) from None

        response, _ = self.retry.run(call, what=f"{self.name} embeddings")
        rows = sorted(response.data, key=lambda item: item.index)
        if len(rows) != len(texts):
            raise ModelError(f"{self.name} returned {len(rows)} vectors for {len(texts)} texts")
        vectors = np.asarray([row.embedding for row in rows], dtype=np.float32)
        usage = getattr(response, "usage", None)
        if usage is None or usage.prompt_tokens is None:
            return EmbeddingResult(vectors, sum(count_tokens(t) for t in texts), True)
        return EmbeddingResult(vectors, usage.prompt_tokens)
