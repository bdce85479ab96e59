"""The CloudWatch dashboard (optional) and the alarms, sent to an SNS topic.

The topic accepts TLS only; with ``alarm_topic_kms`` it is also encrypted at rest with
a customer managed key (about $1/month).

The functions publish EMF metrics in the `metrics_namespace` (default `Ragline`). Every
document carries the dimension set `{service: ragline}`, which is what the alarms and
the dashboard's totals read: an alarm cannot aggregate a SEARCH over the per-model
dimension set (`service, Provider, Model, Prompt, Profile`), which the dashboard uses
only for its per-model breakdown. With a GPU endpoint, the endpoint meter's
`EndpointCostUSD` (its instance-hours) joins the models' spend in the daily cost alarm.
A query document also carries its tenant's share on `{service, Tenant}`; a tenant named
in `tenant_cost_alarms` gets a daily alarm of its own on that `CostUSD`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_rds as rds
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from ragline.telemetry.metrics import COST_METRIC, TENANT_DIMENSIONS

if TYPE_CHECKING:
    from stacks.settings import DeploymentSettings

SERVICE = "ragline"
PERIOD = Duration.minutes(5)
DAY = Duration.days(1)
PER_MODEL_DIMENSIONS = "service,Provider,Model,Prompt,Profile"
TOKEN_METRICS = ("InputTokens", "OutputTokens", "CachedInputTokens", "EmbeddingTokens")
STAGE_LATENCIES = ("RetrieveLatency", "GenerateLatency", "TotalLatency")
# InstructionEcho: answers repeating an instruction found in a passage (issue 9).
QUALITY_RATES = ("Abstained", "NeedsReview", "Fallback", "InstructionEcho")
INGEST_COUNTS = (
    "DocumentsIngested",
    "DocumentsSkipped",
    "DocumentsDeleted",
    "DocumentsFailed",
    "ChunksWritten",
)
WIDTH = 8  # three widgets per row (the dashboard grid is 24 wide)


class Monitoring(Construct):
    """Dashboard, alarms and the alarm topic."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: DeploymentSettings,
        api: apigw.RestApi,
        functions: Sequence[lambda_.Function],
        queue: sqs.IQueue,
        dead_letter_queue: sqs.IQueue,
        cluster: rds.IDatabaseCluster,
        endpoint_name: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.namespace = settings.metrics_namespace
        self.key = self._topic_key() if settings.alarm_topic_kms else None
        self.topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name="ragline alarms",
            master_key=self.key,
            enforce_ssl=True,
        )
        if settings.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))

        self.alarms = self._alarms(settings, api, dead_letter_queue, endpoint_name)
        self.dashboard: cw.Dashboard | None = None
        if settings.dashboard:
            self.dashboard = cw.Dashboard(
                self,
                "Dashboard",
                dashboard_name=f"{settings.stack_name}-{SERVICE}",
                default_interval=Duration.hours(24),
            )
            self._widgets(
                self.dashboard, api, functions, queue, dead_letter_queue, cluster, endpoint_name
            )

    def _topic_key(self) -> kms.Key:
        """A customer managed key: CloudWatch cannot publish to a topic encrypted with the
        AWS managed SNS key, whose policy cannot be changed."""
        key = kms.Key(
            self,
            "AlarmTopicKey",
            description="ragline alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        key.grant(
            iam.ServicePrincipal("cloudwatch.amazonaws.com"),
            "kms:Decrypt",
            "kms:GenerateDataKey*",
        )
        return key

    # Metrics.

    def metric(self, name: str, statistic: str = "Sum", period: Duration = PERIOD) -> cw.Metric:
        """A ragline EMF metric with the ``{service: ragline}`` dimension set."""
        return cw.Metric(
            namespace=self.namespace,
            metric_name=name,
            dimensions_map={"service": SERVICE},
            statistic=statistic,
            period=period,
            label=name,
        )

    def per_model(self, name: str, statistic: str = "Sum") -> cw.MathExpression:
        """A SEARCH over the per-model dimension set, one line per provider/model/prompt."""
        return cw.MathExpression(
            expression=(
                f"SEARCH('{{{self.namespace},{PER_MODEL_DIMENSIONS}}} "
                f"MetricName=\"{name}\"', '{statistic}', {int(PERIOD.to_seconds())})"
            ),
            label="",
            period=PERIOD,
        )

    def percentiles(self, name: str) -> list[cw.IMetric]:
        """The p50 and p95 lines of a ragline latency metric."""
        return [
            self.metric(name, "p50").with_(label=f"{name} p50"),
            self.metric(name, "p95").with_(label=f"{name} p95"),
        ]

    # Alarms.

    def _alarms(
        self,
        settings: DeploymentSettings,
        api: apigw.RestApi,
        dead_letter_queue: sqs.IQueue,
        endpoint_name: str | None,
    ) -> list[cw.Alarm]:
        daily_cost, counted = self._daily_cost(endpoint_name)
        definitions: list[tuple[str, cw.IMetric, float, str, int, int]] = [
            (
                "Api5xxRate",
                api.metric_server_error(statistic="Average", period=PERIOD),
                settings.alarm_5xx_rate,
                "Share of API requests answered with a 5xx",
                3,
                2,
            ),
            (
                "ApiLatencyP95",
                api.metric_latency(statistic="p95", period=PERIOD),
                settings.alarm_p95_latency_ms,
                "95th percentile API latency in milliseconds",
                3,
                2,
            ),
            (
                "DeadLetterQueueNotEmpty",
                dead_letter_queue.metric_approximate_number_of_messages_visible(
                    statistic="Maximum", period=PERIOD
                ),
                0,
                "Messages the ingest function gave up on (see the DLQ)",
                1,
                1,
            ),
            (
                "DocumentsFailed",
                self.metric("DocumentsFailed"),
                settings.alarm_failed_documents,
                "Documents that could not be parsed or stored",
                1,
                1,
            ),
            (
                "DailyCost",
                daily_cost,
                settings.daily_cost_budget_usd,
                f"{counted} over the last 24 hours, USD",
                1,
                1,
            ),
        ]
        alarms = [self._alarm(*definition) for definition in definitions]
        return alarms + self._tenant_cost_alarms(settings)

    def _tenant_cost_alarms(self, settings: DeploymentSettings) -> list[cw.Alarm]:
        """One daily cost alarm per tenant of ``tenant_cost_alarms``: the tenant's share of
        the query documents' cost (``CostUSD`` on ``service, Tenant``, as the query
        function emits it), summed over a day."""
        alarms = []
        for tenant, threshold in sorted(settings.tenant_cost_alarms.items()):
            cost = cw.Metric(
                namespace=self.namespace,
                metric_name=COST_METRIC,
                dimensions_map=dict(zip(TENANT_DIMENSIONS, (SERVICE, tenant), strict=True)),
                statistic="Sum",
                period=DAY,
            )
            description = f"Tenant {tenant}'s model spend on queries over the last 24 hours, USD"
            alarms.append(self._alarm(f"DailyCost-{tenant}", cost, threshold, description, 1, 1))
        return alarms

    def _daily_cost(self, endpoint_name: str | None) -> tuple[cw.MathExpression, str]:
        """The last 24 hours' spend, and what it counts (in words)."""
        costs: dict[str, cw.IMetric] = {
            "queries": self.metric("CostUSD", period=DAY),
            "ingestion": self.metric("EmbeddingCostUSD", period=DAY),
        }
        counted = "Model spend (queries + embeddings)"
        if endpoint_name:
            # The GPU endpoint bills its instance-hours whether it serves or not; the
            # endpoint meter publishes them. The time queries held the endpoint is also in
            # CostUSD (its per-call estimate), so that share is counted twice: the alarm
            # errs early, never late.
            costs["endpoint"] = self.metric("EndpointCostUSD", period=DAY)
            counted = "Model spend (queries + embeddings) and the GPU endpoint's instance-hours"
        daily_cost = cw.MathExpression(
            expression=" + ".join(f"FILL({name}, 0)" for name in costs),
            using_metrics=costs,
            label=f"{counted} over the last 24 hours (USD)",
            period=DAY,
        )
        return daily_cost, counted

    def _alarm(
        self,
        name: str,
        metric: cw.IMetric,
        threshold: float,
        description: str,
        periods: int,
        datapoints: int,
    ) -> cw.Alarm:
        """An alarm above ``threshold``, telling the topic when it fires and when it clears."""
        alarm = cw.Alarm(
            self,
            name,
            alarm_description=f"ragline: {description} above {threshold}",
            metric=metric,
            threshold=threshold,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=periods,
            datapoints_to_alarm=datapoints,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        alarm.add_ok_action(cw_actions.SnsAction(self.topic))
        return alarm

    # Dashboard: one row of three widgets per concern, one widget per signal.

    def _widgets(
        self,
        dashboard: cw.Dashboard,
        api: apigw.RestApi,
        functions: Sequence[lambda_.Function],
        queue: sqs.IQueue,
        dead_letter_queue: sqs.IQueue,
        cluster: rds.IDatabaseCluster,
        endpoint_name: str | None,
    ) -> None:
        dashboard.add_widgets(self._header())
        dashboard.add_widgets(_api_requests(api), _api_latency(api), self._stage_latencies())
        dashboard.add_widgets(self._tokens(), self._cost(), self._cost_per_model())
        dashboard.add_widgets(self._quality_rates(), self._retrieval(), self._feedback())
        dashboard.add_widgets(
            self._ingestion(), self._ingest_latency(), _queues(queue, dead_letter_queue)
        )
        dashboard.add_widgets(
            _lambda_errors(functions), _lambda_duration(functions), _aurora_capacity(cluster)
        )
        if endpoint_name:
            dashboard.add_widgets(_endpoint_traffic(endpoint_name), self._endpoint_cost())
        dashboard.add_widgets(
            cw.AlarmStatusWidget(alarms=list(self.alarms), title="Alarms", width=24, height=3)
        )

    def _header(self) -> cw.TextWidget:
        return cw.TextWidget(
            markdown=f"# ragline\nMetrics in `{self.namespace}` with `service=ragline`; "
            "per-model lines come from the `Provider, Model, Prompt, Profile` dimensions.",
            width=24,
            height=2,
        )

    def _stage_latencies(self) -> cw.GraphWidget:
        lines = [line for name in STAGE_LATENCIES for line in self.percentiles(name)]
        return _graph("Latency per stage (ms)", lines)

    def _tokens(self) -> cw.GraphWidget:
        return _graph("Tokens", [self.metric(name) for name in TOKEN_METRICS])

    def _cost(self) -> cw.GraphWidget:
        return _graph("Cost (USD)", [self.metric("CostUSD"), self.metric("EmbeddingCostUSD")])

    def _cost_per_model(self) -> cw.GraphWidget:
        return _graph("Cost per model (USD)", [self.per_model("CostUSD")])

    def _quality_rates(self) -> cw.GraphWidget:
        return _graph(
            "Abstention, review, fallback and instruction-echo rates",
            [self.metric(name, "Average").with_(label=f"{name} rate") for name in QUALITY_RATES],
            left_y_axis=cw.YAxisProps(min=0, max=1),
        )

    def _retrieval(self) -> cw.GraphWidget:
        return _graph(
            "Retrieval",
            [self.metric("TopScore", "Average"), self.metric("ChunksRetrieved", "Average")],
        )

    def _feedback(self) -> cw.GraphWidget:
        return _graph("Feedback", [self.metric("Feedback")])

    def _ingestion(self) -> cw.GraphWidget:
        return _graph("Ingestion", [self.metric(name) for name in INGEST_COUNTS])

    def _ingest_latency(self) -> cw.GraphWidget:
        return _graph("Ingest latency (ms)", self.percentiles("IngestLatency"))

    def _endpoint_cost(self) -> cw.GraphWidget:
        """What the endpoint meter reads: billed whether or not anything is asked."""
        return _graph(
            "SageMaker endpoint instances and their cost",
            [
                self.metric("EndpointInstances", "Maximum").with_(
                    label="in-service instances (meter)"
                )
            ],
            right=[
                self.metric("EndpointCostUSD").with_(
                    label="instance-hours cost per 5 minutes (USD)"
                )
            ],
        )


def _graph(
    title: str,
    left: Sequence[cw.IMetric],
    right: Sequence[cw.IMetric] = (),
    left_y_axis: cw.YAxisProps | None = None,
) -> cw.GraphWidget:
    """A dashboard graph, a third of the grid wide."""
    return cw.GraphWidget(
        title=title,
        left=list(left),
        right=list(right),
        left_y_axis=left_y_axis,
        width=WIDTH,
        height=6,
    )


def _api_requests(api: apigw.RestApi) -> cw.GraphWidget:
    return _graph(
        "API requests and errors",
        [api.metric_count(period=PERIOD), api.metric_client_error(period=PERIOD)],
        right=[api.metric_server_error(period=PERIOD)],
    )


def _api_latency(api: apigw.RestApi) -> cw.GraphWidget:
    return _graph(
        "API latency (ms)",
        [
            api.metric_latency(statistic="p50", period=PERIOD),
            api.metric_latency(statistic="p95", period=PERIOD),
        ],
    )


def _queues(queue: sqs.IQueue, dead_letter_queue: sqs.IQueue) -> cw.GraphWidget:
    return _graph(
        "Queues",
        [
            queue.metric_approximate_number_of_messages_visible(period=PERIOD),
            queue.metric_approximate_age_of_oldest_message(period=PERIOD),
        ],
        right=[
            dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=PERIOD, label="DLQ depth"
            )
        ],
    )


def _lambda_errors(functions: Sequence[lambda_.Function]) -> cw.GraphWidget:
    return _graph(
        "Lambda errors and throttles",
        [
            metric
            for function in functions
            for metric in (
                function.metric_errors(period=PERIOD),
                function.metric_throttles(period=PERIOD),
            )
        ],
    )


def _lambda_duration(functions: Sequence[lambda_.Function]) -> cw.GraphWidget:
    return _graph(
        "Lambda duration p95 (ms)",
        [function.metric_duration(statistic="p95", period=PERIOD) for function in functions],
    )


def _aurora_capacity(cluster: rds.IDatabaseCluster) -> cw.GraphWidget:
    return _graph(
        "Aurora capacity",
        [cluster.metric("ServerlessDatabaseCapacity", statistic="Average", period=PERIOD)],
        right=[cluster.metric("ACUUtilization", statistic="Average", period=PERIOD)],
    )


def _endpoint_traffic(endpoint_name: str) -> cw.GraphWidget:
    """The endpoint's invocations and model latency, as SageMaker publishes them."""
    dimensions = {"EndpointName": endpoint_name, "VariantName": "AllTraffic"}

    def sagemaker_metric(name: str, statistic: str) -> cw.Metric:
        return cw.Metric(
            namespace="AWS/SageMaker",
            metric_name=name,
            dimensions_map=dimensions,
            statistic=statistic,
            period=PERIOD,
        )

    return _graph(
        "SageMaker endpoint",
        [sagemaker_metric("Invocations", "Sum")],
        right=[sagemaker_metric("ModelLatency", "p95")],
    )
