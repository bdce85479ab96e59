"""The Lambda functions' common shape, and their least-privilege permissions.

Each function gets its own role, its own log group (the role may write to that group
only) and the ragline layer; with ``database_access=vpc`` also the VPC's application
subnets and the Lambda security group, with ``data-api`` no VPC at all.
Model permissions are derived from the `provider:model` strings the function runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.nag import acknowledge
from stacks.packaging import ARCHITECTURES, RUNTIME, function_code
from stacks.settings import parse_model_string

if TYPE_CHECKING:
    from stacks.database import Database
    from stacks.inputs import ConstructInputs

# The actions Lambda needs to attach a function to the VPC; EC2 does not scope them to
# resources (AWSLambdaVPCAccessExecutionRole grants the same on "*").
VPC_ACCESS_ACTIONS = [
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
]
# What a function sends to Aurora through the RDS Data API: statements, batches, and
# the transaction around a document's chunks.
DATA_API_ACTIONS = [
    "rds-data:ExecuteStatement",
    "rds-data:BatchExecuteStatement",
    "rds-data:BeginTransaction",
    "rds-data:CommitTransaction",
    "rds-data:RollbackTransaction",
]
# Bedrock model ids with these prefixes are cross-region inference profiles.
INFERENCE_PROFILE_PREFIXES = ("us.", "eu.", "apac.", "us-gov.", "jp.", "au.", "ca.", "global.")


class RaglineFunction(Construct):
    """A Python 3.11 function from ``functions/<name>``, in the VPC unless the database
    is reached through the Data API."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        inputs: ConstructInputs,
        name: str,
        description: str,
        timeout: Duration,
        memory_size: int,
        reserved_concurrency: int | None = None,
        in_vpc: bool = True,
        handler: str = "handler.lambda_handler",
    ) -> None:
        """``in_vpc=False`` keeps the function outside the VPC whatever the network (one
        that reaches neither the database nor anything inside). The function's
        environment is ``inputs.environment``; ``handler`` its entry point."""
        super().__init__(scope, construct_id)
        self.inputs = inputs
        settings = inputs.settings
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=settings.log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        in_vpc = in_vpc and inputs.network.app_subnets is not None
        self.role = self._role(name, in_vpc=in_vpc)
        self.function = self._function(
            name,
            description,
            in_vpc=in_vpc,
            timeout=timeout,
            memory_size=memory_size,
            reserved_concurrency=reserved_concurrency,
            handler=handler,
        )
        # Outside the VPC without tracing, nothing is granted on "*" unless a Bedrock
        # reranker is (grant_bedrock_rerank acknowledges it then).
        self._wildcard_acknowledged = False
        if in_vpc or settings.tracing:
            self._acknowledge_wildcard()
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            "Pinned to Python 3.11: the layer's compiled wheels (psycopg, numpy, pydantic-core) "
            "and its bytecode are built for cp311 by the build machine's interpreter; moving "
            "runtimes is a deliberate change of the layer build.",
        )

    def _role(self, name: str, *, in_vpc: bool) -> iam.Role:
        """The function's own role: its log group, and the ENI actions in the VPC."""
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"ragline {name} function",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        if in_vpc:
            role.add_to_policy(
                iam.PolicyStatement(sid="AttachToVpc", actions=VPC_ACCESS_ACTIONS, resources=["*"])
            )
        return role

    def _function(
        self,
        name: str,
        description: str,
        *,
        in_vpc: bool,
        timeout: Duration,
        memory_size: int,
        reserved_concurrency: int | None,
        handler: str,
    ) -> lambda_.Function:
        settings, network = self.inputs.settings, self.inputs.network
        security_groups = (
            [network.lambda_security_group] if in_vpc and network.lambda_security_group else None
        )
        return lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=RUNTIME,
            architecture=ARCHITECTURES[settings.architecture],
            handler=handler,
            code=function_code(name),
            layers=[self.inputs.layer],
            role=self.role,
            log_group=self.log_group,
            vpc=network.vpc if in_vpc else None,
            vpc_subnets=network.app_subnets if in_vpc else None,
            security_groups=security_groups,
            timeout=timeout,
            memory_size=memory_size,
            reserved_concurrent_executions=reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE if settings.tracing else lambda_.Tracing.DISABLED,
            environment=dict(self.inputs.environment),
        )

    def _acknowledge_wildcard(self) -> None:
        if self._wildcard_acknowledged:
            return
        self._wildcard_acknowledged = True
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "Only the ENI actions Lambda needs to attach the function to the VPC, (with "
            "tracing) xray:PutTraceSegments/PutTelemetryRecords and (with a Bedrock reranker) "
            "bedrock:Rerank use '*': EC2, X-Ray and the Rerank action support no resource-level "
            "permissions (the reranking model itself is scoped by bedrock:InvokeModel).",
        )

    def grant_database(self, database: Database) -> None:
        """Allow what the function needs to reach the database, and nothing more.

        In the VPC it connects with the credentials of the cluster's secret. Through the
        Data API it sends the statements (the five ``rds-data`` actions on the cluster)
        with that secret's ARN; the Data API reads the secret as the caller, so the role
        needs ``GetSecretValue`` on it and no more (``grant_data_api_access`` would add
        ``DescribeSecret``).
        """
        if database.data_api:
            self.role.add_to_policy(
                iam.PolicyStatement(
                    sid="DatabaseDataApi",
                    actions=DATA_API_ACTIONS,
                    resources=[database.cluster.cluster_arn],
                )
            )
            self.role.add_to_policy(
                iam.PolicyStatement(
                    sid="DatabaseSecret",
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[database.secret.secret_arn],
                )
            )
        else:
            database.secret.grant_read(self.role)

    def grant_models(self, models: Sequence[str]) -> None:
        """Allow exactly the model calls ``models`` (``provider:model`` strings) need.

        A SageMaker endpoint named in the inputs' ``endpoint_arns`` is one this stack
        creates; other endpoint names are existing endpoints in this account and region.
        """
        stack = Stack.of(self)
        endpoint_arns, openai_secret = self.inputs.endpoint_arns, self.inputs.openai_secret
        bedrock: list[str] = []
        sagemaker: list[str] = []
        for model in models:
            provider, name = parse_model_string(model)
            if provider == "bedrock":
                bedrock.extend(bedrock_model_arns(stack, name))
            elif provider == "sagemaker":
                arn = endpoint_arns.get(name) or sagemaker_endpoint_arn(stack, name)
                sagemaker.append(arn)
            elif provider == "openai" and openai_secret is not None:
                openai_secret.grant_read(self.role)
        if bedrock:
            self.role.add_to_policy(
                iam.PolicyStatement(
                    sid="InvokeBedrockModels",
                    actions=["bedrock:InvokeModel"],
                    resources=sorted(set(bedrock)),
                )
            )
            for arn in sorted({arn for arn in bedrock if ":bedrock:*:" in arn}):
                acknowledge(
                    self.role,
                    f"AwsSolutions-IAM5[Resource::{stack.resolve(arn)}]",
                    "A cross-region inference profile may route to this one foundation model "
                    "in any region of its geography; the profile itself is named exactly.",
                )
        if sagemaker:
            self.role.add_to_policy(
                iam.PolicyStatement(
                    sid="InvokeSageMakerEndpoints",
                    actions=["sagemaker:InvokeEndpoint"],
                    resources=list(dict.fromkeys(sagemaker)),
                )
            )

    def grant_bedrock_rerank(self) -> None:
        """Allow the Bedrock Rerank API. The action has no resource type, so it is granted
        on "*"; the model it runs needs bedrock:InvokeModel on its ARN besides, which
        :meth:`grant_models` gives (AWS: "Permissions for reranking in Amazon Bedrock")."""
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="RerankWithBedrock", actions=["bedrock:Rerank"], resources=["*"]
            )
        )
        self._acknowledge_wildcard()


def bedrock_model_arns(stack: Stack, model_id: str) -> list[str]:
    """The ARNs ``bedrock:InvokeModel`` needs for a model id or inference profile id.

    A cross-region inference profile (``us.anthropic...``) routes to the foundation
    model in any region of its geography, so that model is granted in every region.
    """
    if model_id.startswith(INFERENCE_PROFILE_PREFIXES):
        foundation = model_id.split(".", 1)[1]
        return [
            stack.format_arn(
                service="bedrock", resource="inference-profile", resource_name=model_id
            ),
            f"arn:{stack.partition}:bedrock:*::foundation-model/{foundation}",
        ]
    return [f"arn:{stack.partition}:bedrock:{stack.region}::foundation-model/{model_id}"]


def sagemaker_endpoint_arn(stack: Stack, endpoint_name: str) -> str:
    """An endpoint's ARN in this account and region (SageMaker lower-cases the name)."""
    return stack.format_arn(
        service="sagemaker", resource="endpoint", resource_name=endpoint_name.lower()
    )
