"""Meter Lambda: on a schedule, publish the GPU endpoint's instances and their cost.

The schedule's input names the endpoint, its instance type (which prices it) and the
period between readings, so the cost of one reading covers exactly that period.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field
from ragline.config import get_settings
from ragline.metering import get_endpoint_meter
from ragline.telemetry.tracing import trace_handler

settings = get_settings()
logger = Logger(service=f"{settings.service_name}-meter")
meter = get_endpoint_meter(settings)


class MeterRequest(BaseModel):
    """The event: which endpoint, on which instance type, read every how many seconds."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(min_length=1, max_length=63)
    instance_type: str = Field(pattern=r"^ml\.[a-z0-9]+\.\w+$")
    period_seconds: int = Field(ge=60, le=3600)


@logger.inject_lambda_context
@trace_handler(settings)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = MeterRequest.model_validate(event)
    reading = meter.read(request.endpoint, request.instance_type, request.period_seconds)
    logger.info(
        f"{request.endpoint}: {reading.instances} x {request.instance_type}",
        extra=reading.to_dict(),
    )
    return reading.to_dict()
