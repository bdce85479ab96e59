"""The endpoint meter: a scheduled function counting the GPU endpoint's instances.

SageMaker bills the endpoint's instances by the hour, used or not, and publishes no metric
counting them; the meter reads ``DescribeEndpoint`` every `endpoint_meter_minutes` and
publishes the count and its cost over those minutes (``ragline.metering``), which the
daily cost alarm adds to the models' spend. It exists only with the endpoint.

It may describe that one endpoint and write its own logs, nothing else. It runs outside
the VPC (it needs no database and nothing inside), except with ``network=isolated``,
whose promise is functions without egress: there it runs in the VPC and reaches
SageMaker's API through the `sagemaker-api` interface endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.functions import RaglineFunction

if TYPE_CHECKING:
    from stacks.inputs import ConstructInputs
    from stacks.model_endpoint import ModelEndpoint

# One DescribeEndpoint call: seconds, even on a cold start.
METER_TIMEOUT = Duration.seconds(30)
# The handler imports Powertools, pydantic and boto3 (about 66 MB resident), no store.
METER_MEMORY_MB = 128


class EndpointMeter(Construct):
    """The meter function and its schedule."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        inputs: ConstructInputs,
        endpoint: ModelEndpoint,
    ) -> None:
        super().__init__(scope, construct_id)
        settings = inputs.settings
        self.meter = RaglineFunction(
            self,
            "Meter",
            inputs=replace(inputs, environment=meter_environment(inputs.environment)),
            name="meter",
            description="ragline: count the GPU endpoint's instances and price them (scheduled)",
            timeout=METER_TIMEOUT,
            memory_size=METER_MEMORY_MB,
            in_vpc=settings.network == "isolated",
        )
        self.meter.role.add_to_policy(
            iam.PolicyStatement(
                sid="DescribeTheEndpoint",
                actions=["sagemaker:DescribeEndpoint"],
                resources=[endpoint.endpoint_arn],
            )
        )
        minutes = settings.endpoint_meter_minutes
        self.schedule = events.Rule(
            self,
            "Schedule",
            description="ragline: count the GPU endpoint's instances for the daily cost alarm",
            schedule=events.Schedule.rate(Duration.minutes(minutes)),
            targets=[
                targets.LambdaFunction(
                    self.meter.function,
                    # Each reading prices exactly the minutes between two readings.
                    event=events.RuleTargetInput.from_object(
                        {
                            "endpoint": endpoint.endpoint_name,
                            "instance_type": settings.sagemaker_instance_type,
                            "period_seconds": minutes * 60,
                        }
                    ),
                )
            ],
        )
        # No reading before the endpoint exists: creating one takes many minutes, and
        # DescribeEndpoint would fail every time until then.
        self.schedule.node.add_dependency(endpoint.endpoint)


def meter_environment(environment: Mapping[str, str]) -> dict[str, str]:
    """The meter's variables: where its metrics go, its logs and tracing; the rest of
    the functions' environment (models, database) is nothing it uses."""
    return {
        key: value
        for key, value in environment.items()
        if key.startswith("POWERTOOLS_") or key == "RAGLINE_TRACING"
    }
