"""The reranker interface: a query and candidate passages in, their best order out.

A reranker reads the query and each passage together (a cross-encoder), which ranks far
better than comparing two vectors but costs a model call per query. It runs after the
search, on the few dozen candidates the search found, never on the whole collection.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from ragline.errors import ModelError
from ragline.providers.retry import RetryPolicy

if TYPE_CHECKING:
    from ragline.config import Settings

# Retries of a failed rerank call at most: it sits on the query's latency path, and the
# search's own order is a fair answer when the reranker is down.
MAX_RETRIES = 1
# Bedrock (and Cohere) bill one query per started 100 documents a call ranks.
DOCUMENTS_PER_QUERY = 100


@dataclass(frozen=True)
class Ranked:
    """One candidate in the reranker's order: its position in the input, and its score."""

    index: int
    score: float


@dataclass(frozen=True)
class RerankResult:
    """The reranker's order (best first) and what the call used.

    ``queries`` is what a per-query price counts (one per started 100 documents, as
    Bedrock and Cohere bill); ``latency_ms`` prices instance time.
    """

    ranked: list[Ranked]
    documents: int
    queries: int
    latency_ms: float


def rerank_retry(settings: Settings) -> RetryPolicy:
    """The configured retry policy, held to :data:`MAX_RETRIES` retries."""
    return RetryPolicy.from_settings(
        settings, max_retries=min(settings.llm_max_retries, MAX_RETRIES)
    )


def billed_queries(documents: int) -> int:
    """Queries a per-query price counts for one call ranking ``documents`` documents."""
    return max(1, math.ceil(documents / DOCUMENTS_PER_QUERY))


def parse_ranking(rows: Any, *, documents: int, wanted: int, what: str) -> list[Ranked]:
    """Check a provider's ``(index, score)`` rows and return them best first.

    Each index must name one of the ``documents`` sent, at most once; at least ``wanted``
    rows must come back (a server may return fewer only when fewer were sent). Anything
    else is a malformed answer, raised as a non-retryable ModelError.
    """
    if not isinstance(rows, list):
        raise ModelError(f"{what}: expected a list of results, got {type(rows).__name__}")
    ranked: list[Ranked] = []
    seen: set[int] = set()
    for index, score in rows:
        valid_index = isinstance(index, int) and not isinstance(index, bool)
        if not valid_index or not 0 <= index < documents or index in seen:
            raise ModelError(f"{what}: result index {index!r} is not one of {documents} documents")
        if isinstance(score, bool) or not isinstance(score, int | float) or math.isnan(score):
            raise ModelError(f"{what}: result {index} has no numeric score ({score!r})")
        seen.add(index)
        ranked.append(Ranked(index, float(score)))
    if len(ranked) < min(wanted, documents):
        raise ModelError(f"{what}: {len(ranked)} results for {documents} documents")
    ranked.sort(key=lambda r: -r.score)  # stable: the server's order breaks ties
    return ranked


def ranking_rows(data: Any) -> list[tuple[Any, Any]]:
    """``(index, score)`` pairs from either answer shape of a ``/rerank`` server: TEI's
    bare list of ``{"index", "score"}``, or Cohere's and vLLM's ``{"results": [{"index",
    "relevance_score"}]}``. Raises ValueError for anything else."""
    if isinstance(data, dict):
        data = data.get("results")
    if not isinstance(data, list):
        raise ValueError("expected a list of results")
    rows = []
    for row in data:
        if not isinstance(row, dict):
            raise ValueError("expected each result to be an object")
        rows.append((row.get("index"), row.get("relevance_score", row.get("score"))))
    return rows


class Reranker(ABC):
    """One reranking model. Providers implement :meth:`rank` and :meth:`from_settings`.

    ``name`` is the ``provider:model`` string (``RAGLINE_RERANKER``), which the price
    table and the response name it by.
    """

    name: str

    @classmethod
    def from_settings(cls, model: str, settings: Settings) -> Self:
        """The reranker ``<provider>:<model>`` as configured; the registry builds it so."""
        raise NotImplementedError(f"{cls.__name__} cannot be built from settings")

    @abstractmethod
    def rank(self, query: str, documents: Sequence[str], top_n: int) -> list[Ranked]:
        """The ``top_n`` (or more) best documents for ``query``, as checked by
        :func:`parse_ranking`. Raise ModelError on failure (``retryable`` when trying
        again may help) and for a malformed answer."""

    def rerank(self, query: str, documents: Sequence[str], top_n: int) -> RerankResult:
        """Order ``documents`` by relevance to ``query``; time the call for telemetry."""
        started = time.perf_counter()
        ranked = self.rank(query, documents, top_n)
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        return RerankResult(
            ranked[:top_n], len(documents), billed_queries(len(documents)), latency_ms
        )
