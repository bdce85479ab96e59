"""A ``POST {RAGLINE_RERANKER_URL}/rerank`` server (``http:<model>``).

One request shape that the common servers all read: ``{"model", "query", "documents",
"top_n"}`` for Cohere's API, vLLM and Infinity, with the same passages as ``texts`` for
Hugging Face's Text Embeddings Inference (TEI), which ignores the fields it does not
know (as the others ignore ``texts``). Both answer shapes are read: ``{"results":
[{"index", "relevance_score"}]}`` and TEI's bare ``[{"index", "score"}]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ragline.errors import ConfigurationError, ModelError
from ragline.providers.clients import post_json
from ragline.providers.retry import RetryPolicy
from ragline.rerankers.base import Ranked, Reranker, parse_ranking, ranking_rows, rerank_retry

if TYPE_CHECKING:
    from ragline.config import Settings


class HttpReranker(Reranker):
    """``http:<model>`` at ``base_url``; ``api_key`` goes as a bearer token when set."""

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_seconds: float = 5.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.model = model
        self.name = f"http:{model}"
        self.url = base_url.rstrip("/") + "/rerank"
        self.api_key = api_key
        self.timeout_seconds = timeout_seconds
        self.retry = retry or RetryPolicy()

    @classmethod
    def from_settings(cls, model: str, settings: Settings) -> HttpReranker:
        if not settings.reranker_url:
            raise ConfigurationError(
                f"RAGLINE_RERANKER=http:{model} needs RAGLINE_RERANKER_URL, the server's base "
                "URL (for example http://localhost:8080 or https://api.cohere.com/v2)"
            )
        return cls(
            model,
            settings.reranker_url,
            api_key=settings.reranker_api_key,
            timeout_seconds=settings.rerank_timeout_seconds,
            retry=rerank_retry(settings),
        )

    def rank(self, query: str, documents: Sequence[str], top_n: int) -> list[Ranked]:
        texts = list(documents)
        body = {"model": self.model, "query": query, "documents": texts, "texts": texts,
                "top_n": min(top_n, len(texts))}  # fmt: skip

        def call() -> object:
            return post_json(
                self.url, body, timeout_seconds=self.timeout_seconds, what=self.name,
                api_key=self.api_key,
            )  # fmt: skip

        data, _ = self.retry.run(call, what=f"{self.name} rerank")
        try:
            rows = ranking_rows(data)
        except ValueError as exc:
            raise ModelError(f"{self.name}: not a rerank answer: {str(data)[:200]}") from exc
        return parse_ranking(rows, documents=len(texts), wanted=top_n, what=self.name)
