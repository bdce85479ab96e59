"""Deployment settings: the `cdk.json` context, validated once into one typed object.

Every key is a field below with its default; `cdk.json` lists the common ones and
`cdk deploy -c key=value` overrides any of them. Values given on the command line arrive
as strings, so numbers, booleans and comma-separated lists are parsed here.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from aws_cdk import aws_logs as logs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from ragline.identity import DEFAULT_TENANT_CLAIM, SCOPES, TENANT_PATTERN

# Providers the Lambda layer can run: the library's registries (`ragline.embeddings` and
# `ragline.llm` PROVIDERS) less those it cannot ship; tests/infrastructure/test_settings.py
# keeps the lists in step. Written out because the CDK app does not import the library.
# minilm needs torch, which the layer does not ship; minilm-onnx's runtime and model add
# about 113 MB, past Lambda's 250 MB for the layer with the document parsers.
NOT_IN_LAYER = frozenset({"minilm", "minilm-onnx"})
EMBEDDING_PROVIDERS = frozenset({"hash", "openai", "bedrock", "sagemaker"})
LLM_PROVIDERS = frozenset({"extractive", "openai", "bedrock", "sagemaker"})
# Rerankers the query function can run (`ragline.rerankers` PROVIDERS), and the value
# that switches reranking off.
RERANKER_PROVIDERS = frozenset({"bedrock", "http", "sagemaker"})
RERANKER_OFF = "none"
# Providers reached over the internet; they cannot work in the `isolated` network mode.
INTERNET_PROVIDERS = frozenset({"openai"})
# Interface endpoints the `isolated` mode can create, by their short names.
VPC_ENDPOINT_SERVICES = (
    "secretsmanager",
    "sqs",
    "sagemaker-runtime",
    "bedrock-runtime",
    "logs",
    "monitoring",
)
# Interface endpoints created only when something configured needs them (each one costs
# per hour): the Bedrock Rerank API is served by bedrock-agent-runtime; the endpoint
# meter reads the stack's GPU endpoint through SageMaker's API (not its runtime).
OPTIONAL_VPC_ENDPOINT_SERVICES = ("bedrock-agent-runtime", "sagemaker-api")
# The interface endpoint a provider needs in the `isolated` mode.
PROVIDER_ENDPOINTS = {"bedrock": "bedrock-runtime", "sagemaker": "sagemaker-runtime"}
RERANKER_ENDPOINTS = {"bedrock": "bedrock-agent-runtime", "sagemaker": "sagemaker-runtime"}
# The retention periods CloudWatch Logs accepts, in days.
LOG_RETENTION_DAYS = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
}
# The ingest function's budget relations (docs/ingestion.md, "Budgets"). A parse that
# outlives its deadline is killed; stopping it may take up to PARSE_REAP_SECONDS
# (ragline.documents.isolation). INGEST_RESERVE_SECONDS of the function's timeout stay
# for the rest of a batch (reading the objects, embedding, writing the store).
# INGEST_RESIDENT_MB is the function's own memory beside the parse child: the
# interpreter, the parsers, the embedder client and a document's bytes at
# max_document_bytes (bench/hostile_uploads.py measures it).
PARSE_REAP_SECONDS = 5
INGEST_RESERVE_SECONDS = 60
INGEST_RESIDENT_MB = 512
# Context keys that look like ours (lower snake case); CDK's own keys contain ':' or '@'.
_OUR_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


class SettingsError(ValueError):
    """The deployment settings are invalid; the message names every problem."""


def parse_model_string(value: str) -> tuple[str, str]:
    """Split a `provider:model` string; the model part may be empty (`hash`)."""
    provider, _, model = value.partition(":")
    return provider.strip(), model.strip()


class TenantUsagePlan(BaseModel):
    """One tenant's own usage plan: throttling and a daily quota."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate: float = Field(gt=0)
    burst: int = Field(ge=1)
    quota: int = Field(ge=1)


class PrincipalGrant(BaseModel):
    """What an IAM principal may do with ``api_auth=iam``: act for one tenant, with scopes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant: str = Field(pattern=TENANT_PATTERN)
    scopes: tuple[str, ...] = Field(min_length=1)

    @field_validator("scopes", mode="before")
    @classmethod
    def _split_scopes(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part for part in value.replace(",", " ").split() if part)
        return value

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(SCOPES))
        if unknown:
            raise ValueError(f"unknown scopes {unknown}; the scopes are {', '.join(SCOPES)}")
        return value


class DeploymentSettings(BaseModel):
    """Every knob of the deployment, with its default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Where.
    stack_name: str = Field(default="Ragline", pattern=r"^[A-Za-z][A-Za-z0-9-]{0,100}$")
    account: str = Field(default="123456789012", pattern=r"^\d{12}$")
    region: str = Field(default="us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")

    # Network.
    network: Literal["nat", "isolated"] = "nat"
    vpc_cidr: str = Field(default="10.40.0.0/16", pattern=r"^\d+\.\d+\.\d+\.\d+/(1[6-9]|2[0-2])$")
    max_azs: int = Field(default=2, ge=2, le=3)
    nat_gateways: int = Field(default=1, ge=1, le=3)
    vpc_endpoint_services: tuple[str, ...] = VPC_ENDPOINT_SERVICES
    vpc_endpoint_azs: int = Field(default=1, ge=1, le=3)

    # Packaging and runtime.
    architecture: Literal["x86_64", "arm64"] = "x86_64"
    bundling: bool = True
    tracing: bool = True
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_retention_days: int = 30
    metrics_namespace: str = Field(default="Ragline", pattern=r"^[A-Za-z0-9._/#:-]{1,255}$")

    # Models, as provider:model strings (the runtime contract of ragline.config).
    embeddings: str = "bedrock:amazon.titan-embed-text-v2:0"
    embedding_dimensions: int = Field(default=1024, ge=8, le=16000)
    llm: str = "bedrock:anthropic.claude-3-haiku-20240307-v1:0"
    llm_fallback: tuple[str, ...] = ()
    # The models of the packaged `reasoning` and `critical` profiles (unset: `llm`).
    reasoning_llm: str | None = None
    critical_llm: str | None = None
    # The model of the `condense` profile, which rewrites follow-ups (unset: `llm`).
    condense_llm: str | None = None
    default_profile: str = "simple"
    openai_secret_name: str | None = None
    openai_base_url: str | None = None
    # Reranking of the search's best `rerank_depth` candidates (off by default):
    # `bedrock:<model>`, `http:<model>` with `reranker_url`, or `sagemaker:<endpoint>`.
    reranker: str = RERANKER_OFF
    reranker_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    reranker_instance_type: str | None = Field(default=None, pattern=r"^ml\.[a-z0-9]+\.\w+$")
    # The instance type of a `sagemaker:` embeddings endpoint, which prices its time.
    embeddings_instance_type: str | None = Field(default=None, pattern=r"^ml\.[a-z0-9]+\.\w+$")
    rerank_depth: int = Field(default=20, ge=1, le=1000)

    # The optional SageMaker endpoint the stack creates (off while the model id is unset).
    sagemaker_model_id: str | None = None
    sagemaker_instance_type: str = Field(default="ml.g5.xlarge", pattern=r"^ml\.[a-z0-9]+\.\w+$")
    sagemaker_instance_count: int = Field(default=1, ge=1, le=20)
    sagemaker_max_instance_count: int = Field(default=1, ge=1, le=20)
    sagemaker_num_gpus: int = Field(default=1, ge=1, le=8)
    sagemaker_quantize: str | None = None
    sagemaker_max_input_tokens: int = Field(default=4096, ge=128)
    sagemaker_max_total_tokens: int = Field(default=8192, ge=256)
    sagemaker_image_tag: str = "2.4.0-tgi3.0.1-gpu-py311-cu124-ubuntu22.04"
    sagemaker_invocations_per_instance: int = Field(default=30, ge=1)
    sagemaker_startup_timeout_seconds: int = Field(default=900, ge=60, le=3600)
    sagemaker_payload: Literal["messages", "tgi"] = "messages"
    # Serve the model as an inference component that scales to 0 copies and 0 instances
    # when idle (no GPU hours), and back out on the first request it cannot serve.
    sagemaker_scale_to_zero: bool = False
    # How often the endpoint meter counts the endpoint's instances for the daily cost
    # alarm; each reading prices the minutes since the last one.
    endpoint_meter_minutes: int = Field(default=5, ge=1, le=60)

    # Database. `vpc`: the functions run in the VPC and connect with psycopg (NAT gateway
    # or interface endpoints to reach AWS); `data-api`: they run outside the VPC and reach
    # Aurora through the RDS Data API, so the VPC holds the database alone; `auto`:
    # `data-api` unless something configured needs the VPC (see `data_api`), the default:
    # the default models need neither a VPC nor a NAT, and the NAT is most of the idle bill.
    database_access: Literal["auto", "vpc", "data-api"] = "auto"
    database_engine_version: str = Field(default="17.5", pattern=r"^1[6-9]\.\d+$")
    database_min_capacity: float = Field(default=0, ge=0, le=256)
    database_max_capacity: float = Field(default=2, ge=1, le=256)
    database_auto_pause_minutes: int = Field(default=10, ge=5, le=1440)
    database_backup_retention_days: int = Field(default=7, ge=1, le=35)
    database_deletion_protection: bool = False

    # Ingestion.
    ingest_timeout_seconds: int = Field(default=300, ge=30, le=900)
    # Sized from bench/hostile_uploads.py (docs/ingestion.md, "Budgets"): the function's
    # own resident set, plus what a parse child may add (ingest_parse_memory_mb), plus
    # headroom; at least INGEST_RESIDENT_MB + ingest_parse_memory_mb.
    ingest_memory_mb: int = Field(default=1536, ge=256, le=10240)
    # Each document parses in a forked child that may grow by ingest_parse_memory_mb and
    # is killed after ingest_parse_timeout_seconds (RAGLINE_PARSE_MEMORY_MB and
    # RAGLINE_PARSE_TIMEOUT_SECONDS in the function). A batch's parses run one after
    # another, so ingest_batch_size of them, each up to its deadline, must end with
    # INGEST_RESERVE_SECONDS of the function's timeout left for the rest of the batch.
    ingest_parse_timeout_seconds: int = Field(default=40, ge=5, le=900)
    ingest_parse_memory_mb: int = Field(default=512, ge=64, le=10240)
    ingest_batch_size: int = Field(default=5, ge=1, le=100)
    ingest_max_batching_window_seconds: int = Field(default=5, ge=0, le=300)
    ingest_concurrency: int = Field(default=2, ge=2, le=50)
    # Reserved concurrency needs 10 unreserved executions left in the account; new accounts
    # whose quota is 10 switch it off (the event source's maximum concurrency still caps).
    ingest_reserve_concurrency: bool = True
    queue_max_receive_count: int = Field(default=5, ge=1, le=1000)
    # A scheduled Lambda that makes the store match the bucket (`ragline sync`), repairing
    # what lost events leave behind; off by default. Its schedule is an EventBridge
    # expression.
    reconcile: bool = False
    reconcile_schedule: str = Field(
        default="rate(1 day)",
        pattern=r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\([^()]+\))$",
    )

    # Query API.
    query_timeout_seconds: int = Field(default=29, ge=3, le=29)
    # POST /query/stream and POST /v1/chat/completions: their own function (the same code,
    # the streaming runtime loop) behind a STREAM integration, which API Gateway keeps
    # open up to 15 minutes.
    stream_timeout_seconds: int = Field(default=300, ge=30, le=900)
    query_memory_mb: int = Field(default=1024, ge=256, le=10240)
    max_body_bytes: int = Field(default=32 * 1024, ge=1024, le=6 * 1024 * 1024)
    max_question_chars: int = Field(default=2000, ge=16, le=100_000)
    log_questions: bool = False
    query_log_retention_days: int = Field(default=30, ge=1)
    # HNSW candidates per vector search (RAGLINE_HNSW_EF_SEARCH); unset, the library's
    # default, chosen from bench/vector_recall.py's recall/latency curve.
    hnsw_ef_search: int | None = Field(default=None, ge=10, le=1000)
    # The HNSW index's build parameters (RAGLINE_HNSW_M, RAGLINE_HNSW_EF_CONSTRUCTION),
    # used when a dimension's index is first created; unset, pgvector's 16 and 64.
    hnsw_m: int | None = Field(default=None, ge=2, le=100)
    hnsw_ef_construction: int | None = Field(default=None, ge=4, le=1000)
    api_throttle_rate: float = Field(default=10, gt=0)
    api_throttle_burst: int = Field(default=20, ge=1)
    api_quota_per_day: int = Field(default=10_000, ge=1)
    waf: bool = False
    # How long API Gateway keeps the authorizer's answer for a key (0: ask on every
    # request). A revoked or expired key is refused at the latest this long after.
    authorizer_cache_seconds: int = Field(default=300, ge=0, le=3600)
    # Usage plans of their own for some tenants: {tenant: {rate, burst, quota}} (requests
    # per second, burst, requests per day); every other tenant shares the stack's plan
    # (api_throttle_rate, api_throttle_burst, api_quota_per_day).
    tenant_usage_plans: dict[str, TenantUsagePlan] = Field(default_factory=dict)
    # How the API identifies callers (stacks/auth.py): `key`, ragline's API keys through the
    # key authorizer; `iam`, SigV4 with `iam_principals` mapping principal ARNs to a tenant
    # and scopes ({arn: {tenant, scopes}}); `cognito`, a user pool authorizer on
    # `cognito_user_pool_arn` (unset: a pool the stack creates), the tenant in the token's
    # `cognito_tenant_claim`. Usage plans per tenant need `key` (the authorizer names them).
    api_auth: Literal["key", "iam", "cognito"] = "key"
    iam_principals: dict[str, PrincipalGrant] = Field(default_factory=dict)
    cognito_user_pool_arn: str | None = Field(
        default=None, pattern=r"^arn:aws[a-z-]*:cognito-idp:[a-z0-9-]+:\d{12}:userpool/\S+$"
    )
    cognito_tenant_claim: str = Field(
        default=DEFAULT_TENANT_CLAIM, pattern=r"^[A-Za-z0-9_:.-]{1,128}$"
    )
    # API Gateway logs through one CloudWatch role per account and region; false when the
    # account already has one set (API Gateway console, Settings).
    api_account_cloudwatch_role: bool = True

    # Monitoring. The dashboard lists at $3/month; the alarm topic's customer managed KMS
    # key at $1/month, $2 and then $3 after its yearly rotations. The key is off by
    # default: the alarm messages carry alarm names and thresholds, no document data,
    # and without it a data-api deployment idles under $5 a month (docs/deploy.md).
    dashboard: bool = True
    alarm_topic_kms: bool = False

    # Alarms.
    alarm_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    alarm_5xx_rate: float = Field(default=0.05, gt=0, le=1)
    alarm_p95_latency_ms: int = Field(default=15_000, ge=100)
    alarm_failed_documents: int = Field(default=0, ge=0)
    daily_cost_budget_usd: float = Field(default=5.0, gt=0)
    # A daily cost alarm per tenant: {tenant: USD}, on the tenant's CostUSD over a day.
    tenant_cost_alarms: dict[str, float] = Field(default_factory=dict)
    # The review queue (stacks/reviews.py): alarm when fewer than this share of a day's
    # reviewed answers are approved as given (0: no alarm).
    review_approval_bar: float = Field(default=0.8, ge=0, le=1)

    # The console (console/, stacks/reviews.py): a private bucket behind CloudFront, off
    # by default; idle it costs under $0.01 a month (CloudFront bills per request).
    console: bool = False

    @model_validator(mode="before")
    @classmethod
    def _blank_means_default(cls, values: Any) -> Any:
        # `-c sagemaker_model_id=` switches an option back off.
        if isinstance(values, Mapping):
            return {key: value for key, value in values.items() if value not in ("", None)}
        return values

    @field_validator("llm_fallback", "vpc_endpoint_services", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("tenant_usage_plans", "iam_principals", "tenant_cost_alarms", mode="before")
    @classmethod
    def _parse_plans(cls, value: Any) -> Any:
        # `-c tenant_usage_plans='{"acme": {...}}'` arrives as a string.
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not JSON: {exc}") from None
        return value

    @field_validator("tenant_usage_plans", "tenant_cost_alarms")
    @classmethod
    def _tenant_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        invalid = sorted(name for name in value if not re.fullmatch(TENANT_PATTERN, name))
        if invalid:
            raise ValueError(f"invalid tenant names {invalid}: they match {TENANT_PATTERN}")
        return value

    @field_validator("vpc_endpoint_services")
    @classmethod
    def _known_endpoints(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = (*VPC_ENDPOINT_SERVICES, *OPTIONAL_VPC_ENDPOINT_SERVICES)
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown {unknown}; known: {', '.join(known)}")
        return value

    @field_validator("embeddings")
    @classmethod
    def _known_embedder(cls, value: str) -> str:
        return _check_model_string(value, EMBEDDING_PROVIDERS)

    @field_validator("llm", "reasoning_llm", "critical_llm", "condense_llm")
    @classmethod
    def _known_llm(cls, value: str | None) -> str | None:
        return None if value is None else _check_model_string(value, LLM_PROVIDERS)

    @field_validator("reranker")
    @classmethod
    def _known_reranker(cls, value: str) -> str:
        if value.strip() == RERANKER_OFF:
            return RERANKER_OFF
        provider, model = parse_model_string(value)
        if provider not in RERANKER_PROVIDERS:
            known = ", ".join([RERANKER_OFF, *sorted(RERANKER_PROVIDERS)])
            raise ValueError(f"unknown reranker {provider!r} in {value!r}; known: {known}")
        if not model:
            raise ValueError(f"{value!r} needs a model or endpoint name: '{provider}:<name>'")
        return value

    @field_validator("llm_fallback")
    @classmethod
    def _known_fallbacks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_model_string(item, LLM_PROVIDERS) for item in value)

    @field_validator("log_retention_days")
    @classmethod
    def _retention_cloudwatch_accepts(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"CloudWatch Logs accepts only {sorted(LOG_RETENTION_DAYS)}")
        return value

    @field_validator("database_min_capacity", "database_max_capacity")
    @classmethod
    def _half_acu_steps(cls, value: float) -> float:
        if (value * 2) != int(value * 2):
            raise ValueError("Aurora capacity goes in steps of 0.5 ACU")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DeploymentSettings:
        problems: list[str] = []
        if self.database_max_capacity < self.database_min_capacity:
            problems.append("database_max_capacity must be >= database_min_capacity")
        if self.sagemaker_max_instance_count < self.sagemaker_instance_count:
            problems.append("sagemaker_max_instance_count must be >= sagemaker_instance_count")
        if self.sagemaker_max_total_tokens <= self.sagemaker_max_input_tokens:
            problems.append("sagemaker_max_total_tokens must exceed sagemaker_max_input_tokens")
        if self.nat_gateways > self.max_azs or self.vpc_endpoint_azs > self.max_azs:
            problems.append("nat_gateways and vpc_endpoint_azs cannot exceed max_azs")
        if self.ingest_batch_size > 10 and self.ingest_max_batching_window_seconds == 0:
            problems.append("an SQS batch larger than 10 needs ingest_max_batching_window_seconds")
        problems.extend(self._ingest_budget_problems())
        if self.reranker_provider == "http" and not self.reranker_url:
            problems.append(f"reranker={self.reranker} needs reranker_url, the server's base URL")
        if self.hnsw_ef_construction is not None and self.hnsw_ef_construction < 2 * (
            self.hnsw_m or 16
        ):
            problems.append("hnsw_ef_construction must be at least twice hnsw_m (16 unset)")
        if self.network == "isolated" and self.data_api:
            problems.append(
                "network=isolated keeps the functions inside the VPC with no egress, but "
                "database_access=data-api runs them outside it; choose one"
            )
        elif self.network == "isolated":
            problems.extend(self._isolated_problems())
        problems.extend(self._auth_problems())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _auth_problems(self) -> list[str]:
        """Each ``api_auth`` with the settings it needs, and none of another's."""
        problems = []
        if self.api_auth == "iam" and not self.iam_principals:
            problems.append("api_auth=iam needs iam_principals: {principal ARN: {tenant, scopes}}")
        if self.iam_principals and self.api_auth != "iam":
            problems.append("iam_principals is read with api_auth=iam only")
        bad = sorted(arn for arn in self.iam_principals if not arn.startswith("arn:"))
        if bad:
            problems.append(f"iam_principals: {bad} are not principal ARNs")
        if self.api_auth != "cognito" and (
            self.cognito_user_pool_arn or self.cognito_tenant_claim != DEFAULT_TENANT_CLAIM
        ):
            problems.append("cognito_user_pool_arn and cognito_tenant_claim need api_auth=cognito")
        if (
            self.api_auth == "cognito"
            and not self.cognito_user_pool_arn
            and not self.cognito_tenant_claim.startswith("custom:")
        ):
            problems.append(
                "the user pool the stack creates names the tenant in a custom attribute: "
                "cognito_tenant_claim must be custom:<name> unless cognito_user_pool_arn is set"
            )
        if self.tenant_usage_plans and self.api_auth != "key":
            problems.append(
                f"tenant_usage_plans need api_auth=key (its authorizer names a tenant's plan); "
                f"with api_auth={self.api_auth} every caller shares the stage's throttling"
            )
        negative = sorted(t for t, usd in self.tenant_cost_alarms.items() if not usd > 0)
        if negative:
            problems.append(f"tenant_cost_alarms: thresholds of {negative} must be above 0 USD")
        return problems

    def _ingest_budget_problems(self) -> list[str]:
        """The ingest function's timeout and memory against its parse budgets."""
        problems = []
        parses = self.ingest_batch_size * (self.ingest_parse_timeout_seconds + PARSE_REAP_SECONDS)
        if parses + INGEST_RESERVE_SECONDS > self.ingest_timeout_seconds:
            longest = (
                self.ingest_timeout_seconds - INGEST_RESERVE_SECONDS
            ) // self.ingest_batch_size - PARSE_REAP_SECONDS
            problems.append(
                f"a batch of {self.ingest_batch_size} documents that each parse until "
                f"ingest_parse_timeout_seconds={self.ingest_parse_timeout_seconds} (+"
                f"{PARSE_REAP_SECONDS} s to stop the parser) takes {parses} s, which with "
                f"{INGEST_RESERVE_SECONDS} s for the batch's other work exceeds "
                f"ingest_timeout_seconds={self.ingest_timeout_seconds}: the invocation would "
                f"time out and fail the whole batch; raise ingest_timeout_seconds to "
                f"{parses + INGEST_RESERVE_SECONDS}, or lower ingest_batch_size, or "
                f"ingest_parse_timeout_seconds to {max(longest, 0)}"
            )
        needed = INGEST_RESIDENT_MB + self.ingest_parse_memory_mb
        if self.ingest_memory_mb < needed:
            problems.append(
                f"ingest_memory_mb={self.ingest_memory_mb} cannot hold the function "
                f"({INGEST_RESIDENT_MB} MB) and a parse child growing by "
                f"ingest_parse_memory_mb={self.ingest_parse_memory_mb}: a hostile document "
                f"would kill the invocation and fail its batch; raise ingest_memory_mb to "
                f"{needed} or more, or lower ingest_parse_memory_mb"
            )
        return problems

    def _isolated_problems(self) -> list[str]:
        problems = []
        for provider in sorted(self.providers & INTERNET_PROVIDERS):
            problems.append(
                f"provider {provider!r} needs the internet; use network=nat or a "
                f"bedrock/sagemaker/hash/extractive model in network=isolated"
            )
        needed = {"secretsmanager"} | {
            PROVIDER_ENDPOINTS[p] for p in self.providers if p in PROVIDER_ENDPOINTS
        }
        if self.sagemaker_model_id:
            needed.add("sagemaker-runtime")
        if self.reranker_provider == "sagemaker":
            needed.add("sagemaker-runtime")
        # bedrock-agent-runtime, for a Bedrock reranker, is added by `interface_endpoints`.
        missing = sorted(needed - set(self.vpc_endpoint_services))
        if missing:
            problems.append(f"network=isolated needs the VPC endpoints {missing}")
        return problems

    # Derived views.

    @property
    def profile_llms(self) -> tuple[str, ...]:
        """The profile models that are set (the query function needs their grants)."""
        models = (self.reasoning_llm, self.critical_llm, self.condense_llm)
        return tuple(model for model in models if model)

    @property
    def model_strings(self) -> tuple[str, ...]:
        """Every configured model, embeddings first."""
        return (self.embeddings, self.llm, *self.llm_fallback, *self.profile_llms)

    @property
    def providers(self) -> frozenset[str]:
        """The providers the configured models use."""
        return frozenset(parse_model_string(model)[0] for model in self.model_strings)

    @property
    def reranker_provider(self) -> str | None:
        """The reranker's provider, or None when reranking is off."""
        return None if self.reranker == RERANKER_OFF else parse_model_string(self.reranker)[0]

    @property
    def interface_endpoints(self) -> tuple[str, ...]:
        """The VPC interface endpoints the `isolated` mode creates: the listed ones,
        bedrock-agent-runtime when a Bedrock reranker needs it, and sagemaker-api when
        the endpoint meter reads the stack's GPU endpoint from inside the VPC."""
        endpoints = list(self.vpc_endpoint_services)
        needed = [RERANKER_ENDPOINTS.get(self.reranker_provider or "")]
        if self.creates_sagemaker_endpoint:
            needed.append("sagemaker-api")
        for name in needed:
            if name and name not in endpoints:
                endpoints.append(name)
        return tuple(endpoints)

    @property
    def data_api(self) -> bool:
        """Whether the functions run outside the VPC and use the RDS Data API.

        `auto` chooses it unless `network=isolated` asks for functions without egress,
        or a configured server may live in the VPC: an `http:` reranker's URL or an
        OpenAI-compatible base URL. Nothing needs a NAT outside the VPC, where Lambda
        reaches AWS APIs and hosted models (OpenAI) directly.
        """
        if self.database_access != "auto":
            return self.database_access == "data-api"
        return not (self.network == "isolated" or self.needs_vpc)

    @property
    def needs_vpc(self) -> bool:
        """Whether a configured server may be reachable only from inside the VPC."""
        return self.reranker_provider == "http" or self.openai_base_url is not None

    @property
    def iam_principals_variable(self) -> str:
        """``iam_principals`` as the query function's RAGLINE_IAM_PRINCIPALS (JSON)."""
        return json.dumps(
            {
                arn: {"tenant": grant.tenant, "scopes": list(grant.scopes)}
                for arn, grant in sorted(self.iam_principals.items())
            },
            separators=(",", ":"),
        )

    @property
    def log_retention(self) -> logs.RetentionDays:
        """``log_retention_days`` as the CDK enum."""
        return LOG_RETENTION_DAYS[self.log_retention_days]

    @property
    def creates_sagemaker_endpoint(self) -> bool:
        """Whether the stack creates a SageMaker endpoint (a model id is set)."""
        return self.sagemaker_model_id is not None

    @property
    def uses_openai(self) -> bool:
        """Whether any configured model is OpenAI's (the key secret is then needed)."""
        return "openai" in self.providers

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> DeploymentSettings:
        """Build the settings from a CDK context mapping; raise SettingsError if invalid.

        Keys that look like ours but are not fields are reported with the closest
        field names, so a typo in `-c netwrok=isolated` does not pass silently.
        """
        fields = set(cls.model_fields)
        unknown = [key for key in context if _OUR_KEY.match(key) and key not in fields]
        if unknown:
            hints = [
                f"{key} (did you mean {', '.join(difflib.get_close_matches(key, fields))}?)"
                if difflib.get_close_matches(key, fields)
                else key
                for key in sorted(unknown)
            ]
            raise SettingsError(f"unknown ragline settings in the CDK context: {'; '.join(hints)}")
        values = {key: value for key, value in context.items() if key in fields}
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in err['loc']) or 'settings'}: {err['msg']}"
                for err in exc.errors()
            )
            raise SettingsError(f"invalid ragline settings: {problems}") from exc


def _check_model_string(value: str, known: frozenset[str]) -> str:
    provider, model = parse_model_string(value)
    if provider not in known:
        raise ValueError(
            f"unknown provider {provider!r} in {value!r}; "
            f"known on Lambda: {', '.join(sorted(known))}"
        )
    if provider in {"openai", "bedrock", "sagemaker"} and not model:
        raise ValueError(f"{value!r} needs a model or endpoint name: '{provider}:<name>'")
    return value
