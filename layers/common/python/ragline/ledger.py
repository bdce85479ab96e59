"""The ledger: what each query and each object event cost, logged and counted once.

One record per query (:class:`~ragline.outcomes.QueryRecord`) becomes both the EMF
document and the query-log row; one :class:`~ragline.outcomes.IngestResult` per object
event becomes its EMF document. :class:`Costs` is the one place usage is turned into
money, for answers and for ingestion alike, so the response, the log and the metrics
cannot disagree.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import lru_cache
from typing import TYPE_CHECKING

from ragline.errors import NotFoundError
from ragline.identity import DEFAULT_TENANT, OPERATOR, Identity
from ragline.outcomes import QueryRecord
from ragline.store import get_store
from ragline.telemetry.metrics import IngestSignals, MetricsEmitter
from ragline.telemetry.pricing import Cost, PriceTable, get_price_table

if TYPE_CHECKING:
    from ragline.config import Settings
    from ragline.llm import Completion
    from ragline.outcomes import IngestResult
    from ragline.retrieval import Reranking
    from ragline.schemas import QueryResponse
    from ragline.store import Store

logger = logging.getLogger(__name__)


class Costs:
    """What model calls cost, from the usage they reported and the price table."""

    def __init__(
        self,
        prices: PriceTable,
        instance_type: str | None = None,
        reranker_instance_type: str | None = None,
        embeddings_instance_type: str | None = None,
    ) -> None:
        self.prices = prices
        # The SageMaker instance types price the time a generation (or a rerank, or an
        # embedding) held the endpoint.
        self.instance_type = instance_type
        self.reranker_instance_type = reranker_instance_type
        self.embeddings_instance_type = embeddings_instance_type

    @classmethod
    def from_settings(cls, settings: Settings) -> Costs:
        return cls(
            get_price_table(settings.prices_file),
            settings.sagemaker_instance_type,
            settings.reranker_instance_type,
            settings.embeddings_instance_type,
        )

    def embedding(self, embedder: str, tokens: int, seconds: float = 0.0) -> Cost:
        """Embedding ``tokens`` tokens with the embedder named ``embedder``; for a SageMaker
        endpoint, the ``seconds`` the calls held its instance."""
        return self.prices.embedding_cost(
            embedder, tokens, seconds=seconds, instance_type=self.embeddings_instance_type
        )

    def rerank(self, reranking: Reranking | None) -> Cost:
        """What reranking one search cost: 0 without a reranker, or when it failed (a
        call that fails is not billed)."""
        if reranking is None or reranking.failed:
            return Cost(0.0)
        return self.prices.rerank_cost(
            reranking.reranker,
            reranking.queries,
            seconds=reranking.latency_ms / 1000,
            instance_type=self.reranker_instance_type,
        )

    def query(
        self,
        completion: Completion | None,
        *,
        embedder: str,
        embedding_tokens: int,
        rerank: Cost | None = None,
        embedding_seconds: float = 0.0,
    ) -> Cost:
        """An answer: its generation (``completion`` None when no model was called) plus
        the question's embedding and the reranker's cost (:meth:`rerank`)."""
        embedding = self.embedding(embedder, embedding_tokens, embedding_seconds) + (
            rerank or Cost(0.0)
        )
        if completion is None:
            return Cost(0.0) + embedding
        return self.generation(completion) + embedding

    def generation(self, completion: Completion) -> Cost:
        """One model call: its tokens, or for a SageMaker endpoint the time it held it."""
        seconds = completion.details.get("latency_ms")
        return self.prices.generation_cost(
            completion.provider,
            completion.model,
            completion.usage,
            seconds=None if seconds is None else float(seconds) / 1000,
            instance_type=self.instance_type,
        )

    def ingestion(self, result: IngestResult) -> float | None:
        """What an object event's embeddings cost in USD (0 when nothing was embedded,
        None when the embedder is not priced)."""
        if not result.embedding_model:
            return 0.0
        return self.embedding(
            result.embedding_model, result.embedding_tokens, result.embedding_seconds
        ).usd


def query_record(
    response: QueryResponse,
    *,
    question: str,
    collection: str,
    chunks_retrieved: int,
    top_score: float | None,
    reranking: Reranking | None = None,
    tenant: str = DEFAULT_TENANT,
) -> QueryRecord:
    """The ledger's record of one answered query, from the response the caller gets
    (and ``reranking``, when a reranker is configured, for whether it failed)."""
    usage, latency = response.usage, response.latency_ms
    rewrite = response.rewrite
    return QueryRecord(
        request_id=response.request_id,
        collection=collection,
        profile=response.profile,
        provider=response.model.provider,
        model=response.model.name,
        prompt=response.model.prompt,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        embedding_tokens=usage.embedding_tokens,
        cost_usd=usage.cost_usd,
        cost_estimated=usage.cost_estimated,
        retrieve_ms=latency.retrieve,
        generate_ms=latency.generate,
        total_ms=latency.total,
        chunks_retrieved=chunks_retrieved,
        top_score=None if top_score is None else round(top_score, 6),
        abstained=response.abstained,
        needs_review=response.needs_review,
        instruction_echo=response.review_reason is not None,
        fallback=response.fallback,
        rerank_ms=None if reranking is None else latency.rerank,
        rerank_cost_usd=None if reranking is None else usage.rerank_cost_usd,
        rerank_failed=None if reranking is None else reranking.failed,
        sources=sorted({c.source for c in response.citations}),
        question=question,
        tenant=tenant,
        session_id=response.session_id,
        rewrite_model=None if rewrite is None else rewrite.model,
        rewrite_input_tokens=usage.rewrite_input_tokens,
        rewrite_output_tokens=usage.rewrite_output_tokens,
        rewrite_cost_usd=usage.rewrite_cost_usd,
    )


class Ledger:
    """Writes the query log and the EMF metrics for queries, objects and feedback."""

    def __init__(
        self, settings: Settings, store: Store, emitter: MetricsEmitter, costs: Costs
    ) -> None:
        self.settings = settings
        self.store = store
        self.emitter = emitter
        self.costs = costs

    @classmethod
    def from_settings(cls, settings: Settings) -> Ledger:
        return cls(
            settings,
            get_store(settings),
            MetricsEmitter.from_settings(settings),
            Costs.from_settings(settings),
        )

    def query(self, record: QueryRecord) -> None:
        """Emit one answered query's EMF document and write its query-log row."""
        self.emitter.query(record)
        self.store.log_query(self.query_log_row(record))

    def rejected_query(
        self,
        request_id: str,
        status_code: int,
        *,
        collection: str | None = None,
        profile: str | None = None,
        total_ms: float = 0.0,
        tenant: str = DEFAULT_TENANT,
    ) -> None:
        """Write the query-log row of a question answered with an error status (4xx, 5xx):
        no model, no usage, the collection and profile asked for (the defaults when none),
        in the log of the caller's ``tenant``.

        Never raises: the caller's error response stands whatever happens here.
        """
        record = QueryRecord(
            request_id=request_id,
            status_code=status_code,
            collection=self.settings.default_collection if collection is None else collection,
            profile=self.settings.default_profile if profile is None else profile,
            provider="", model="", prompt="",
            input_tokens=0, output_tokens=0, cached_input_tokens=0, embedding_tokens=0,
            cost_usd=None, cost_estimated=False,
            retrieve_ms=0.0, generate_ms=0.0, total_ms=round(total_ms, 2),
            chunks_retrieved=0, top_score=None,
            abstained=False, needs_review=False, fallback=False, sources=[], tenant=tenant,
        )  # fmt: skip
        try:
            self.store.log_query(record)
        except Exception:  # a failed log line must not turn a 4xx into a 500
            logger.exception("could not record rejected query %s", request_id)

    def query_log_row(self, record: QueryRecord) -> QueryRecord:
        """The row the query log keeps: the question only when RAGLINE_LOG_QUESTIONS."""
        return record if self.settings.log_questions else replace(record, question=None)

    def ingest(self, result: IngestResult) -> None:
        """Emit the EMF document of one object event, with what its embeddings cost."""
        self.emitter.ingest(
            IngestSignals(
                status=result.status,
                chunks=result.chunks,
                embedding_tokens=result.embedding_tokens,
                embedding_cost_usd=self.costs.ingestion(result),
                latency_ms=result.latency_ms,
            )
        )

    def feedback(
        self, request_id: str, rating: str, comment: str | None, *, identity: Identity = OPERATOR
    ) -> None:
        """Store a caller's rating with its query and count it: only on a query its own
        tenant asked (404 for another tenant's and for unknown ones), with the ``query``
        scope (403 without it)."""
        if not identity.allows("query"):
            if self.store.query_logged(request_id, tenant=identity.tenant):
                identity.require("query")
        elif self.store.record_feedback(request_id, rating, comment, tenant=identity.tenant):
            self.emitter.feedback(rating)
            return
        raise NotFoundError(f"no logged query with request id {request_id}")


@lru_cache(maxsize=4)
def get_ledger(settings: Settings) -> Ledger:
    """The process's ledger, created once."""
    return Ledger.from_settings(settings)
