"""Request and response shapes of the REST API, shared by the handler and the use cases."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

COLLECTION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
EF_SEARCH = Field(
    default=None,
    ge=10,
    le=1000,
    description="HNSW candidates per vector search (default RAGLINE_HNSW_EF_SEARCH): "
    "higher finds more of the exact nearest chunks and takes longer.",
)


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, description="The question to answer.")
    collection: str | None = Field(default=None, pattern=COLLECTION_PATTERN)
    top_k: int | None = Field(default=None, ge=1, le=100)
    profile: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    ef_search: int | None = EF_SEARCH


class RetrieveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1)
    top_k: int | None = Field(default=None, ge=1, le=100)
    mode: Literal["hybrid", "vector", "keyword"] = "hybrid"
    collection: str | None = Field(default=None, pattern=COLLECTION_PATTERN)
    ef_search: int | None = EF_SEARCH


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=128)
    rating: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=2000)


class Citation(BaseModel):
    n: int
    document_id: str
    source: str
    title: str | None
    chunk_id: int
    score: float
    text: str
    section: str = ""


class ModelInfo(BaseModel):
    provider: str
    name: str
    prompt: str


class UsageInfo(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    embedding_tokens: int = 0
    cost_usd: float | None = 0.0
    cost_estimated: bool = False
    estimated: bool = False
    rerank_cost_usd: float | None = Field(
        default=0.0, description="The reranker's part of cost_usd (null when unpriced)."
    )


class Latency(BaseModel):
    retrieve: float
    generate: float
    total: float
    rerank: float = Field(default=0.0, description="The reranker's part of retrieve.")


class QueryResponse(BaseModel):
    answer: str
    citations: list[Citation]
    abstained: bool
    profile: str = Field(description="The routing profile that served the question.")
    needs_review: bool = Field(
        default=False, description="The profile asks a person to review this answer."
    )
    fallback: bool = Field(
        default=False,
        description="A fallback model answered because the profile's model failed; "
        "model names the one that answered.",
    )
    model: ModelInfo
    usage: UsageInfo
    latency_ms: Latency
    request_id: str
    reranker: str | None = Field(
        default=None,
        description="The reranker that ordered the passages; null when none is configured "
        "or it failed (the passages are then in the search's order).",
    )
    review_reason: str | None = Field(
        default=None,
        description="Why this answer needs review beyond its profile's rule, such as an "
        "instruction from a passage that the answer repeats; null when there is none.",
    )


class RetrievedItem(BaseModel):
    chunk_id: int
    document_id: str
    source: str
    title: str | None
    section: str
    text: str
    score: float
    similarity: float | None = None


class RetrieveResponse(BaseModel):
    results: list[RetrievedItem]
    embedding_tokens: int = 0
    reranker: str | None = Field(
        default=None, description="The reranker that ordered the results, as in /query."
    )
    rerank_ms: float = 0.0
    rerank_cost_usd: float | None = 0.0
