"""Documents bucket -> SQS queue (+ DLQ) -> ingest function.

Every created and removed object is a message; the function takes batches, reports
the records it could not process (partial batch response), and after
``queue_max_receive_count`` failed attempts a message rests in the DLQ for 14 days.
Reserved concurrency caps how many ingest functions write to the database at once.
With ``reconcile`` on, a scheduled function makes the store match the bucket, repairing
what lost events leave behind (the library's ``ragline.ingest.reconcile``, as
``ragline sync`` runs it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.functions import RaglineFunction
from stacks.nag import acknowledge, reference

if TYPE_CHECKING:
    from stacks.database import Database
    from stacks.inputs import ConstructInputs
    from stacks.settings import DeploymentSettings

# Lambda's guidance for SQS sources: visibility >= 6 x the function timeout (+ window).
VISIBILITY_TIMEOUT_FACTOR = 6
DLQ_RETENTION = Duration.days(14)
# A reconcile reads the whole bucket; Lambda's longest run is what a large one needs.
RECONCILE_TIMEOUT = Duration.minutes(15)


def parse_environment(settings: DeploymentSettings) -> dict[str, str]:
    """The parse budgets of a function that ingests (checked against its timeout and
    memory by DeploymentSettings)."""
    return {
        "RAGLINE_PARSE_TIMEOUT_SECONDS": str(settings.ingest_parse_timeout_seconds),
        "RAGLINE_PARSE_MEMORY_MB": str(settings.ingest_parse_memory_mb),
    }


class Ingestion(Construct):
    """The documents bucket, its access-log bucket, the queues and the ingest function.

    The functions here embed with the embeddings model (``settings.embeddings``) and
    nothing else; ``inputs.environment`` includes the database's variables.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, inputs: ConstructInputs, database: Database
    ) -> None:
        super().__init__(scope, construct_id)
        settings = inputs.settings
        self.models = [settings.embeddings]
        self.access_logs, self.bucket = self._buckets()
        self.dead_letter_queue, self.queue = self._queues(settings)
        for event in (s3.EventType.OBJECT_CREATED, s3.EventType.OBJECT_REMOVED):
            self.bucket.add_event_notification(event, s3n.SqsDestination(self.queue))
        self.ingest = self._ingest_function(inputs, database)
        self.reconcile: RaglineFunction | None = None
        if settings.reconcile:
            self.reconcile = self._reconcile_function(inputs, database)
        _acknowledge_notifications_handler(self)

    def _buckets(self) -> tuple[s3.Bucket, s3.Bucket]:
        """The access-log bucket, and the versioned documents bucket logging into it."""
        access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # server access logs need SSE-S3
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        documents = s3.Bucket(
            self,
            "Documents",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="documents/",
            lifecycle_rules=[
                # Versioning guards against accidental overwrites; old versions go after 30 days.
                s3.LifecycleRule(noncurrent_version_expiration=Duration.days(30))
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        return access_logs, documents

    def _queues(self, settings: DeploymentSettings) -> tuple[sqs.Queue, sqs.Queue]:
        """The dead-letter queue, and the queue of bucket events that feeds it."""
        dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DLQ_RETENTION,
        )
        visibility = (
            VISIBILITY_TIMEOUT_FACTOR * settings.ingest_timeout_seconds
            + settings.ingest_max_batching_window_seconds
        )
        queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(visibility),
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=settings.queue_max_receive_count, queue=dead_letter_queue
            ),
        )
        return dead_letter_queue, queue

    def _ingest_function(self, inputs: ConstructInputs, database: Database) -> RaglineFunction:
        """The ingest function on the queue: reads the bucket, writes the store, embeds."""
        settings = inputs.settings
        ingest = RaglineFunction(
            self,
            "Ingest",
            inputs=inputs.with_environment(parse_environment(settings)),
            name="ingest",
            description="ragline: parse, chunk, embed and store documents from S3 events",
            timeout=Duration.seconds(settings.ingest_timeout_seconds),
            memory_size=settings.ingest_memory_mb,
            reserved_concurrency=(
                settings.ingest_concurrency if settings.ingest_reserve_concurrency else None
            ),
        )
        ingest.function.add_event_source(
            event_sources.SqsEventSource(
                self.queue,
                batch_size=settings.ingest_batch_size,
                max_batching_window=Duration.seconds(settings.ingest_max_batching_window_seconds),
                report_batch_item_failures=True,
                max_concurrency=settings.ingest_concurrency,
            )
        )
        ingest.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadDocuments",
                # HeadObject comes with GetObject; tags are part of a document's metadata.
                actions=["s3:GetObject", "s3:GetObjectTagging"],
                resources=[self.bucket.arn_for_objects("*")],
            )
        )
        # Without ListBucket, S3 answers 403 instead of 404 for an object deleted before
        # its ObjectCreated event was processed; the handler must tell these apart.
        ingest.role.add_to_policy(
            iam.PolicyStatement(
                sid="TellMissingDocuments",
                actions=["s3:ListBucket"],
                resources=[self.bucket.bucket_arn],
            )
        )
        ingest.grant_database(database)
        ingest.grant_models(self.models)
        acknowledge(
            ingest.role,
            f"AwsSolutions-IAM5[Resource::{reference(self.bucket)}/*]",
            "The ingest function reads any object of the documents bucket, and only that bucket: "
            "every object in it is a document to ingest.",
        )
        return ingest

    def _reconcile_function(self, inputs: ConstructInputs, database: Database) -> RaglineFunction:
        """The scheduled reconcile: lists and reads the bucket, writes the store, embeds
        with the ingest function's model, nothing else."""
        reconcile = RaglineFunction(
            self,
            "Reconcile",
            inputs=inputs.with_environment(parse_environment(inputs.settings)),
            name="reconcile",
            description="ragline: reconcile the store with the documents bucket (scheduled)",
            timeout=RECONCILE_TIMEOUT,
            memory_size=inputs.settings.ingest_memory_mb,
        )
        reconcile.role.add_to_policy(
            iam.PolicyStatement(
                sid="ListDocuments",
                actions=["s3:ListBucket"],  # the listing, and 404 (not 403) for a gone object
                resources=[self.bucket.bucket_arn],
            )
        )
        reconcile.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadDocuments",
                # HeadObject comes with GetObject; tags are part of a document's metadata.
                actions=["s3:GetObject", "s3:GetObjectTagging"],
                resources=[self.bucket.arn_for_objects("*")],
            )
        )
        reconcile.grant_database(database)
        reconcile.grant_models(self.models)
        acknowledge(
            reconcile.role,
            f"AwsSolutions-IAM5[Resource::{reference(self.bucket)}/*]",
            "The reconcile function compares every object of the documents bucket, and only "
            "that bucket, with the store: every object in it is a document.",
        )
        self._schedule_reconcile(reconcile, inputs.settings)
        return reconcile

    def _schedule_reconcile(self, reconcile: RaglineFunction, settings: DeploymentSettings) -> None:
        """Run the reconcile on its schedule, and name it in an output for `ragline sync`."""
        events.Rule(
            self,
            "ReconcileSchedule",
            description="ragline: reconcile the store with the documents bucket",
            schedule=events.Schedule.expression(settings.reconcile_schedule),
            targets=[
                targets.LambdaFunction(
                    reconcile.function,
                    event=events.RuleTargetInput.from_object({"bucket": self.bucket.bucket_name}),
                )
            ],
        )
        # Read by `ragline sync --stack`, which invokes the function with the same input.
        CfnOutput(
            Stack.of(self),
            "ReconcileFunctionName",
            value=reconcile.function.function_name,
            description="ragline sync --stack <name> runs this function",
        )


def _acknowledge_notifications_handler(scope: Construct) -> None:
    """aws-cdk-lib's bucket-notifications custom resource (one per stack, not our code)."""
    stack = Stack.of(scope)
    handler = stack.node.try_find_child(
        "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"
    )
    if handler is None:
        return
    acknowledge(
        handler,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
        "AWSLambdaBasicExecutionRole]",
        "aws-cdk-lib's bucket-notifications handler writes its logs with the AWS managed "
        "basic execution policy; it only configures the documents bucket's notifications.",
    )
