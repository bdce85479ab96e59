"""The two network modes: one NAT gateway, or no egress at all and VPC endpoints."""

from __future__ import annotations

from typing import Any

from tests.infrastructure.synthesis import Synthesized

INTERFACE_SERVICES = (
    "secretsmanager",
    "sqs",
    "sagemaker.runtime",
    "bedrock-runtime",
    "logs",
    "monitoring",
)


def _endpoint_services(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    """Service suffix (``secretsmanager``, ``s3``...) -> endpoint properties."""
    services = {}
    for endpoint in synthesized.of_type("AWS::EC2::VPCEndpoint").values():
        name = endpoint["Properties"]["ServiceName"]
        if isinstance(name, dict):  # the S3 gateway: com.amazonaws.<AWS::Region>.s3
            name = "".join(part for part in name["Fn::Join"][1] if isinstance(part, str))
        services[name.split(".", 3)[-1].lstrip(".")] = endpoint["Properties"]
    return services


def test_nat_mode_has_exactly_one_nat_gateway_and_no_interface_endpoints(
    nat: Synthesized,
) -> None:
    # GIVEN the default network mode WHEN synthesized
    # THEN one NAT gateway (cost) and an internet gateway, and only the S3 gateway endpoint
    nat.template.resource_count_is("AWS::EC2::NatGateway", 1)
    nat.template.resource_count_is("AWS::EC2::InternetGateway", 1)
    assert list(_endpoint_services(nat)) == ["s3"]
    nat.template.has_resource_properties("AWS::EC2::VPCEndpoint", {"VpcEndpointType": "Gateway"})


def test_isolated_mode_has_no_route_out_and_every_endpoint(isolated: Synthesized) -> None:
    # GIVEN network=isolated WHEN synthesized
    # THEN no NAT gateway, no internet gateway, no public subnet
    isolated.template.resource_count_is("AWS::EC2::NatGateway", 0)
    isolated.template.resource_count_is("AWS::EC2::InternetGateway", 0)
    isolated.template.resource_count_is("AWS::EC2::EIP", 0)
    for subnet in isolated.of_type("AWS::EC2::Subnet").values():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is False
    # AND interface endpoints with private DNS for every AWS API the functions call
    services = _endpoint_services(isolated)
    assert set(services) == {"s3", *INTERFACE_SERVICES}
    for service in INTERFACE_SERVICES:
        assert services[service]["VpcEndpointType"] == "Interface"
        assert services[service]["PrivateDnsEnabled"] is True
        # one AZ by default: endpoints bill per AZ-hour
        assert len(services[service]["SubnetIds"]) == 1


def test_isolated_endpoints_admit_only_the_functions(isolated: Synthesized) -> None:
    # GIVEN the endpoints' security groups WHEN inspecting their ingress
    functions_group = isolated.logical_id("Network/FunctionsSecurityGroup")
    ingress = [
        rule
        for group in isolated.of_type("AWS::EC2::SecurityGroup").values()
        for rule in group["Properties"].get("SecurityGroupIngress", [])
    ] + [rule["Properties"] for rule in isolated.of_type("AWS::EC2::SecurityGroupIngress").values()]
    # THEN no rule opens anything to a CIDR: every ingress names the functions' group
    assert ingress
    for rule in ingress:
        assert "CidrIp" not in rule
        assert rule["SourceSecurityGroupId"] == {"Fn::GetAtt": [functions_group, "GroupId"]}


def test_vpc_has_flow_logs_and_the_functions_have_no_open_egress(nat: Synthesized) -> None:
    # GIVEN the VPC WHEN synthesized THEN flow logs are on
    nat.template.has_resource_properties("AWS::EC2::FlowLog", {"TrafficType": "ALL"})
    # AND the functions' group allows only HTTPS out, plus PostgreSQL to the database
    group = nat.resources[nat.logical_id("Network/FunctionsSecurityGroup")]
    egress = group["Properties"]["SecurityGroupEgress"]
    assert [(rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) for rule in egress] == [
        ("tcp", 443, 443)
    ]
    nat.template.has_resource_properties(
        "AWS::EC2::SecurityGroupEgress",
        {"FromPort": 5432, "ToPort": 5432, "IpProtocol": "tcp"},
    )


def test_isolated_migrations_wait_for_the_secrets_manager_endpoint(isolated: Synthesized) -> None:
    # GIVEN the isolated mode, where Secrets Manager is reachable only through its endpoint
    (migrations,) = isolated.of_type("Custom::RaglineMigrations").values()
    # THEN the first migration run waits until the endpoint exists
    endpoint = isolated.logical_id("Network/Vpc/SecretsmanagerEndpoint")
    assert endpoint in migrations["DependsOn"]
