"""Aurora PostgreSQL Serverless v2 with pgvector, and the migrations run on every deploy.

The cluster scales to 0 ACUs when idle (auto-pause) so an unused deployment pays for
storage only; the first connection after a pause waits while it resumes (about 15 s).
With ``database_access=data-api`` the cluster's Data API is on and the functions,
outside the VPC, send their SQL through it with the cluster's secret; nothing connects
to the cluster over the network, so its security group admits nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aws_cdk import CustomResource, Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks.functions import RaglineFunction
from stacks.nag import acknowledge, reference
from stacks.packaging import layer_fingerprint

if TYPE_CHECKING:
    from stacks.inputs import ConstructInputs
    from stacks.network import Network
    from stacks.settings import DeploymentSettings

DATABASE_NAME = "ragline"
DATABASE_USER = "ragline"
DATABASE_PORT = 5432


def engine_version(version: str) -> rds.AuroraPostgresEngineVersion:
    """The aws-cdk-lib constant for an Aurora PostgreSQL version such as ``17.5``.

    Aurora ships pgvector 0.8 from 16.6 and in every 17.x release.
    """
    major, minor = (int(part) for part in version.split("."))
    if (major, minor) < (16, 6):
        raise ValueError(f"Aurora PostgreSQL {version} lacks pgvector 0.8; use 16.6+ or 17.x")
    constant = f"VER_{major}_{minor}"
    if not hasattr(rds.AuroraPostgresEngineVersion, constant):
        known = sorted(
            name[4:].replace("_", ".")
            for name in dir(rds.AuroraPostgresEngineVersion)
            if name.startswith(("VER_16_", "VER_17_")) and "LIMITLESS" not in name
        )
        raise ValueError(f"aws-cdk-lib has no Aurora PostgreSQL {version}; known: {known}")
    result: rds.AuroraPostgresEngineVersion = getattr(rds.AuroraPostgresEngineVersion, constant)
    return result


class Database(Construct):
    """The cluster, its generated secret, and the migration custom resource.

    ``environment`` is what a function needs to find the database; the migration
    function gets it on top of ``inputs.environment``.
    """

    def __init__(self, scope: Construct, construct_id: str, *, inputs: ConstructInputs) -> None:
        super().__init__(scope, construct_id)
        settings, network = inputs.settings, inputs.network
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=network.vpc,
            description="ragline database: PostgreSQL from the ragline functions only",
            allow_all_outbound=False,
        )
        self.data_api = settings.data_api
        self.cluster = self._cluster(settings, network)
        if network.lambda_security_group is not None:
            self.security_group.add_ingress_rule(
                network.lambda_security_group,
                ec2.Port.tcp(DATABASE_PORT),
                "PostgreSQL from the ragline functions",
            )
            network.lambda_security_group.add_egress_rule(
                self.security_group, ec2.Port.tcp(DATABASE_PORT), "PostgreSQL to the database"
            )
        assert self.cluster.secret is not None  # generated credentials always have one
        self.secret = self.cluster.secret
        # What a function needs to find the database (ragline.config): the secret holds
        # the host and credentials for psycopg; the Data API takes the cluster's ARN,
        # the secret's ARN and the database's name with every request.
        self.environment = {"RAGLINE_DATABASE_SECRET_ARN": self.secret.secret_arn}
        if settings.data_api:
            self.environment |= {
                "RAGLINE_DATABASE_DRIVER": "data-api",
                "RAGLINE_DATABASE_CLUSTER_ARN": self.cluster.cluster_arn,
                "RAGLINE_DATABASE_NAME": DATABASE_NAME,
            }
        self._acknowledge(settings)
        self._migrations(inputs.with_environment(self.environment))

    def _cluster(self, settings: DeploymentSettings, network: Network) -> rds.DatabaseCluster:
        """The Serverless v2 cluster (pausing at 0 ACUs), with its PostgreSQL log group."""
        cluster_identifier = f"{settings.stack_name}-database".lower()
        # Created here (not by RDS) so the PostgreSQL log has a retention and is deleted
        # with the stack, without the log-retention custom resource.
        postgres_logs = logs.LogGroup(
            self,
            "PostgresLogs",
            log_group_name=f"/aws/rds/cluster/{cluster_identifier}/postgresql",
            retention=settings.log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        pauses = settings.database_min_capacity == 0
        cluster = rds.DatabaseCluster(
            self,
            "Cluster",
            engine=rds.DatabaseClusterEngine.aurora_postgres(
                version=engine_version(settings.database_engine_version)
            ),
            cluster_identifier=cluster_identifier,
            engine_lifecycle_support=rds.EngineLifecycleSupport.OPEN_SOURCE_RDS_EXTENDED_SUPPORT_DISABLED,
            writer=rds.ClusterInstance.serverless_v2(
                "Writer", auto_minor_version_upgrade=True, publicly_accessible=False
            ),
            serverless_v2_min_capacity=settings.database_min_capacity,
            serverless_v2_max_capacity=settings.database_max_capacity,
            serverless_v2_auto_pause_duration=(
                Duration.minutes(settings.database_auto_pause_minutes) if pauses else None
            ),
            credentials=rds.Credentials.from_generated_secret(DATABASE_USER),
            default_database_name=DATABASE_NAME,
            port=DATABASE_PORT,
            vpc=network.vpc,
            vpc_subnets=network.data_subnets,
            security_groups=[self.security_group],
            storage_encrypted=True,
            backup=rds.BackupProps(
                retention=Duration.days(settings.database_backup_retention_days)
            ),
            copy_tags_to_snapshot=True,
            cloudwatch_logs_exports=["postgresql"],
            enable_data_api=settings.data_api,
            deletion_protection=settings.database_deletion_protection,
            removal_policy=RemovalPolicy.SNAPSHOT,
        )
        cluster.node.add_dependency(postgres_logs)
        return cluster

    def _migrations(self, inputs: ConstructInputs) -> None:
        """The migration function, run by a custom resource on every deploy."""
        settings = inputs.settings
        self.migrations = RaglineFunction(
            self,
            "Migrate",
            inputs=inputs,
            name="migrate",
            description="ragline: apply the database migrations (CloudFormation custom resource)",
            timeout=Duration.minutes(5),
            memory_size=512,
        )
        self.migrations.grant_database(self)
        provider = cr.Provider(
            self,
            "MigrationsProvider",
            on_event_handler=self.migrations.function,
            log_group=logs.LogGroup(
                self,
                "MigrationsProviderLogs",
                retention=settings.log_retention,
                removal_policy=RemovalPolicy.DESTROY,
            ),
        )
        self.migration_run = CustomResource(
            self,
            "Migrations",
            service_token=provider.service_token,
            resource_type="Custom::RaglineMigrations",
            properties={
                # A new value on every synth makes CloudFormation send an Update on every
                # deploy, so migrations shipped in a new layer are always applied.
                "DeployedAt": datetime.now(UTC).isoformat(timespec="seconds"),
                "LibraryFingerprint": layer_fingerprint(settings.architecture)[:16],
            },
        )
        self.migration_run.node.add_dependency(self.cluster)
        # In the isolated mode the function reaches Secrets Manager only through its
        # endpoint, which must exist (with its private DNS) before the first run.
        for endpoint in inputs.network.endpoints.values():
            self.migration_run.node.add_dependency(endpoint)
        _acknowledge_provider(provider, self.migrations.function)

    def _acknowledge(self, settings: DeploymentSettings) -> None:
        acknowledge(
            self.cluster,
            "AwsSolutions-RDS6",
            "The functions authenticate with the generated credentials in Secrets Manager, "
            "readable only by their roles; IAM database tokens would add a token refresh to "
            "every pooled connection for no gain in this single-tenant database.",
        )
        acknowledge(
            self.cluster,
            "AwsSolutions-SMG4",
            "Rotation would change the password under the functions' open connections, and "
            "the store re-reads the secret only when it reconnects; rotation waits for a "
            "reconnect-on-authentication-failure path. Only the ragline roles may read it.",
        )
        if not settings.database_deletion_protection:
            acknowledge(
                self.cluster,
                "AwsSolutions-RDS10",
                "Off by default so `cdk destroy` works; a final snapshot is kept on deletion "
                "(removal policy SNAPSHOT). Enable with -c database_deletion_protection=true.",
            )


def _acknowledge_provider(provider: cr.Provider, handler: lambda_.IFunction) -> None:
    """The custom-resource framework's own function (aws-cdk-lib code, not ours)."""
    framework = provider.node.find_child("framework-onEvent")
    acknowledge(
        framework,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
        "AWSLambdaBasicExecutionRole]",
        "The custom-resource framework function of aws-cdk-lib writes its logs with the "
        "AWS managed basic execution policy; it handles only the migration resource.",
    )
    acknowledge(
        framework,
        f"AwsSolutions-IAM5[Resource::{reference(handler)}:*]",
        "The framework may invoke any version of the migration function, and only it.",
    )
