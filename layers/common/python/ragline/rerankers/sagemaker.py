"""A reranker container on a SageMaker endpoint (``sagemaker:<endpoint>``).

The request is ``{"query", "texts"}`` and the answer ``[{"index", "score"}, ...]``, as
Hugging Face's Text Embeddings Inference (TEI) serves a cross-encoder such as
``BAAI/bge-reranker-base``. The endpoint bills by the instance hour; the cost of a call
is the time it held the instance (``RAGLINE_RERANKER_INSTANCE_TYPE`` prices it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ragline.errors import ModelError
from ragline.providers.clients import aws_client, invoke_endpoint
from ragline.providers.retry import RetryPolicy
from ragline.rerankers.base import Ranked, Reranker, parse_ranking, ranking_rows, rerank_retry

if TYPE_CHECKING:
    from ragline.config import Settings


class SageMakerReranker(Reranker):
    """``sagemaker:<endpoint>`` serving a TEI reranker."""

    def __init__(self, endpoint: str, client: Any, *, retry: RetryPolicy | None = None) -> None:
        self.endpoint = endpoint
        self.name = f"sagemaker:{endpoint}"
        self.client = client
        self.retry = retry or RetryPolicy()

    @classmethod
    def from_settings(cls, model: str, settings: Settings) -> SageMakerReranker:
        return cls(
            model,
            aws_client("sagemaker-runtime", settings.rerank_timeout_seconds),
            retry=rerank_retry(settings),
        )

    def rank(self, query: str, documents: Sequence[str], top_n: int) -> list[Ranked]:
        payload = {"query": query, "texts": list(documents)}

        def call() -> bytes:
            return invoke_endpoint(self.client, self.endpoint, payload, self.name)

        raw, _ = self.retry.run(call, what=f"{self.name} rerank")
        try:
            rows = ranking_rows(json.loads(raw))
        except ValueError as exc:
            snippet = raw[:200].decode("utf-8", "replace")
            raise ModelError(f"{self.name}: not a rerank answer: {snippet}") from exc
        return parse_ranking(rows, documents=len(documents), wanted=top_n, what=self.name)
