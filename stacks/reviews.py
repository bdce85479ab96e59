"""The review queue on AWS: its routes, its event topic, its figures, and the console.

* Routes: ``/reviews`` and ``/reviews/{id}[/claim|approve|correct|reject]`` on the one
  query integration, behind the key authorizer; the correct and reject bodies validated
  by draft-4 models generated from the handler's own schemas (``ragline.reviews.models``).
* ``ReviewTopic``: an SNS topic (TLS only) the query function publishes an event to for
  each queued item (``RAGLINE_REVIEW_TOPIC_ARN``); a team subscribes what routes it.
  Idle it costs nothing; each message is ids and labels, no document data.
* On the dashboard: queue depth and oldest item's age, time to decision, and the approval
  rate per model and prompt version; an alarm when a day's approval rate falls below
  ``review_approval_bar`` (0 leaves it out; one alarm, $0.10 a month).
* The console (``-c console=true``, off by default): the page ``ragline dev`` serves at
  ``/console`` (``ragline/dev/console/``) in a
  private bucket behind CloudFront with origin access control, the API behind the same
  distribution (so the page calls it on its own origin, with the user's API key). Idle,
  it costs the bucket's few kilobytes (under $0.01 a month) and nothing for CloudFront
  (billed per request and byte; no monthly fee).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from aws_cdk import aws_sns as sns
from constructs import Construct
from ragline.reviews.models import CorrectRequest, RejectRequest

from stacks.monitoring import DAY, WIDTH
from stacks.nag import acknowledge, reference
from stacks.request_models import as_cdk, request_model

if TYPE_CHECKING:
    from stacks.api import Api
    from stacks.monitoring import Monitoring
    from stacks.settings import DeploymentSettings

# The page ragline dev serves at /console (ragline.dev.static), deployed as it is.
CONSOLE_DIRECTORY = Path(__file__).resolve().parents[1] / "layers/common/python/ragline/dev/console"
# The routes of the review API: (method, path under /reviews/{id}, request model).
DECISIONS: tuple[tuple[str, type[CorrectRequest] | type[RejectRequest] | None], ...] = (
    ("claim", None),
    ("approve", None),
    ("correct", CorrectRequest),
    ("reject", RejectRequest),
)
# Paths the console's distribution sends to the API (the rest is the page).
API_PATHS = ("/query", "/retrieve", "/feedback", "/reviews*", "/documents*", "/health")


def add_review_routes(api: Api, integration: apigw.Integration) -> None:
    """``/reviews`` routes on the API, their bodies and path parameters validated."""
    validator = api.api.add_request_validator(
        "ReviewValidator", validate_request_body=True, validate_request_parameters=True
    )
    reviews = api.api.root.add_resource("reviews")
    api._add(reviews, "GET", "/reviews", integration)
    item = reviews.add_resource("{id}")
    path_id = {"method.request.path.id": True}
    api._add(item, "GET", "/reviews/{id}", integration, request_validator=validator,
             request_parameters=path_id)  # fmt: skip
    for action, model in DECISIONS:
        models: dict[str, apigw.IModel] | None = None
        if model is not None:
            schema = as_cdk(request_model(model, None, 0))
            models = {
                "application/json": api.api.add_model(
                    model.__name__, content_type="application/json", schema=schema
                )
            }
        api._add(
            item.add_resource(action),
            "POST",
            f"/reviews/{{id}}/{action}",
            integration,
            request_validator=validator,
            request_models=models,
            request_parameters=path_id,
        )


class Reviews(Construct):
    """The review event topic, its dashboard row and alarm, and the optional console."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: DeploymentSettings,
        queries: list[lambda_.Function],
        api: Api,
        monitoring: Monitoring,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self, "ReviewTopic", display_name="ragline review queue", enforce_ssl=True
        )
        for query in queries:  # the buffered query function and the streaming one
            self.topic.grant_publish(query)
            query.add_environment("RAGLINE_REVIEW_TOPIC_ARN", self.topic.topic_arn)
        CfnOutput(self, "ReviewTopicArn", value=self.topic.topic_arn,
                  description="Subscribe to route queued review items")  # fmt: skip
        self.monitoring = monitoring
        self.alarm = (
            self._approval_alarm(settings.review_approval_bar, monitoring)
            if settings.review_approval_bar > 0
            else None
        )
        if monitoring.dashboard is not None:
            monitoring.dashboard.add_widgets(*self._widgets())
        self.console = self._console(api) if settings.console else None

    def _approval_alarm(self, bar: float, monitoring: Monitoring) -> cw.Alarm:
        """A day's approvals over its decisions below ``bar``; a day without decisions
        is no breach."""
        alarm = cw.Alarm(
            self,
            "DailyApprovalRate",
            alarm_description=f"ragline: share of reviewed answers approved as given over "
            f"the last 24 hours below {bar}",
            metric=self.monitoring.metric("ReviewApproved", "Average", DAY),
            threshold=bar,
            comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(monitoring.topic))
        alarm.add_ok_action(cw_actions.SnsAction(monitoring.topic))
        return alarm

    def _widgets(self) -> list[cw.IWidget]:
        per_model = cw.MathExpression(
            expression=(
                f"SEARCH('{{{self.monitoring.namespace},service,Model,Prompt}} "
                f"MetricName=\"ReviewApproved\"', 'Average', {int(DAY.to_seconds())})"
            ),
            label="",
            period=DAY,
        )
        return [
            cw.GraphWidget(
                title="Review queue: depth and oldest item (s)",
                left=[self.monitoring.metric("ReviewQueueDepth", "Maximum")],
                right=[self.monitoring.metric("ReviewOldestAge", "Maximum")],
                width=WIDTH,
                height=6,
            ),
            cw.GraphWidget(
                title="Review: time to decision (s), items queued",
                left=[
                    self.monitoring.metric("ReviewDecisionTime", "p50").with_(label="p50"),
                    self.monitoring.metric("ReviewDecisionTime", "p95").with_(label="p95"),
                ],
                right=[self.monitoring.metric("ReviewsQueued", "Sum")],
                width=WIDTH,
                height=6,
            ),
            cw.GraphWidget(
                title="Daily approval rate per model and prompt",
                left=[per_model],
                left_y_axis=cw.YAxisProps(min=0, max=1),
                width=WIDTH,
                height=6,
            ),
        ]

    def _console(self, api: Api) -> cloudfront.Distribution:
        """The console's private bucket and the distribution in front of it and the API."""
        bucket = s3.Bucket(
            self,
            "ConsoleBucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            removal_policy=RemovalPolicy.DESTROY,
            auto_delete_objects=True,
        )
        acknowledge(
            bucket,
            "AwsSolutions-S1",
            "The bucket holds the console's static files, the same for every deployment "
            "and redeployed by cdk deploy; CloudFront's own logs are the record of reads.",
        )
        api_origin = origins.RestApiOrigin(api.api)
        to_api = cloudfront.BehaviorOptions(
            origin=api_origin,
            viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
            allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
            cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
            origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
        )
        distribution = cloudfront.Distribution(
            self,
            "Console",
            comment="ragline console",
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                # Three small files: not cached, so a deploy shows at once without an
                # invalidation (which would grant the deployment function on "*").
                cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
            ),
            additional_behaviors={path: to_api for path in API_PATHS},
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
        )
        _acknowledge_distribution(distribution)
        s3deploy.BucketDeployment(
            self,
            "ConsoleFiles",
            sources=[s3deploy.Source.asset(str(CONSOLE_DIRECTORY))],
            destination_bucket=bucket,
        )
        _acknowledge_deployment_function(Stack.of(self), bucket)
        CfnOutput(self, "ConsoleUrl", value=f"https://{distribution.distribution_domain_name}",
                  description="The review console and playground")  # fmt: skip
        return distribution


def _acknowledge_distribution(distribution: cloudfront.Distribution) -> None:
    for rule, reason in (
        ("AwsSolutions-CFR1", "Reviewers work from wherever the operator's staff are; every "
         "API call behind the page needs a ragline API key, the page itself holds no data."),
        ("AwsSolutions-CFR2", "The page is static files; the API behind the distribution "
         "passes through the API's own regional web ACL when -c waf=true attaches one."),
        ("AwsSolutions-CFR3", "The static files are the same for everyone; the API calls "
         "through the distribution are logged by the API stage's access logs."),
        ("AwsSolutions-CFR4", "The default *.cloudfront.net certificate's policy is fixed "
         "by CloudFront; a custom domain with its ACM certificate sets TLSv1.2_2021."),
    ):  # fmt: skip
        acknowledge(distribution, rule, reason)


def _acknowledge_deployment_function(stack: Stack, bucket: s3.Bucket) -> None:
    """The findings on CDK's BucketDeployment function, a singleton under the stack."""
    assets = f"arn:aws:s3:::cdk-hnb659fds-assets-{stack.account}-{stack.region}/*"
    copies = (
        "CDK's deployment function copies the console's files from the bootstrap assets "
        "bucket into the console bucket: the object actions of grant_read_write on those two."
    )
    wildcards = [
        f"AwsSolutions-IAM5[{target}]"
        for target in (
            "Action::s3:GetBucket*", "Action::s3:GetObject*", "Action::s3:List*",
            "Action::s3:Abort*", "Action::s3:DeleteObject*", f"Resource::{assets}",
            f"Resource::{reference(bucket)}/*",
        )
    ]  # fmt: skip
    for child in stack.node.children:
        if not child.node.id.startswith("Custom::CDKBucketDeployment"):
            continue
        for rule in wildcards:
            acknowledge(child, rule, copies)
        for rule, reason in (
            ("AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
             "AWSLambdaBasicExecutionRole]", "CDK's deployment function writes only its own "
             "logs with the basic execution role; it runs once per cdk deploy."),
            ("AwsSolutions-L1", "The runtime of CDK's own deployment function is chosen by "
             "aws-cdk-lib and moves with it; it runs only during cdk deploy."),
        ):  # fmt: skip
            acknowledge(child, rule, reason)
