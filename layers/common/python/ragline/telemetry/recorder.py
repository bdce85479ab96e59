"""The cost ledger: every answered query goes to the query log and to CloudWatch.

Both take their figures from the response the caller gets, so the log, the metrics and
the response can never disagree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from ragline.errors import NotFoundError
from ragline.store import QueryLogEntry, Store, get_store
from ragline.telemetry.metrics import IngestSignals, MetricsEmitter, QuerySignals
from ragline.telemetry.pricing import get_price_table

if TYPE_CHECKING:
    from ragline.config import Settings
    from ragline.ingest import IngestResult
    from ragline.schemas import QueryResponse

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueryContext:
    """What the response does not say but the ledger needs."""

    question: str
    collection: str
    profile: str
    chunks_retrieved: int
    top_score: float | None
    fallback: bool = False
    needs_review: bool = False
    cost_estimated: bool = False
    status_code: int = 200


class Recorder:
    """Writes the query log and the EMF metrics for queries, objects and feedback."""

    def __init__(self, settings: Settings, store: Store, emitter: MetricsEmitter) -> None:
        self.settings = settings
        self.store = store
        self.emitter = emitter

    @classmethod
    def from_settings(cls, settings: Settings) -> Recorder:
        return cls(settings, get_store(settings), MetricsEmitter.from_settings(settings))

    def query(self, response: QueryResponse, context: QueryContext) -> None:
        """Log one answered query and emit its EMF document."""
        usage, latency = response.usage, response.latency_ms
        signals = QuerySignals(
            provider=response.model.provider,
            model=response.model.name,
            prompt=response.model.prompt,
            profile=context.profile,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            embedding_tokens=usage.embedding_tokens,
            cost_usd=usage.cost_usd,
            retrieve_ms=latency.retrieve,
            generate_ms=latency.generate,
            total_ms=latency.total,
            chunks_retrieved=context.chunks_retrieved,
            top_score=context.top_score,
            abstained=response.abstained,
            needs_review=context.needs_review,
            fallback=context.fallback,
        )
        self.emitter.query(signals)
        self.store.log_query(
            QueryLogEntry(
                request_id=response.request_id,
                collection=context.collection,
                profile=context.profile,
                provider=signals.provider,
                model=signals.model,
                prompt=signals.prompt,
                input_tokens=signals.input_tokens,
                output_tokens=signals.output_tokens,
                cached_input_tokens=signals.cached_input_tokens,
                embedding_tokens=signals.embedding_tokens,
                cost_usd=signals.cost_usd,
                cost_estimated=context.cost_estimated,
                retrieve_ms=signals.retrieve_ms,
                generate_ms=signals.generate_ms,
                total_ms=signals.total_ms,
                chunks_retrieved=signals.chunks_retrieved,
                top_score=signals.top_score,
                abstained=signals.abstained,
                needs_review=signals.needs_review,
                fallback=signals.fallback,
                status_code=context.status_code,
                sources=sorted({c.source for c in response.citations}),
                question=context.question if self.settings.log_questions else None,
            )
        )

    def ingest(self, result: IngestResult) -> None:
        """Emit the EMF document of one object event, with what its embeddings cost."""
        cost = (
            get_price_table(self.settings.prices_file).embedding_cost(
                result.embedding_model, result.embedding_tokens
            )
            if result.embedding_model
            else None
        )
        embedding_cost_usd = 0.0 if cost is None else cost.usd
        self.emitter.ingest(
            IngestSignals(
                status=result.status,
                chunks=result.chunks,
                embedding_tokens=result.embedding_tokens,
                embedding_cost_usd=embedding_cost_usd,
                latency_ms=result.latency_ms,
            )
        )

    def feedback(self, request_id: str, rating: str, comment: str | None) -> None:
        """Store a caller's rating with its query and count it; 404 for unknown queries."""
        if not self.store.record_feedback(request_id, rating, comment):
            raise NotFoundError(f"no logged query with request id {request_id}")
        self.emitter.feedback(rating)


@lru_cache(maxsize=4)
def get_recorder(settings: Settings) -> Recorder:
    """The process's recorder, created once."""
    return Recorder.from_settings(settings)
