"""The GPU endpoint meter: its in-service instances, and what they cost, as metrics.

SageMaker bills a real-time endpoint's instances by the hour whether they serve or not,
and publishes no metric counting them, so the daily cost alarm could not see them. A
scheduled function (``functions/meter``) reads the endpoint every period and publishes
the instance count and the cost of the period (instances x the instance type's hourly
price from the price table x the period), whose 24-hour sum the alarm adds to the
models' spend.

A reading is a sample: an instance that comes and goes between two readings is missed,
one that has just left is counted for the period. SageMaker's own bill is the truth; this
is a signal early enough to act on.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ragline.providers.clients import aws_client
from ragline.telemetry.metrics import EndpointSignals, MetricsEmitter
from ragline.telemetry.pricing import PriceTable, get_price_table

if TYPE_CHECKING:
    from ragline.config import Settings

logger = logging.getLogger(__name__)
# DescribeEndpoint answers in well under a second; a control-plane call that hangs
# should not hold the function until its timeout.
DESCRIBE_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class EndpointReading:
    """What one reading found and published."""

    endpoint: str
    instance_type: str
    instances: int
    period_seconds: int
    cost_usd: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EndpointMeter:
    """Reads an endpoint's instance count and publishes it with its cost."""

    def __init__(self, sagemaker: Any, prices: PriceTable, metrics: MetricsEmitter) -> None:
        self.sagemaker = sagemaker
        self.prices = prices
        self.metrics = metrics

    @classmethod
    def from_settings(cls, settings: Settings) -> EndpointMeter:
        return cls(
            aws_client("sagemaker", DESCRIBE_TIMEOUT_SECONDS),
            get_price_table(settings.prices_file),
            MetricsEmitter.from_settings(settings),
        )

    def instances(self, endpoint: str) -> int:
        """The endpoint's instances now, over its production variants.

        ``CurrentInstanceCount`` is what is billed; under managed instance scaling
        (inference components that scale to zero) it is the live count, 0 when scaled
        in, and SageMaker may leave it out then, as for a serverless variant.
        """
        description = self.sagemaker.describe_endpoint(EndpointName=endpoint)
        return sum(
            int(variant.get("CurrentInstanceCount") or 0)
            for variant in description.get("ProductionVariants", [])
        )

    def read(self, endpoint: str, instance_type: str, period_seconds: int) -> EndpointReading:
        """Count the instances, price them over the period, publish both."""
        instances = self.instances(endpoint)
        # An unknown type is priced None (with a warning naming it), never 0: the count
        # is still published, the cost is absent.
        cost = self.prices.instance_cost(instance_type, instances * period_seconds)
        self.metrics.endpoint(EndpointSignals(instances=instances, cost_usd=cost.usd))
        return EndpointReading(endpoint, instance_type, instances, period_seconds, cost.usd)


@lru_cache(maxsize=1)
def get_endpoint_meter(settings: Settings) -> EndpointMeter:
    """The process's meter (one SageMaker client, one price table)."""
    return EndpointMeter.from_settings(settings)
