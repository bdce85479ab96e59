"""CloudWatch metrics as Embedded Metric Format: one document per query, per object, and
per reading of the GPU endpoint's instances.

Every document carries the ``service`` dimension set (what alarms and dashboard totals
read: CloudWatch alarms cannot sum over a SEARCH); query documents also carry the set
``service, Provider, Model, Prompt, Profile``, whose values are bounded by configuration.

A query document names its ``Tenant`` too, as the one dimension beside ``service`` of a
second directive that carries only what a tenant is billed for (:data:`TENANT_METRICS`).
CloudWatch bills each metric name and dimension combination as a custom metric: the
tenant in the model set would multiply its 14 metrics by every tenant's mix of
providers, models, prompts and profiles, where this costs four metrics per tenant, and a
per-tenant daily cost alarm reads ``CostUSD`` on ``service, Tenant``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

if TYPE_CHECKING:
    from ragline.config import Settings
    from ragline.outcomes import QuerySignals

COUNT = MetricUnit.Count
MS = MetricUnit.Milliseconds
NONE = MetricUnit.NoUnit


@dataclass(frozen=True)
class IngestSignals:
    """The figures of one object event that go to CloudWatch."""

    status: str  # ingested, unchanged, skipped, failed, deleted, absent
    chunks: int
    embedding_tokens: int
    embedding_cost_usd: float | None
    latency_ms: float


@dataclass(frozen=True)
class EndpointSignals:
    """One reading of the SageMaker endpoint's instances (``ragline.metering``)."""

    instances: int
    cost_usd: float | None  # instances x hourly price x the period; None when unpriced


# A query's estimated cost in USD, and the dimension set that carries a tenant's share:
# Powertools' ``service`` dimension and the ``Tenant``. The stack's per-tenant daily cost
# alarms read these names (stacks/monitoring.py).
COST_METRIC = "CostUSD"
SERVICE_DIMENSION = "service"
TENANT_DIMENSION = "Tenant"
TENANT_DIMENSIONS = (SERVICE_DIMENSION, TENANT_DIMENSION)
# What a query document carries on ``service, Tenant``: what the tenant is billed for
# (the number of queries is CostUSD's sample count).
TENANT_METRICS = ("InputTokens", "OutputTokens", "EmbeddingTokens", COST_METRIC)

# Ingest result status -> the counter it increments.
_STATUS_METRIC = {
    "ingested": "DocumentsIngested",
    "unchanged": "DocumentsSkipped",
    "skipped": "DocumentsSkipped",
    "failed": "DocumentsFailed",
    "deleted": "DocumentsDeleted",
}


class MetricsEmitter:
    """Writes EMF documents to stdout, where Lambda's log agent turns them into metrics."""

    def __init__(self, namespace: str, service: str) -> None:
        self.metrics = Metrics(namespace=namespace, service=service)
        self.service = service

    @classmethod
    def from_settings(cls, settings: Settings) -> MetricsEmitter:
        return cls(settings.metrics_namespace, settings.service_name)

    @contextmanager
    def _document(self, tenant: str | None = None) -> Iterator[Metrics]:
        """One EMF document of the metrics added in the block; with ``tenant``, also a
        directive putting :data:`TENANT_METRICS` on ``service, Tenant``."""
        self.metrics.clear_metrics()
        try:
            yield self.metrics
            if tenant is None:
                self.metrics.flush_metrics()
            elif not is_metrics_disabled():
                document: dict[str, Any] = dict(self.metrics.serialize_metric_set())
                directives = document["_aws"]["CloudWatchMetrics"]
                billed = [
                    metric
                    for metric in directives[0]["Metrics"]
                    if metric["Name"] in TENANT_METRICS
                ]
                directives.append(
                    {
                        "Namespace": directives[0]["Namespace"],
                        "Dimensions": [list(TENANT_DIMENSIONS)],
                        "Metrics": billed,
                    }
                )
                document[TENANT_DIMENSION] = tenant
                print(json.dumps(document, separators=(",", ":")))
        finally:
            self.metrics.clear_metrics()

    def query(self, s: QuerySignals) -> None:
        """One EMF document for one answered query, with the tenant's share (its tokens
        and cost) under a directive of its own, on ``service, Tenant``."""
        with self._document(tenant=s.tenant) as m:
            m.add_dimensions(
                service=self.service,
                Provider=s.provider,
                Model=s.model,
                Prompt=s.prompt,
                Profile=s.profile,
            )
            for name, unit, value in (
                ("InputTokens", COUNT, s.input_tokens),
                ("OutputTokens", COUNT, s.output_tokens),
                ("CachedInputTokens", COUNT, s.cached_input_tokens),
                ("EmbeddingTokens", COUNT, s.embedding_tokens),
                (COST_METRIC, NONE, s.cost_usd),  # absent, not zero, when unpriced
                ("RetrieveLatency", MS, s.retrieve_ms),
                ("GenerateLatency", MS, s.generate_ms),
                ("TotalLatency", MS, s.total_ms),
                ("ChunksRetrieved", COUNT, s.chunks_retrieved),
                ("TopScore", NONE, s.top_score),
                ("Abstained", COUNT, int(s.abstained)),
                ("NeedsReview", COUNT, int(s.needs_review)),
                ("InstructionEcho", COUNT, int(s.instruction_echo)),
                ("Fallback", COUNT, int(s.fallback)),
            ):
                if value is not None:
                    m.add_metric(name=name, unit=unit, value=value)
            if s.rerank_ms is not None:  # a reranker is configured
                m.add_metric(name="RerankLatency", unit=MS, value=s.rerank_ms)
                m.add_metric(name="RerankFailed", unit=COUNT, value=int(bool(s.rerank_failed)))
                if s.rerank_cost_usd is not None:
                    m.add_metric(name="RerankCostUSD", unit=NONE, value=s.rerank_cost_usd)

    def ingest(self, s: IngestSignals) -> None:
        """One EMF document for one object event (nothing for an absent object)."""
        counter = _STATUS_METRIC.get(s.status)
        if counter is None:
            return
        with self._document() as m:
            m.add_metric(name=counter, unit=COUNT, value=1)
            written = s.chunks if s.status == "ingested" else 0
            m.add_metric(name="ChunksWritten", unit=COUNT, value=written)
            m.add_metric(name="EmbeddingTokens", unit=COUNT, value=s.embedding_tokens)
            if s.embedding_cost_usd is not None:
                m.add_metric(name="EmbeddingCostUSD", unit=NONE, value=s.embedding_cost_usd)
            m.add_metric(name="IngestLatency", unit=MS, value=s.latency_ms)

    def endpoint(self, s: EndpointSignals) -> None:
        """One EMF document for one reading of the endpoint: on ``{service}`` only, the
        dimension set the daily cost alarm sums."""
        with self._document() as m:
            m.add_metric(name="EndpointInstances", unit=COUNT, value=s.instances)
            if s.cost_usd is not None:  # absent, not zero, when the type has no price
                m.add_metric(name="EndpointCostUSD", unit=NONE, value=s.cost_usd)

    def feedback(self, rating: str) -> None:
        with self._document() as m:
            m.add_dimensions(service=self.service, Rating=rating)
            m.add_metric(name="Feedback", unit=COUNT, value=1)

    # --- the review queue (ragline.reviews): on ``service``, and approvals per model ---

    def review_queued(self, reason: str) -> None:
        """An item entered the review queue, counted by why."""
        with self._document() as m:
            m.add_dimensions(service=self.service, Reason=reason)
            m.add_metric(name="ReviewsQueued", unit=COUNT, value=1)

    def review_queue(self, depth: int, oldest_age_seconds: float) -> None:
        """A reading of the queue (every tenant's), taken whenever it changes."""
        with self._document() as m:
            m.add_metric(name="ReviewQueueDepth", unit=COUNT, value=depth)
            m.add_metric(name="ReviewOldestAge", unit=MetricUnit.Seconds, value=oldest_age_seconds)

    def review_decided(self, *, approved: bool, model: str, prompt: str, seconds: float) -> None:
        """A decision: ``ReviewApproved`` is 1 for approved, 0 for corrected or rejected,
        so its average is the approval rate, on ``service`` (the daily alarm) and per
        ``Model, Prompt`` (Powertools puts each document on ``service`` as well, so one
        document serves both); ``ReviewDecisionTime`` is the wait from queue to decision."""
        with self._document() as m:
            m.add_metric(name="ReviewDecisionTime", unit=MetricUnit.Seconds, value=seconds)
        with self._document() as m:
            m.add_dimensions(service=self.service, Model=model, Prompt=prompt)
            m.add_metric(name="ReviewApproved", unit=COUNT, value=int(approved))
