"""The endpoint meter: the GPU endpoint's in-service instances and their cost as EMF.

SageMaker's DescribeEndpoint is answered by botocore's Stubber, which checks the request
and the answer against the service model (moto knows no ml.g5 instance type).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from botocore.stub import Stubber
from pydantic import ValidationError

from tests.support.emf import check_emf, dimension_sets, emf_documents, metric_units, value

ENDPOINT = "ragline-llm"
PRICED = "ml.g5.xlarge"  # USD 1.408 an hour in the packaged price table
UNPRICED = "ml.p5.48xlarge"  # not in the packaged table
FIVE_MINUTES = 300
Reading = Callable[..., tuple[dict[str, Any], dict[str, Any]]]

# These tests read the EMF documents the meter prints.
pytestmark = pytest.mark.usefixtures("emf_on")


def described(*variants: dict[str, Any]) -> dict[str, Any]:
    """A DescribeEndpoint answer with these production variants."""
    now = datetime(2026, 11, 29, tzinfo=UTC)
    return {
        "EndpointName": ENDPOINT,
        "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}",
        "EndpointConfigName": "config",
        "EndpointStatus": "InService",
        "CreationTime": now,
        "LastModifiedTime": now,
        "ProductionVariants": list(variants),
    }


@pytest.fixture
def reading(
    cold_start: Callable[..., ModuleType],
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Reading]:
    """``reading(instance_type, answer, **environment)``: cold-start the meter, let
    DescribeEndpoint return ``answer``, run one scheduled reading; return the handler's
    answer and the one EMF document it printed."""
    stubbers: list[Stubber] = []

    def run(
        instance_type: str, answer: dict[str, Any], **environment: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        meter = cold_start("meter", **environment)
        stubber = Stubber(meter.meter.sagemaker)
        stubber.add_response("describe_endpoint", answer, {"EndpointName": ENDPOINT})
        stubber.activate()
        stubbers.append(stubber)
        capsys.readouterr()
        result = meter.lambda_handler(
            {"endpoint": ENDPOINT, "instance_type": instance_type, "period_seconds": FIVE_MINUTES},
            lambda_context,
        )
        stubber.assert_no_pending_responses()
        (emf,) = emf_documents(capsys.readouterr().out)
        check_emf(emf)
        return result, emf

    yield run
    for stubber in stubbers:
        stubber.deactivate()


def test_two_instances_over_five_minutes_cost_their_share_of_the_hourly_price(
    reading: Reading,
) -> None:
    # GIVEN the endpoint on two ml.g5.xlarge
    answer = described({"VariantName": "AllTraffic", "CurrentInstanceCount": 2})
    # WHEN the meter reads it for a five-minute period
    result, emf = reading(PRICED, answer)
    # THEN it publishes two instances and 2 x $1.408/hour x 5 minutes
    assert value(emf, "EndpointInstances") == 2
    assert value(emf, "EndpointCostUSD") == pytest.approx(2 * 1.408 * 300 / 3600)
    assert value(emf, "EndpointCostUSD") == pytest.approx(0.234667, abs=1e-6)
    assert metric_units(emf) == {"EndpointInstances": "Count", "EndpointCostUSD": "None"}
    # AND on the {service} dimension set alone, which the daily cost alarm reads
    assert dimension_sets(emf) == [["service"]] and emf["service"] == "ragline"
    assert result == {
        "endpoint": ENDPOINT,
        "instance_type": PRICED,
        "instances": 2,
        "period_seconds": FIVE_MINUTES,
        "cost_usd": pytest.approx(0.234667, abs=1e-6),
    }


@pytest.mark.parametrize(
    "variant",
    [
        {"VariantName": "AllTraffic", "CurrentInstanceCount": 0, "DesiredInstanceCount": 0},
        # managed instance scaling may leave the count out when no instance is left
        {"VariantName": "AllTraffic", "ManagedInstanceScaling": {"MinInstanceCount": 0}},
    ],
    ids=["count-0", "no-count"],
)
def test_an_endpoint_scaled_in_to_zero_instances_costs_nothing(
    reading: Reading, variant: dict[str, Any]
) -> None:
    # GIVEN the endpoint scaled in to no instance at all
    # WHEN the meter reads it
    _, emf = reading(PRICED, described(variant))
    # THEN zero instances cost zero (a number, so the alarm's sum sees an idle day)
    assert value(emf, "EndpointInstances") == 0
    assert value(emf, "EndpointCostUSD") == 0


def test_the_instances_of_every_variant_are_counted(reading: Reading) -> None:
    # GIVEN an endpoint whose two variants run 1 and 3 instances
    answer = described(
        {"VariantName": "AllTraffic", "CurrentInstanceCount": 1},
        {"VariantName": "Canary", "CurrentInstanceCount": 3},
    )
    # WHEN the meter reads it THEN all four are counted and priced
    _, emf = reading(PRICED, answer)
    assert value(emf, "EndpointInstances") == 4
    assert value(emf, "EndpointCostUSD") == pytest.approx(4 * 1.408 * 300 / 3600)


def test_an_unpriced_instance_type_publishes_the_count_and_warns(
    reading: Reading, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN the endpoint on an instance type the price table does not list
    answer = described({"VariantName": "AllTraffic", "CurrentInstanceCount": 1})
    # WHEN the meter reads it
    with caplog.at_level(logging.WARNING, logger="ragline.telemetry.pricing"):
        result, emf = reading(UNPRICED, answer)
    # THEN the instance is counted and its cost is absent, never a silent 0
    assert value(emf, "EndpointInstances") == 1
    assert "EndpointCostUSD" not in metric_units(emf)
    assert result["cost_usd"] is None
    # AND a warning names the type and how to price it
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert UNPRICED in warning and "RAGLINE_PRICES_FILE" in warning


def test_a_price_file_prices_an_instance_type_the_table_lacks(
    reading: Reading, tmp_path: Path
) -> None:
    # GIVEN the unlisted type priced in a deployer's price file
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"sagemaker_instances": {UNPRICED: 98.32}}))
    answer = described({"VariantName": "AllTraffic", "CurrentInstanceCount": 1})
    # WHEN the meter reads it with that file
    _, emf = reading(UNPRICED, answer, RAGLINE_PRICES_FILE=str(prices))
    # THEN it is priced from the file
    assert value(emf, "EndpointCostUSD") == pytest.approx(98.32 * 300 / 3600)


def test_an_event_without_its_period_is_refused(
    cold_start: Callable[..., ModuleType], lambda_context: Any
) -> None:
    # GIVEN the meter WHEN an event does not say the period a reading covers
    meter = cold_start("meter")
    # THEN it is refused rather than priced over a guessed period
    with pytest.raises(ValidationError):
        meter.lambda_handler({"endpoint": ENDPOINT, "instance_type": PRICED}, lambda_context)
