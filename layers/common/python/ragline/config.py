"""Settings from the environment, parsed and validated once.

Logic never reads ``os.environ``: handlers and the command line call
:func:`get_settings` (cached) or build :class:`Settings` from a mapping in tests.
The same variables configure the local stack and Lambda (CDK sets them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ragline.errors import ConfigurationError

# The most passages one request may ask for: the API schema's limit (ragline.schemas) and
# the ceiling of RAGLINE_MAX_TOP_K, so the documented limit and the enforced one agree.
MAX_TOP_K = 50

# Environment variable -> settings field. One table, so the names are documented in one place.
ENVIRONMENT: dict[str, str] = {
    "RAGLINE_DATABASE_URL": "database_url",
    "RAGLINE_DATABASE_SECRET_ARN": "database_secret_arn",
    "RAGLINE_DATABASE_DRIVER": "database_driver",
    "RAGLINE_DATABASE_CLUSTER_ARN": "database_cluster_arn",
    "RAGLINE_DATABASE_NAME": "database_name",
    "RAGLINE_DATA_DIR": "data_dir",
    "RAGLINE_EMBEDDINGS": "embeddings",
    "RAGLINE_EMBEDDING_DIMENSIONS": "embedding_dimensions",
    "RAGLINE_EMBEDDING_BATCH_SIZE": "embedding_batch_size",
    "RAGLINE_ONNX_THREADS": "onnx_threads",
    "RAGLINE_LLM": "llm",
    "RAGLINE_LLM_FALLBACK": "llm_fallback",
    "RAGLINE_REASONING_LLM": "reasoning_llm",
    "RAGLINE_CRITICAL_LLM": "critical_llm",
    "RAGLINE_LLM_TIMEOUT": "llm_timeout_seconds",
    "RAGLINE_LLM_MAX_RETRIES": "llm_max_retries",
    "RAGLINE_MAX_OUTPUT_TOKENS": "max_output_tokens",
    "RAGLINE_SAGEMAKER_PAYLOAD": "sagemaker_payload",
    "RAGLINE_SAGEMAKER_INSTANCE_TYPE": "sagemaker_instance_type",
    "RAGLINE_SAGEMAKER_INFERENCE_COMPONENT": "sagemaker_inference_component",
    "RAGLINE_OPENAI_SECRET_ARN": "openai_secret_arn",
    "RAGLINE_PROFILES_FILE": "profiles_file",
    "RAGLINE_DEFAULT_PROFILE": "default_profile",
    "RAGLINE_PROMPTS_DIR": "prompts_dir",
    "RAGLINE_PRICES_FILE": "prices_file",
    "RAGLINE_COLLECTION": "default_collection",
    "RAGLINE_TOP_K": "top_k",
    "RAGLINE_MAX_TOP_K": "max_top_k",
    "RAGLINE_RERANKER": "reranker",
    "RAGLINE_RERANKER_URL": "reranker_url",
    "RAGLINE_RERANKER_API_KEY": "reranker_api_key",
    "RAGLINE_RERANKER_INSTANCE_TYPE": "reranker_instance_type",
    "RAGLINE_EMBEDDINGS_INSTANCE_TYPE": "embeddings_instance_type",
    "RAGLINE_RERANK_DEPTH": "rerank_depth",
    "RAGLINE_RERANK_TIMEOUT": "rerank_timeout_seconds",
    "RAGLINE_DATABASE_CONNECT_TIMEOUT": "database_connect_timeout_seconds",
    "RAGLINE_FUSION": "fusion",
    "RAGLINE_FUSION_VECTOR_WEIGHT": "fusion_vector_weight",
    "RAGLINE_HNSW_EF_SEARCH": "hnsw_ef_search",
    "RAGLINE_HNSW_M": "hnsw_m",
    "RAGLINE_HNSW_EF_CONSTRUCTION": "hnsw_ef_construction",
    "RAGLINE_HNSW_MAX_SCAN_TUPLES": "hnsw_max_scan_tuples",
    "RAGLINE_FILTER_EXACT_MAX_CHUNKS": "filter_exact_max_chunks",
    "RAGLINE_INDEX_BUILD_MEMORY_MB": "index_build_memory_mb",
    "RAGLINE_CHUNK_TOKENS": "chunk_tokens",
    "RAGLINE_CHUNK_OVERLAP": "chunk_overlap",
    "RAGLINE_MAX_BODY_BYTES": "max_body_bytes",
    "RAGLINE_MAX_QUESTION_CHARS": "max_question_chars",
    "RAGLINE_MAX_DOCUMENT_BYTES": "max_document_bytes",
    "RAGLINE_LOG_QUESTIONS": "log_questions",
    "RAGLINE_QUERY_LOG_RETENTION_DAYS": "query_log_retention_days",
    "RAGLINE_TRACING": "tracing",
    "POWERTOOLS_METRICS_NAMESPACE": "metrics_namespace",
    "POWERTOOLS_SERVICE_NAME": "service_name",
}


class Settings(BaseModel):
    """Every knob ragline has, with its default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Store: a URL, or on AWS a Secrets Manager secret in the RDS format; neither means
    # the embedded PostgreSQL under ``data_dir``.
    database_url: str | None = None
    database_secret_arn: str | None = None
    # How the store reaches PostgreSQL: a socket (psycopg) or, from outside the VPC, the
    # RDS Data API on the Aurora cluster ``database_cluster_arn`` with the secret above.
    database_driver: Literal["psycopg", "data-api"] = "psycopg"
    database_cluster_arn: str | None = None
    database_name: str = "ragline"  # the Data API's database (stacks/database.py's name)
    data_dir: Path = Path(".ragline")

    # Models, as provider:model strings.
    embeddings: str = "hash"
    embedding_dimensions: int | None = Field(default=None, ge=8, le=16000)
    embedding_batch_size: int = Field(default=64, ge=1, le=2048)
    # Threads ONNX Runtime computes one minilm-onnx batch with (None: os.cpu_count()).
    onnx_threads: int | None = Field(default=None, ge=1, le=256)
    llm: str = "extractive"
    llm_fallback: tuple[str, ...] = ()
    # The packaged profiles' models (${RAGLINE_REASONING_LLM}, ${RAGLINE_CRITICAL_LLM});
    # unset, those profiles use ``llm``.
    reasoning_llm: str | None = None
    critical_llm: str | None = None
    llm_timeout_seconds: float = Field(default=30.0, gt=0, le=900)
    llm_max_retries: int = Field(default=2, ge=0, le=10)
    max_output_tokens: int = Field(default=512, ge=16, le=32000)
    sagemaker_payload: str = "messages"
    sagemaker_instance_type: str | None = None
    # The chat endpoint's inference component (an endpoint that scales to zero serves
    # the model as one, and invocations must name it).
    sagemaker_inference_component: str | None = None
    openai_secret_arn: str | None = None

    # Prompts, routing profiles and prices (files override the packaged ones).
    profiles_file: Path | None = None
    default_profile: str = "simple"
    prompts_dir: Path | None = None
    prices_file: Path | None = None

    # Retrieval and chunking.
    default_collection: str = "default"
    top_k: int = Field(default=5, ge=1, le=MAX_TOP_K)
    # May lower the API's documented limit, never raise it: the schema would then lie.
    max_top_k: int = Field(default=MAX_TOP_K, ge=1, le=MAX_TOP_K)
    # Reranking the search's best candidates: ``none``, ``bedrock:<model>``,
    # ``http:<model>`` (a /rerank server at ``reranker_url``) or ``sagemaker:<endpoint>``.
    reranker: str = "none"
    reranker_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    reranker_api_key: str | None = None
    reranker_instance_type: str | None = None  # prices a sagemaker reranker's time
    embeddings_instance_type: str | None = None  # prices a sagemaker embedder's time
    rerank_depth: int = Field(default=20, ge=1, le=1000)
    # Short: the reranker is on every query's path, and a slow one is skipped, not waited on.
    rerank_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Below API Gateway's 29 s: a database that never answers is a 503, not a 504.
    database_connect_timeout_seconds: float = Field(default=20.0, ge=1, le=300)
    # How hybrid search fuses its vector and keyword lists: "relative" (each list's scores
    # scaled to 0..1, the vector list weighted by fusion_vector_weight, by default the
    # embedder's own weight) or "rrf" (Reciprocal Rank Fusion, which ignores scores).
    fusion: Literal["rrf", "relative"] = "relative"
    fusion_vector_weight: float | None = Field(default=None, ge=0.0, le=1.0)
    # HNSW candidate list per vector search (pgvector's hnsw.ef_search, 1000 at most):
    # recall against exact search for latency; bench/vector_recall.py prints the curve.
    hnsw_ef_search: int = Field(default=200, ge=10, le=1000)
    # The HNSW index's build parameters, used when a dimension's index is first created
    # (pgvector's defaults; a larger ef_construction buys recall with slower ingestion).
    hnsw_m: int = Field(default=16, ge=2, le=100)
    hnsw_ef_construction: int = Field(default=64, ge=4, le=1000)
    # A filtered vector search (a metadata filter, or a collection that is part of its
    # dimension's index) over at most this many chunks is exact: distances to each of
    # them (about 2.5 ms per 1,000). Larger selections walk the HNSW index with iterative
    # scans, visiting at most hnsw_max_scan_tuples chunks (pgvector's default; raising it
    # bought no recall in bench/filtered_recall.py, which measures both).
    filter_exact_max_chunks: int = Field(default=5000, ge=0, le=10_000_000)
    hnsw_max_scan_tuples: int = Field(default=20000, ge=1000, le=10_000_000)
    # maintenance_work_mem for an HNSW index built after a bulk load (None: the server's).
    index_build_memory_mb: int | None = Field(default=None, ge=64, le=65536)
    chunk_tokens: int = Field(default=256, ge=32, le=8192)
    chunk_overlap: int = Field(default=40, ge=0, le=4096)

    # Limits on input.
    max_body_bytes: int = Field(default=32 * 1024, ge=256)
    max_question_chars: int = Field(default=2000, ge=16)
    # A 1,000-page, 105 MB PDF peaks at 235 MB resident (bench/pdf_memory.py): it fits.
    max_document_bytes: int = Field(default=128 * 1024 * 1024, ge=1024)

    # Telemetry.
    log_questions: bool = False
    query_log_retention_days: int = Field(default=30, ge=1)
    tracing: bool = False  # X-Ray; on by default only inside Lambda (see from_env)
    metrics_namespace: str = "Ragline"
    service_name: str = "ragline"

    @field_validator("llm_fallback", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("sagemaker_payload")
    @classmethod
    def _check_payload(cls, value: str) -> str:
        if value not in {"messages", "tgi"}:
            raise ValueError("must be 'messages' (OpenAI-style) or 'tgi' (inputs/parameters)")
        return value

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_below_size(cls, value: int, info: Any) -> int:
        size = info.data.get("chunk_tokens")
        if size is not None and value >= size:
            raise ValueError("must be smaller than RAGLINE_CHUNK_TOKENS")
        return value

    @field_validator("hnsw_ef_construction")
    @classmethod
    def _ef_construction_covers_m(cls, value: int, info: Any) -> int:
        m = info.data.get("hnsw_m")
        if m is not None and value < 2 * m:
            raise ValueError("must be at least twice RAGLINE_HNSW_M (pgvector requires it)")
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables; raise ConfigurationError if invalid."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {
            field: environ[name]
            for name, field in ENVIRONMENT.items()
            if environ.get(name, "").strip() != ""
        }
        # Tracing defaults to on inside Lambda and off elsewhere (no X-Ray daemon locally).
        values.setdefault("tracing", bool(environ.get("AWS_LAMBDA_FUNCTION_NAME")))
        try:
            return cls(**values)
        except ValidationError as exc:
            field_to_env = {field: name for name, field in ENVIRONMENT.items()}
            problems = "; ".join(
                f"{field_to_env.get(str(err['loc'][0]), err['loc'][0])}: {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigurationError(f"invalid configuration: {problems}") from exc

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields changed, validated again."""
        return type(self)(**{**self.model_dump(), **changes})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once (cold start)."""
    return Settings.from_env()
