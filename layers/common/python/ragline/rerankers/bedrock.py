"""The Bedrock Rerank API (``bedrock:amazon.rerank-v1:0``, ``bedrock:cohere.rerank-v3-5:0``).

``bedrock-agent-runtime``'s ``rerank`` takes the query, the passages as inline text
documents and the model's ARN, and answers each passage's index with a relevance score.
Bedrock bills it per query: one query per started 100 documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ragline.providers.clients import aws_client, aws_error
from ragline.providers.retry import RetryPolicy
from ragline.rerankers.base import Ranked, Reranker, parse_ranking, rerank_retry

if TYPE_CHECKING:
    from ragline.config import Settings


def model_arn(model_id: str, *, region: str, partition: str = "aws") -> str:
    """The foundation-model ARN the Rerank API names its model by."""
    return f"arn:{partition}:bedrock:{region}::foundation-model/{model_id}"


class BedrockReranker(Reranker):
    """``bedrock:<modelId>``: one ``rerank`` call per query."""

    def __init__(self, model_id: str, client: Any, *, retry: RetryPolicy | None = None) -> None:
        self.model_id = model_id
        self.name = f"bedrock:{model_id}"
        self.client = client
        self.retry = retry or RetryPolicy()
        self.model_arn = model_arn(
            model_id, region=client.meta.region_name, partition=client.meta.partition
        )

    @classmethod
    def from_settings(cls, model: str, settings: Settings) -> BedrockReranker:
        return cls(
            model,
            aws_client("bedrock-agent-runtime", settings.rerank_timeout_seconds),
            retry=rerank_retry(settings),
        )

    def rank(self, query: str, documents: Sequence[str], top_n: int) -> list[Ranked]:
        request = {
            "queries": [{"type": "TEXT", "textQuery": {"text": query}}],
            "sources": [
                {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT",
                                                            "textDocument": {"text": text}}}
                for text in documents
            ],
            "rerankingConfiguration": {
                "type": "BEDROCK_RERANKING_MODEL",
                "bedrockRerankingConfiguration": {
                    "modelConfiguration": {"modelArn": self.model_arn},
                    "numberOfResults": min(top_n, len(documents)),
                },
            },
        }  # fmt: skip

        def call() -> dict[str, Any]:
            try:
                response: dict[str, Any] = self.client.rerank(**request)
            except (BotoCoreError, ClientError) as exc:
                raise aws_error(exc, self.name) from None
            return response

        response, _ = self.retry.run(call, what=f"{self.name} rerank")
        rows = [(r.get("index"), r.get("relevanceScore")) for r in response.get("results", [])]
        return parse_ranking(rows, documents=len(documents), wanted=top_n, what=self.name)
