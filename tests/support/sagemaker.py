"""moto's SageMaker runtime as a model endpoint: queue its replies, read what it was sent.

moto answers ``invoke_endpoint`` from a queue filled through its own API, and keeps each
distinct request (headers and body) it answered, which is how tests see the payload.
Use inside ``moto.mock_aws()``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import requests

ENDPOINT_RESULTS = "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results"
REGION = "us-east-1"


def queue_endpoint_results(*bodies: Any, region: str = REGION) -> None:
    """Queue JSON bodies the endpoint returns to the next distinct requests, in order."""
    results = [
        {
            "Body": body if isinstance(body, str) else json.dumps(body),
            "ContentType": "application/json",
            "InvokedProductionVariant": "AllTraffic",
            "CustomAttributes": "",
        }
        for body in bodies
    ]
    response = requests.post(ENDPOINT_RESULTS, json={"results": results, "region": region})
    response.raise_for_status()


def endpoint_payloads(region: str = REGION) -> list[Any]:
    """The JSON bodies invoke_endpoint received, first to last (distinct ones only)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sagemakerruntime.models import sagemakerruntime_backends

    backend = sagemakerruntime_backends[DEFAULT_ACCOUNT_ID][region]
    payloads = []
    for per_endpoint in backend.results.values():
        for key in per_endpoint:
            payloads.append(json.loads(json.loads(base64.b64decode(key))["Body"]))
    return payloads
