"""The ragline stack: composes one construct per concern and wires the runtime contract.

The functions read their configuration from environment variables parsed by
`ragline.config`; this module is the one place that decides their values.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, Environment, Stack, Tags
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks.api import Api, usage_plan_keys_variable
from stacks.auth import query_function_environment
from stacks.database import Database
from stacks.endpoint_meter import EndpointMeter
from stacks.functions import RaglineFunction
from stacks.ingestion import Ingestion
from stacks.inputs import ConstructInputs
from stacks.model_endpoint import ModelEndpoint
from stacks.monitoring import SERVICE, Monitoring
from stacks.nag import acknowledge
from stacks.network import Network
from stacks.packaging import CommonLayer
from stacks.reviews import Reviews
from stacks.settings import DeploymentSettings, parse_model_string
from stacks.waf import Waf

# The authorizer's one indexed read takes milliseconds; a cold start with a new database
# connection (or a Data API client) well under a second. API Gateway waits 30 s at most.
AUTHORIZER_TIMEOUT_SECONDS = 10
# The streaming query function's exec wrapper, in its code (functions/query/).
STREAMING_RUNTIME = "/var/task/streaming-runtime"
AUTHORIZER_MEMORY_MB = 256


class RaglineStack(Stack):
    """Network, database, ingestion, API, optional WAF and model endpoint, monitoring."""

    def __init__(
        self, scope: Construct, construct_id: str, *, settings: DeploymentSettings, **kwargs: Any
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=Environment(account=settings.account, region=settings.region),
            description="ragline: serverless retrieval-augmented generation "
            f"(S3 -> SQS -> Lambda -> Aurora pgvector -> API), network={settings.network}, "
            f"database_access={'data-api' if settings.data_api else 'vpc'}",
            **kwargs,
        )
        Tags.of(self).add("project", SERVICE)
        self.settings = settings
        self.network = Network(self, "Network", settings=settings)
        layer = CommonLayer(self, "CommonLayer", settings=settings).layer
        self.openai_secret = self._openai_secret() if settings.uses_openai else None
        self.model_endpoint = (
            ModelEndpoint(self, "ModelEndpoint", settings=settings)
            if settings.creates_sagemaker_endpoint
            else None
        )
        # Built once: what every construct running a function is given.
        self.inputs = ConstructInputs(
            settings=settings,
            network=self.network,
            layer=layer,
            environment=self._environment(),
            openai_secret=self.openai_secret,
            endpoint_arns=(
                {self.model_endpoint.endpoint_name: self.model_endpoint.endpoint_arn}
                if self.model_endpoint
                else {}
            ),
        )
        self.database = Database(self, "Database", inputs=self.inputs)
        # The functions that reach the database know where it is.
        with_database = self.inputs.with_environment(self.database.environment)
        self.ingestion = Ingestion(self, "Ingestion", inputs=with_database, database=self.database)
        self.query = self._query_function(with_database)
        self.query_stream = self._query_function(with_database, streaming=True)
        # The key authorizer's function, unless the API identifies callers by IAM or Cognito.
        self.authorizer = (
            self._authorizer_function(with_database) if settings.api_auth == "key" else None
        )
        self.api = Api(
            self,
            "Api",
            settings=settings,
            handler=self.query.function,
            authorizer=self.authorizer.function if self.authorizer else None,
            stream_handler=self.query_stream.function,
        )
        # Under the API as "Default", an id CDK leaves out of logical ids: the web ACL keeps
        # the ids it had when the API built it, so no deploy replaces it.
        self.waf = (
            Waf(self.api, "Default", settings=settings, stage=self.api.api.deployment_stage)
            if settings.waf
            else None
        )
        # The daily cost alarm sees the GPU endpoint's instance-hours through the meter.
        self.endpoint_meter = (
            EndpointMeter(self, "EndpointMeter", inputs=self.inputs, endpoint=self.model_endpoint)
            if self.model_endpoint
            else None
        )
        self.monitoring = self._monitoring()
        self.reviews = Reviews(
            self, "Reviews", settings=settings, api=self.api, monitoring=self.monitoring,
            queries=[self.query.function, self.query_stream.function],
        )  # fmt: skip
        self._outputs()

    def _query_function(
        self, inputs: ConstructInputs, *, streaming: bool = False
    ) -> RaglineFunction:
        """The function behind the API, allowed every model it may answer or rerank with.

        ``streaming``: the same code and permissions for ``POST /query/stream`` and ``POST
        /v1/chat/completions``, as its own function: its entry point is ``stream_handler``
        run by ragline's streaming runtime loop (the exec wrapper
        ``functions/query/streaming-runtime``, since Lambda's Python runtime cannot stream),
        and its timeout is ``stream_timeout_seconds``, while the
        buffered API's stays under API Gateway's 29 s.
        """
        settings = self.settings
        llm = (
            f"sagemaker:{self.model_endpoint.endpoint_name}"
            if self.model_endpoint
            else settings.llm
        )
        query_models = [settings.embeddings, llm, *settings.llm_fallback, *settings.profile_llms]
        environment = self._query_environment(llm, query_models)
        if streaming:
            environment["AWS_LAMBDA_EXEC_WRAPPER"] = STREAMING_RUNTIME
        query = RaglineFunction(
            self,
            "QueryStream" if streaming else "Query",
            inputs=inputs.with_environment(environment),
            name="query",
            description=(
                "ragline: streamed answers with citations (POST /query/stream, "
                "POST /v1/chat/completions)"
                if streaming
                else "ragline: answer questions with citations; documents and feedback API"
            ),
            timeout=Duration.seconds(
                settings.stream_timeout_seconds if streaming else settings.query_timeout_seconds
            ),
            memory_size=settings.query_memory_mb,
            handler="handler.stream_handler" if streaming else "handler.lambda_handler",
        )
        query.grant_database(self.database)
        # A Bedrock or SageMaker reranker is invoked like a model; an http one needs nothing.
        invoked_rerankers = (
            [settings.reranker] if settings.reranker_provider in {"bedrock", "sagemaker"} else []
        )
        query.grant_models([*query_models, *invoked_rerankers])
        if settings.reranker_provider == "bedrock":
            query.grant_bedrock_rerank()
        return query

    def _authorizer_function(self, inputs: ConstructInputs) -> RaglineFunction:
        """The API's key authorizer: reads the keys table, nothing else (no model)."""
        authorizer = RaglineFunction(
            self,
            "Authorizer",
            inputs=inputs.with_environment(
                {"RAGLINE_USAGE_PLAN_KEYS": usage_plan_keys_variable(self.settings)}
            ),
            name="authorizer",
            description="ragline: API keys to tenants and scopes (API Gateway authorizer)",
            timeout=Duration.seconds(AUTHORIZER_TIMEOUT_SECONDS),
            memory_size=AUTHORIZER_MEMORY_MB,
        )
        authorizer.grant_database(self.database)
        return authorizer

    def _monitoring(self) -> Monitoring:
        """Alarms and the dashboard over the API, the functions, the queues and the database."""
        return Monitoring(
            self,
            "Monitoring",
            settings=self.settings,
            api=self.api.api,
            functions=[
                self.ingestion.ingest.function,
                self.query.function,
                *([self.authorizer.function] if self.authorizer else []),
                self.database.migrations.function,
                *([self.endpoint_meter.meter.function] if self.endpoint_meter else []),
            ],
            queue=self.ingestion.queue,
            dead_letter_queue=self.ingestion.dead_letter_queue,
            cluster=self.database.cluster,
            endpoint_name=self.model_endpoint.endpoint_name if self.model_endpoint else None,
        )

    def _openai_secret(self) -> secretsmanager.ISecret:
        """The secret holding the OpenAI API key: an existing one by name, or a new one.

        A new secret starts with a random placeholder; the key is set after deploy with
        `aws secretsmanager put-secret-value` and read by the functions at run time.
        """
        name = self.settings.openai_secret_name
        if name:
            return secretsmanager.Secret.from_secret_name_v2(self, "OpenAiKey", name)
        created = secretsmanager.Secret(
            self,
            "OpenAiKey",
            description="ragline: the OpenAI API key (set the value after deploy)",
        )
        acknowledge(
            created,
            "AwsSolutions-SMG4",
            "A third-party API key: it is rotated at OpenAI and then stored here by the "
            "operator; Secrets Manager cannot rotate it.",
        )
        return created

    def _environment(self) -> dict[str, str]:
        """The variables every function reads (``ragline.config``), less the database's."""
        settings = self.settings
        environment = {
            "POWERTOOLS_SERVICE_NAME": SERVICE,
            "POWERTOOLS_METRICS_NAMESPACE": settings.metrics_namespace,
            "POWERTOOLS_LOG_LEVEL": settings.log_level,
            "RAGLINE_EMBEDDINGS": settings.embeddings,
            "RAGLINE_EMBEDDING_DIMENSIONS": str(settings.embedding_dimensions),
            # Matches the functions' X-Ray mode (active tracing or none).
            "RAGLINE_TRACING": str(settings.tracing).lower(),
        }
        # Either function may create a dimension's HNSW index (ingesting, or querying a
        # collection first), so both know how to build it.
        if settings.hnsw_m is not None:
            environment["RAGLINE_HNSW_M"] = str(settings.hnsw_m)
        if settings.hnsw_ef_construction is not None:
            environment["RAGLINE_HNSW_EF_CONSTRUCTION"] = str(settings.hnsw_ef_construction)
        if self.openai_secret is not None:
            environment["RAGLINE_OPENAI_SECRET_ARN"] = self.openai_secret.secret_arn
        if settings.openai_base_url:
            environment["OPENAI_BASE_URL"] = settings.openai_base_url
        # Both functions embed (documents, questions), so both price the endpoint's time.
        if settings.embeddings_instance_type:
            environment["RAGLINE_EMBEDDINGS_INSTANCE_TYPE"] = settings.embeddings_instance_type
        return environment

    def _query_environment(self, llm: str, models: list[str]) -> dict[str, str]:
        """The variables only the query function reads."""
        settings = self.settings
        environment = {
            "RAGLINE_LLM": llm,
            "RAGLINE_DEFAULT_PROFILE": settings.default_profile,
            "RAGLINE_MAX_BODY_BYTES": str(settings.max_body_bytes),
            "RAGLINE_MAX_QUESTION_CHARS": str(settings.max_question_chars),
            "RAGLINE_LOG_QUESTIONS": str(settings.log_questions).lower(),
            "RAGLINE_QUERY_LOG_RETENTION_DAYS": str(settings.query_log_retention_days),
            **query_function_environment(settings),
        }
        if settings.hnsw_ef_search is not None:
            environment["RAGLINE_HNSW_EF_SEARCH"] = str(settings.hnsw_ef_search)
        if settings.llm_fallback:
            environment["RAGLINE_LLM_FALLBACK"] = ",".join(settings.llm_fallback)
        if settings.reasoning_llm:
            environment["RAGLINE_REASONING_LLM"] = settings.reasoning_llm
        if settings.critical_llm:
            environment["RAGLINE_CRITICAL_LLM"] = settings.critical_llm
        if settings.condense_llm:
            environment["RAGLINE_CONDENSE_LLM"] = settings.condense_llm
        if any(parse_model_string(model)[0] == "sagemaker" for model in models):
            environment["RAGLINE_SAGEMAKER_PAYLOAD"] = settings.sagemaker_payload
            environment["RAGLINE_SAGEMAKER_INSTANCE_TYPE"] = settings.sagemaker_instance_type
        if self.model_endpoint and self.model_endpoint.inference_component_name:
            environment["RAGLINE_SAGEMAKER_INFERENCE_COMPONENT"] = (
                self.model_endpoint.inference_component_name
            )
        if settings.reranker_provider:
            environment["RAGLINE_RERANKER"] = settings.reranker
            environment["RAGLINE_RERANK_DEPTH"] = str(settings.rerank_depth)
            if settings.reranker_url:
                environment["RAGLINE_RERANKER_URL"] = settings.reranker_url
            if settings.reranker_instance_type:
                environment["RAGLINE_RERANKER_INSTANCE_TYPE"] = settings.reranker_instance_type
        return environment

    def _outputs(self) -> None:
        api = self.api
        CfnOutput(self, "ApiUrl", value=api.api.url, description="Base URL of the ragline API")
        CfnOutput(
            self,
            "BucketName",
            value=self.ingestion.bucket.bucket_name,
            description="Upload documents here (aws s3 cp); deleting an object removes it",
        )
        if self.database.data_api:
            # What `ragline keys` needs to manage the API keys over the Data API.
            CfnOutput(
                self,
                "DatabaseClusterArn",
                value=self.database.cluster.cluster_arn,
                description="RAGLINE_DATABASE_CLUSTER_ARN for ragline keys (Data API)",
            )
            CfnOutput(
                self,
                "DatabaseSecretArn",
                value=self.database.secret.secret_arn,
                description="RAGLINE_DATABASE_SECRET_ARN for ragline keys (Data API)",
            )
        CfnOutput(
            self,
            "DeadLetterQueueUrl",
            value=self.ingestion.dead_letter_queue.queue_url,
            description="Ingestion messages that failed every attempt",
        )
        if self.monitoring.dashboard is not None:
            CfnOutput(self, "DashboardName", value=self.monitoring.dashboard.dashboard_name)
        CfnOutput(self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn)
        pool = api.user_pool
        if pool is not None and pool.client is not None:  # a pool the stack created
            CfnOutput(self, "UserPoolId", value=pool.user_pool.user_pool_id)
            CfnOutput(self, "UserPoolClientId", value=pool.client.user_pool_client_id)
        if self.openai_secret is not None:
            CfnOutput(
                self,
                "OpenAiSecretArn",
                value=self.openai_secret.secret_arn,
                description="aws secretsmanager put-secret-value --secret-id <arn> "
                "--secret-string <your OpenAI key>",
            )
        if self.model_endpoint is not None:
            CfnOutput(self, "ModelEndpointName", value=self.model_endpoint.endpoint_name)
