"""The VPC in one of two modes.

- ``nat``: public subnets with one NAT gateway (by default) so the functions in the
  private subnets reach hosted model APIs such as OpenAI's.
- ``isolated``: no internet gateway and no NAT; the functions reach AWS through VPC
  interface endpoints (Secrets Manager, SQS, SageMaker and Bedrock runtimes, CloudWatch
  Logs and metrics; SageMaker's API for the endpoint meter when the stack deploys a GPU
  endpoint), and S3 through the free gateway endpoint.

The database always sits in isolated subnets of its own. With
``database_access=data-api`` the functions run outside the VPC and reach the database
through the RDS Data API, so the VPC holds those subnets alone: no NAT gateway, no
endpoints, no subnets or security group for functions (``network=isolated``, whose
promise is functions without egress, is refused with it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

if TYPE_CHECKING:
    from stacks.settings import DeploymentSettings

INTERFACE_ENDPOINTS = {
    "secretsmanager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "sqs": ec2.InterfaceVpcEndpointAwsService.SQS,
    "sagemaker-runtime": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_RUNTIME,
    "sagemaker-api": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_API,
    "bedrock-runtime": ec2.InterfaceVpcEndpointAwsService.BEDROCK_RUNTIME,
    "bedrock-agent-runtime": ec2.InterfaceVpcEndpointAwsService.BEDROCK_AGENT_RUNTIME,
    "logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "monitoring": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
}
APP_SUBNETS = "app"
DATA_SUBNETS = "data"


class Network(Construct):
    """VPC, subnets, egress (NAT or endpoints), flow logs and the functions' security group."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: DeploymentSettings):
        super().__init__(scope, construct_id)
        nat = settings.network == "nat" and not settings.data_api
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(settings.vpc_cidr),
            max_azs=settings.max_azs,
            nat_gateways=settings.nat_gateways if nat else 0,
            subnet_configuration=_subnets(settings, nat=nat),
            # Restricting the default security group needs a custom resource Lambda;
            # nothing here uses the default group.
            restrict_default_security_group=False,
        )
        flow_logs = logs.LogGroup(
            self,
            "FlowLogs",
            retention=settings.log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.vpc.add_flow_log(
            "FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs)
        )
        self.data_subnets = ec2.SubnetSelection(subnet_group_name=DATA_SUBNETS)
        self.endpoints: dict[str, ec2.InterfaceVpcEndpoint] = {}
        # Set only when the functions run in the VPC (database_access=vpc).
        self.lambda_security_group: ec2.SecurityGroup | None = None
        self.app_subnets: ec2.SubnetSelection | None = None
        if not settings.data_api:
            self._functions_access(settings, nat=nat)

    def _functions_access(self, settings: DeploymentSettings, *, nat: bool) -> None:
        """The functions' security group and subnets, and their way to S3 and AWS."""
        self.lambda_security_group = ec2.SecurityGroup(
            self,
            "FunctionsSecurityGroup",
            vpc=self.vpc,
            description="ragline functions: HTTPS out to AWS APIs and model APIs",
            allow_all_outbound=False,
        )
        # HTTPS to anywhere: in `isolated` mode the subnets have no route out, so this
        # reaches only the VPC endpoints; in `nat` mode it reaches hosted model APIs.
        self.lambda_security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS and model APIs"
        )
        self.app_subnets = ec2.SubnetSelection(subnet_group_name=APP_SUBNETS)

        # S3 through the gateway endpoint in both modes: free, and it keeps document
        # downloads off the NAT gateway's per-GB charge.
        self.vpc.add_gateway_endpoint(
            "S3", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[self.app_subnets]
        )
        if not nat:
            self._interface_endpoints(settings, self.lambda_security_group)

    def _interface_endpoints(
        self, settings: DeploymentSettings, functions: ec2.SecurityGroup
    ) -> None:
        """The AWS services' interface endpoints, usable by the functions only."""
        # One AZ by default: each endpoint costs per hour per AZ, and functions in
        # the other AZ reach it across the VPC.
        endpoint_azs = self.vpc.availability_zones[: settings.vpc_endpoint_azs]
        for name in settings.interface_endpoints:
            self.endpoints[name] = self.vpc.add_interface_endpoint(
                _construct_id(name),
                service=INTERFACE_ENDPOINTS[name],
                subnets=ec2.SubnetSelection(
                    subnet_group_name=APP_SUBNETS, availability_zones=endpoint_azs
                ),
                private_dns_enabled=True,
                open=False,
            )
            # Only the functions may use the endpoints.
            self.endpoints[name].connections.allow_default_port_from(
                functions, "HTTPS from the ragline functions"
            )


def _subnets(settings: DeploymentSettings, *, nat: bool) -> list[ec2.SubnetConfiguration]:
    """The subnet groups: the database's, the functions' and (``nat``) the public ones."""
    app_type = ec2.SubnetType.PRIVATE_WITH_EGRESS if nat else ec2.SubnetType.PRIVATE_ISOLATED
    subnets = [
        ec2.SubnetConfiguration(
            name=DATA_SUBNETS, subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
        ),
    ]
    if settings.network == "nat":
        # The data-api mode reserves the address space of the public and application
        # subnets it does not create, so the database's subnets keep the addresses
        # they have in the nat mode: a stack moving between the two (the default
        # `auto` moved from `vpc`) keeps its subnets, and Aurora stays where it is.
        # A reserved subnet creates nothing; its type only has to ask for no gateway.
        reserved = settings.data_api
        subnets[:0] = [
            ec2.SubnetConfiguration(
                name="public",
                subnet_type=ec2.SubnetType.PRIVATE_ISOLATED if reserved else ec2.SubnetType.PUBLIC,
                cidr_mask=24,
                reserved=reserved,
            ),
            ec2.SubnetConfiguration(
                name=APP_SUBNETS, subnet_type=app_type, cidr_mask=22, reserved=reserved
            ),
        ]
    else:
        subnets.insert(
            0, ec2.SubnetConfiguration(name=APP_SUBNETS, subnet_type=app_type, cidr_mask=22)
        )
    return subnets


def _construct_id(service: str) -> str:
    return "".join(part.capitalize() for part in service.split("-")) + "Endpoint"
