"""What the ledger keeps of each query and each object event, as plain values.

A leaf like ``config`` and ``errors``: the store writes a :class:`QueryRecord` as a
query-log row and telemetry writes its :class:`QuerySignals` part as an EMF document,
so neither imports the other, and the fields are declared once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, kw_only=True)
class QuerySignals:
    """The figures of one answered query that go to CloudWatch (and to the query log)."""

    provider: str
    model: str
    prompt: str
    profile: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    embedding_tokens: int
    cost_usd: float | None
    retrieve_ms: float
    generate_ms: float
    total_ms: float
    chunks_retrieved: int
    top_score: float | None
    abstained: bool
    needs_review: bool
    fallback: bool
    # The reranker's figures; None when no reranker is configured.
    rerank_ms: float | None = None
    rerank_cost_usd: float | None = None
    rerank_failed: bool | None = None
    # The answer repeated an instruction found in a passage (it is also needs_review).
    instruction_echo: bool = False
    # Who asked: the tenant of the caller's API key ("default": ragline.identity's
    # DEFAULT_TENANT, the in-process callers' and the data from before tenants).
    tenant: str = "default"


# Signals that go to CloudWatch but have no query-log column (retrieve_ms and cost_usd
# there include the reranker's share; needs_review there includes instruction_echo).
NOT_IN_QUERY_LOG = frozenset({"rerank_ms", "rerank_cost_usd", "rerank_failed", "instruction_echo"})


@dataclass(frozen=True, kw_only=True)
class QueryRecord(QuerySignals):
    """One answered query as the ledger keeps it: its signals, plus what only the query
    log holds (metrics must not carry per-request values such as ids or sources)."""

    request_id: str
    collection: str
    cost_estimated: bool
    sources: list[str]
    status_code: int = 200
    question: str | None = None
    # A follow-up: its session (None: none, or a caller-kept history), and the rewrite of
    # the question into a search query, priced on its own (rewrite_cost_usd is a part of
    # cost_usd; None when its model is not priced). rewrite_model is None when no model
    # wrote it (a first question, or the deterministic rewrite).
    session_id: str | None = None
    rewrite_model: str | None = None
    rewrite_input_tokens: int = 0
    rewrite_output_tokens: int = 0
    rewrite_cost_usd: float | None = 0.0
    created_at: datetime | None = None  # None: the time it is written


@dataclass(frozen=True)
class IngestResult:
    """What happened to one object.

    ``status``: ingested, unchanged (same content, not re-embedded), updated (same
    content, new collection or metadata applied without re-embedding), skipped (no
    loader), failed (recorded with the reason), deleted, absent (nothing to delete), or
    superseded (a newer version of the object won a race; nothing written).
    """

    source: str
    status: str
    document_id: str | None = None
    collection: str | None = None
    chunks: int = 0
    embedding_tokens: int = 0
    embedding_model: str | None = None
    error: str | None = None
    latency_ms: float = 0.0
    # How long the embedding calls held an endpoint billed by the hour (SageMaker).
    embedding_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The result as a flat mapping (the fields of a log line)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}
