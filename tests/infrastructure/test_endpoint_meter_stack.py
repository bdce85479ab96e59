"""The endpoint meter: with a GPU endpoint only, on its schedule, allowed to describe that
endpoint alone, and read by the daily cost alarm and the dashboard."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.infrastructure.synthesis import Synthesized

METER = "EndpointMeter/Meter"
SERVICE_DIMENSION = [{"Name": "service", "Value": "ragline"}]
# What any function's role holds besides its own grants: its log group, and with
# tracing X-Ray, in the VPC its network interfaces.
COMMON_ACTIONS = {
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
}


def _meter(synthesis: Synthesized) -> dict[str, Any]:
    properties: dict[str, Any] = synthesis.resources[synthesis.logical_id(f"{METER}/Function")][
        "Properties"
    ]
    return properties


def _schedule(synthesis: Synthesized) -> dict[str, Any]:
    rule: dict[str, Any] = synthesis.resources[synthesis.logical_id("EndpointMeter/Schedule")]
    return rule


def _daily_cost(synthesis: Synthesized) -> dict[str, Any]:
    alarm: dict[str, Any] = synthesis.resources[synthesis.logical_id("Monitoring/DailyCost")][
        "Properties"
    ]
    return alarm


@pytest.mark.parametrize("configuration", ["nat", "isolated", "openai", "data-api"])
def test_no_meter_and_no_endpoint_cost_without_an_endpoint(
    configuration: str, synthesized: Callable[[str], Synthesized]
) -> None:
    # GIVEN a configuration without a GPU endpoint WHEN synthesized
    synthesis = synthesized(configuration)
    # THEN no meter function, no schedule for it, and no SageMaker API endpoint
    assert synthesis.stack.node.try_find_child("EndpointMeter") is None
    descriptions = [
        f["Properties"].get("Description", "")
        for f in synthesis.of_type("AWS::Lambda::Function").values()
    ]
    assert not [d for d in descriptions if "GPU endpoint" in d]
    assert not [
        e
        for e in synthesis.of_type("AWS::EC2::VPCEndpoint").values()
        if "sagemaker.api" in json.dumps(e["Properties"]["ServiceName"])
    ]
    # AND the daily cost alarm sums the models' spend alone (no third alarm metric billed)
    assert "EndpointCostUSD" not in json.dumps(_daily_cost(synthesis))


@pytest.mark.parametrize(("configuration", "minutes"), [("endpoint", 5), ("scale_to_zero", 10)])
def test_the_meter_reads_the_endpoint_on_its_schedule(
    configuration: str, minutes: int, synthesized: Callable[[str], Synthesized]
) -> None:
    # GIVEN a GPU endpoint (always on, or scaling to zero) WHEN synthesized
    synthesis = synthesized(configuration)
    rule = _schedule(synthesis)
    # THEN the meter runs every endpoint_meter_minutes (5 unless set)
    assert rule["Properties"]["ScheduleExpression"] == f"rate({minutes} minutes)"
    assert rule["Properties"]["State"] == "ENABLED"
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [synthesis.logical_id(f"{METER}/Function"), "Arn"]}
    # AND tells it which endpoint, priced as which instance type, over how many seconds
    assert json.loads(target["Input"]) == {
        "endpoint": "ragline-llm",
        "instance_type": "ml.g5.xlarge",
        "period_seconds": minutes * 60,
    }
    # AND starts once the endpoint exists
    assert synthesis.logical_id("ModelEndpoint/Endpoint") in rule["DependsOn"]
    # AND EventBridge may invoke the function
    synthesis.template.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "Principal": "events.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": [synthesis.logical_id("EndpointMeter/Schedule"), "Arn"]},
        },
    )


@pytest.mark.parametrize("configuration", ["endpoint", "scale_to_zero"])
def test_the_meter_may_describe_that_endpoint_and_nothing_else(
    configuration: str, synthesized: Callable[[str], Synthesized]
) -> None:
    # GIVEN the meter's role WHEN synthesized
    synthesis = synthesized(configuration)
    role = {"Ref": synthesis.logical_id(f"{METER}/Role")}
    statements = [
        statement
        for policy in synthesis.of_type("AWS::IAM::Policy").values()
        if role in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    own = [
        s
        for s in statements
        if not set([s["Action"]] if isinstance(s["Action"], str) else s["Action"]) <= COMMON_ACTIONS
    ]
    # THEN beyond its logs (and tracing, network interfaces) it may describe the endpoint,
    # named by its ARN, and nothing else: no model, no database, no bucket
    assert own == [
        {
            "Action": "sagemaker:DescribeEndpoint",
            "Effect": "Allow",
            "Resource": {"Ref": synthesis.logical_id("ModelEndpoint/Endpoint")},
            "Sid": "DescribeTheEndpoint",
        }
    ]
    # AND its log statement names its own log group
    (logs,) = [s for s in statements if s.get("Sid") == "WriteOwnLogs"]
    assert logs["Resource"] == {"Fn::GetAtt": [synthesis.logical_id(f"{METER}/Logs"), "Arn"]}


def test_the_meter_runs_outside_the_vpc_unless_the_network_is_isolated(
    scale_to_zero: Synthesized, endpoint: Synthesized
) -> None:
    # GIVEN network=nat with the functions in the VPC (scale_to_zero) THEN the meter is
    # outside the VPC: it needs nothing inside, and no NAT traffic
    query = scale_to_zero.resources[scale_to_zero.logical_id("Query/Function")]
    assert "VpcConfig" in query["Properties"]
    meter = _meter(scale_to_zero)
    assert "VpcConfig" not in meter
    # AND small, with only the variables it reads
    assert meter["MemorySize"] == 128
    assert set(meter["Environment"]["Variables"]) == {
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
        "POWERTOOLS_LOG_LEVEL",
        "RAGLINE_TRACING",
    }
    # GIVEN network=isolated (endpoint) THEN it stays in the VPC, without egress, and
    # reaches SageMaker's API through its interface endpoint, open to the functions only
    assert "VpcConfig" in _meter(endpoint)
    (api,) = [
        e["Properties"]
        for e in endpoint.of_type("AWS::EC2::VPCEndpoint").values()
        if "sagemaker.api" in json.dumps(e["Properties"]["ServiceName"])
    ]
    assert api["VpcEndpointType"] == "Interface" and api["PrivateDnsEnabled"] is True
    assert len(api["SubnetIds"]) == 1  # one AZ, like the other endpoints


@pytest.mark.parametrize("configuration", ["endpoint", "scale_to_zero"])
def test_the_daily_cost_alarm_adds_the_endpoint_instance_hours(
    configuration: str, synthesized: Callable[[str], Synthesized]
) -> None:
    # GIVEN a GPU endpoint WHEN synthesized
    alarm = _daily_cost(synthesized(configuration))
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    # THEN the alarm adds the meter's cost to the models' spend
    assert metrics["expr_1"]["Expression"] == (
        "FILL(queries, 0) + FILL(ingestion, 0) + FILL(endpoint, 0)"
    )
    stat = metrics["endpoint"]["MetricStat"]
    assert stat["Metric"]["MetricName"] == "EndpointCostUSD"
    assert stat["Metric"]["Namespace"] == "Ragline"
    assert stat["Metric"]["Dimensions"] == SERVICE_DIMENSION
    assert (stat["Period"], stat["Stat"]) == (86400, "Sum")
    # AND its description and label say what is counted
    assert "GPU endpoint's instance-hours" in alarm["AlarmDescription"]
    assert "instance-hours" in metrics["expr_1"]["Label"]


def test_the_dashboard_charts_the_endpoint_instances_and_their_cost(
    scale_to_zero: Synthesized,
) -> None:
    # GIVEN a GPU endpoint and the dashboard WHEN synthesized
    (dashboard,) = scale_to_zero.of_type("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    # THEN a widget charts the meter's instance count and their cost, labelled as such
    assert "SageMaker endpoint instances and their cost" in body
    assert "EndpointInstances" in body and "EndpointCostUSD" in body
    assert "in-service instances (meter)" in body
    # AND the meter's errors are charted with the other functions'
    meter = scale_to_zero.logical_id(f"{METER}/Function")
    assert meter in body
