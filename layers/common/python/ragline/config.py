"""Settings from the environment, parsed and validated once.

One rule names the variables: field ``x`` is ``RAGLINE_X`` (pydantic-settings'
``env_prefix``), except ``metrics_namespace`` and ``service_name``, which are Powertools'
own ``POWERTOOLS_METRICS_NAMESPACE`` and ``POWERTOOLS_SERVICE_NAME``. Logic never reads
``os.environ`` (tests/unit/test_environment_access.py checks it): handlers and the command
line call :func:`get_settings` (cached), and tests build :class:`Settings` from values or
:meth:`Settings.from_env` from a mapping. The same variables configure the local stack
and Lambda (CDK sets them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ragline.errors import ConfigurationError

# The most passages one request may ask for: the API schema's limit (ragline.schemas) and
# the ceiling of RAGLINE_MAX_TOP_K, so the documented limit and the enforced one agree.
MAX_TOP_K = 50

# Variables that were renamed, and the name to set instead: one set under its old name
# fails the cold start rather than being ignored.
RENAMED: dict[str, str] = {
    "RAGLINE_LLM_TIMEOUT": "RAGLINE_LLM_TIMEOUT_SECONDS",
    "RAGLINE_RERANK_TIMEOUT": "RAGLINE_RERANK_TIMEOUT_SECONDS",
    "RAGLINE_DATABASE_CONNECT_TIMEOUT": "RAGLINE_DATABASE_CONNECT_TIMEOUT_SECONDS",
    "RAGLINE_COLLECTION": "RAGLINE_DEFAULT_COLLECTION",
}
# Variables no longer read, and why: one still set fails the cold start rather than
# silently changing nothing.
REMOVED: dict[str, str] = {
    # It made a request without an authorizer's identity act for one tenant with every
    # scope. The stack always has an authorizer that names the caller's tenant (API keys,
    # IAM principals or Cognito claims: stacks/api.py), so it could only ever widen access.
    "RAGLINE_GATEWAY_KEY_TENANT": "the API's authorizer (API keys, IAM principals or "
    "Cognito claims) names every caller's tenant; a request without one is 401",
}
# The rule's names for the two settings that keep Powertools' names (Settings.metrics_namespace).
POWERTOOLS_NAMES: dict[str, str] = {
    "RAGLINE_METRICS_NAMESPACE": "POWERTOOLS_METRICS_NAMESPACE",
    "RAGLINE_SERVICE_NAME": "POWERTOOLS_SERVICE_NAME",
}


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (``os.environ`` at cold
    start, a dict in tests). A blank value counts as unset, as an empty one does."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # The hook pydantic-settings' own .env source overrides the same way; keys are
        # lower-cased because its matching is case-insensitive by default.
        return {name.lower(): value for name, value in self._environ.items() if value.strip()}


class Settings(BaseSettings):
    """Every knob ragline has, with its default.

    Field ``x`` is the variable ``RAGLINE_X``, except the two Powertools settings, which
    keep Powertools' names. Building ``Settings(**values)`` reads no environment;
    :meth:`from_env` does.
    """

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix="RAGLINE_",
        validate_by_name=True,  # Settings(metrics_namespace=...) as well as the alias
    )

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
    # Comma-separated in the environment (NoDecode: not JSON, as pydantic-settings would
    # read a tuple).
    llm_fallback: Annotated[tuple[str, ...], NoDecode] = ()
    # The packaged profiles' models (``llm = "@reasoning_llm"``, ``"@critical_llm"``);
    # unset, those profiles use ``llm``.
    reasoning_llm: str | None = None
    critical_llm: str | None = None
    # The model of the ``condense`` profile, which rewrites a follow-up question into a
    # standalone search query: the cheapest one that can. Unset: ``llm``; without a
    # generative model (extractive), the deterministic rewrite (answer/conversation.py).
    condense_llm: str | None = None
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
    # embedder's own weight), "adaptive" (relative, each list's weight scaled by how far
    # its best hit stands out for this query, and a sure list's best hit kept in the top
    # 2) or "rrf" (Reciprocal Rank Fusion, which ignores scores).
    fusion: Literal["rrf", "relative", "adaptive"] = "adaptive"
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
    # Where BM25 ranks: "sql" (bm25_search, in the database), "client" (the query's
    # postings read in one statement and ranked in numpy, store/bm25.py: the same scores
    # and order, several times faster at 100k+ chunks; psycopg only, a term's postings
    # can exceed the Data API's 1 MiB response) or "auto" (client on psycopg, sql on the
    # Data API).
    keyword_scorer: Literal["auto", "sql", "client"] = "auto"
    # Hybrid search runs its keyword half on a second thread (with a second database
    # connection) while the query is embedded and the vector half runs; false: one after
    # the other, on one connection.
    hybrid_parallel: bool = True
    hnsw_max_scan_tuples: int = Field(default=20000, ge=1000, le=10_000_000)
    # maintenance_work_mem for an HNSW index built after a bulk load (None: the server's).
    index_build_memory_mb: int | None = Field(default=None, ge=64, le=65536)
    chunk_tokens: int = Field(default=256, ge=32, le=8192)
    chunk_overlap: int = Field(default=40, ge=0, le=4096)

    # Conversations: a server-kept session (``session_id``) lives this long after its last
    # turn; the answer prompt carries the most recent turns that fit in history_tokens
    # (the condense prompt too); a session or a request's ``history`` gives at most
    # max_history_turns prior turns.
    session_ttl_hours: int = Field(default=24, ge=1, le=24 * 90)
    history_tokens: int = Field(default=1000, ge=0, le=32000)
    max_history_turns: int = Field(default=20, ge=1, le=100)

    # Limits on input.
    max_body_bytes: int = Field(default=32 * 1024, ge=256)
    max_question_chars: int = Field(default=2000, ge=16)
    # A 1,000-page, 105 MB PDF peaks at 235 MB resident (bench/pdf_memory.py): it fits.
    max_document_bytes: int = Field(default=128 * 1024 * 1024, ge=1024)
    # Parse budgets, checked before the heavy work (documents/budgets.py; measured by
    # bench/hostile_files.py): a document over one fails with the reason.
    max_inflated_bytes: int = Field(default=256 * 1024 * 1024, ge=1024 * 1024)
    max_pages: int = Field(default=5000, ge=1)
    max_unpacked_bytes: int = Field(default=128 * 1024 * 1024, ge=1024 * 1024)
    max_compression_ratio: int = Field(default=500, ge=10)
    max_sheet_columns: int = Field(default=2048, ge=16, le=16384)
    max_sheet_cells: int = Field(default=2_000_000, ge=1000)
    max_table_rows: int = Field(default=100_000, ge=100)
    max_line_chars: int = Field(default=1024 * 1024, ge=1024)
    max_html_chars: int = Field(default=16 * 1024 * 1024, ge=64 * 1024)
    max_html_depth: int = Field(default=512, ge=32)
    max_chunks: int = Field(default=5000, ge=1)
    # Each parse runs in a child process (parse_isolation) that may add parse_memory_mb
    # to its address space and is killed after parse_timeout_seconds.
    parse_timeout_seconds: float = Field(default=60.0, gt=0, le=900)
    parse_memory_mb: int = Field(default=512, ge=64)
    parse_isolation: bool = True
    # Documents `ragline ingest` works on at once, each in its own thread, connection and
    # transaction: one parses and embeds while another's rows are written (docs/ingestion.md).
    ingest_concurrency: int = Field(default=2, ge=1, le=16)

    # Telemetry.
    log_questions: bool = False
    query_log_retention_days: int = Field(default=30, ge=1)
    tracing: bool = False  # X-Ray; on by default only inside Lambda (see from_env)
    # Powertools' own variables, which its Logger, Tracer and Metrics read too: one name
    # for one value, so ragline's EMF namespace and Powertools' never disagree.
    metrics_namespace: str = Field(
        default="Ragline", validation_alias="POWERTOOLS_METRICS_NAMESPACE"
    )
    service_name: str = Field(default="ragline", validation_alias="POWERTOOLS_SERVICE_NAME")

    # How the API identifies its callers (the stack's ``api_auth``): ``key``, ragline's API
    # keys through the key authorizer (and ``ragline dev``'s gateway); ``iam``, SigV4-signed
    # requests, whose principal ARN ``iam_principals`` maps to a tenant and scopes (JSON:
    # ``{"arn:aws:iam::123456789012:role/etl": {"tenant": "acme", "scopes": ["query"]}}``);
    # ``cognito``, a user pool's tokens, whose ``tenant_claim`` names the tenant.
    api_auth: Literal["key", "iam", "cognito"] = "key"
    iam_principals: Annotated[tuple[tuple[str, str, tuple[str, ...]], ...], NoDecode] = ()
    tenant_claim: str = Field(default="custom:tenant", pattern=r"^[A-Za-z0-9_:.-]{1,128}$")

    # The review queue (ragline.reviews, docs/review.md). An answer nobody queued is kept
    # this many hours so that a thumbs-down can queue it with its passages (0: not kept,
    # and a thumbs-down queues nothing). An SNS topic gets an event per queued item (unset:
    # a log line only). The approval-rate alarm's bar is a CDK context key, not a setting.
    review_feedback_hours: int = Field(default=24, ge=0, le=24 * 90)
    review_topic_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:sns:")

    # The Lambda authorizer's usage identifiers: ``tenant=value`` pairs (``*=value`` for
    # every other tenant), the values of the API Gateway keys of the stack's usage plans.
    usage_plan_keys: Annotated[tuple[tuple[str, str], ...], NoDecode] = ()

    @field_validator("llm_fallback", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("usage_plan_keys", mode="before")
    @classmethod
    def _split_pairs(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        pairs = []
        for item in (part.strip() for part in value.split(",")):
            tenant, equals, key = item.partition("=")
            if not item:
                continue
            if not equals or not tenant.strip() or not key.strip():
                raise ValueError(f"{item!r} is not tenant=value")
            pairs.append((tenant.strip(), key.strip()))
        return tuple(pairs)

    @field_validator("iam_principals", mode="before")
    @classmethod
    def _parse_principals(cls, value: Any) -> Any:
        # {"<principal ARN>": {"tenant": "<t>", "scopes": [...] or "a,b"}} -> triples
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(value, Mapping):
            return value
        triples = []
        for arn, grant in value.items():
            if not isinstance(grant, Mapping) or set(grant) != {"tenant", "scopes"}:
                raise ValueError(f"{arn}: give exactly {{'tenant': ..., 'scopes': [...]}}")
            scopes = grant["scopes"]
            if isinstance(scopes, str):
                scopes = [part for part in scopes.replace(",", " ").split() if part]
            triples.append((arn, grant["tenant"], tuple(scopes)))
        return tuple(triples)

    def usage_plan_key(self, tenant: str) -> str | None:
        """The usage identifier of ``tenant``'s usage plan: its own, else the shared one."""
        keys = dict(self.usage_plan_keys)
        return keys.get(tenant) or keys.get("*")

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

    @field_validator("keyword_scorer")
    @classmethod
    def _client_scorer_on_psycopg(cls, value: str, info: Any) -> str:
        if value == "client" and info.data.get("database_driver") == "data-api":
            raise ValueError("'client' needs the psycopg driver: use 'auto' or 'sql'")
        return value

    @field_validator("hnsw_ef_construction")
    @classmethod
    def _ef_construction_covers_m(cls, value: int, info: Any) -> int:
        m = info.data.get("hnsw_m")
        if m is not None and value < 2 * m:
            raise ValueError("must be at least twice RAGLINE_HNSW_M (pgvector requires it)")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only the keyword arguments: from_env reads the environment, once, from the
        # mapping it is given, so a test's Settings(...) never picks up the process's.
        return (init_settings,)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables; raise ConfigurationError if invalid."""
        environ = os.environ if environ is None else environ
        misnamed = (
            [
                f"{old} was renamed {new}"
                for old, new in RENAMED.items()
                if environ.get(old, "").strip()
            ]
            + [
                f"{old} was removed: {why}"
                for old, why in REMOVED.items()
                if environ.get(old, "").strip()
            ]
            + [
                f"{ours} is not read: set Powertools' {theirs}"
                for ours, theirs in POWERTOOLS_NAMES.items()
                if environ.get(ours, "").strip()
            ]
        )
        if misnamed:
            raise ConfigurationError(f"invalid configuration: {'; '.join(misnamed)}")
        values = _Environment(cls, environ)()
        # Tracing defaults to on inside Lambda and off elsewhere (no X-Ray daemon locally).
        if "tracing" not in values:
            values["tracing"] = bool(environ.get("AWS_LAMBDA_FUNCTION_NAME"))
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{variable(str(err['loc'][0]))}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigurationError(f"invalid configuration: {problems}") from exc

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields changed, validated again."""
        return type(self)(**{**self.model_dump(), **changes})


def variable(field: str) -> str:
    """The environment variable that sets ``field`` (a field name, or already a variable)."""
    info = Settings.model_fields.get(field)
    if info is None:
        return field
    if isinstance(info.validation_alias, str):
        return info.validation_alias
    return f"{Settings.model_config.get('env_prefix', '')}{field.upper()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once (cold start)."""
    return Settings.from_env()
