"""One ``ragline dev`` subprocess for the module, and clients for the endpoints it announces.

Data directories (each holding an embedded PostgreSQL) live outside pytest's temporary
directories: pytest prunes old ones when another run starts, even under a running server.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.e2e.support import DevProcess


def _scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ragline-e2e-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A fresh directory for one test, removed afterwards (servers in it stopped first)."""
    yield from _scratch()


@pytest.fixture(scope="module")
def module_scratch() -> Iterator[Path]:
    """A fresh directory for the module's stack."""
    yield from _scratch()


@pytest.fixture(scope="module")
def dev_stack(module_scratch: Path) -> Iterator[DevProcess]:
    """``ragline dev`` on free ports with a fresh data dir; SIGTERM at the end."""
    stack = DevProcess.start(
        module_scratch / "data",
        # Short redelivery, so a failing message reaches the DLQ in seconds.
        "--visibility-timeout",
        "2",
    )
    try:
        stack.wait_for_endpoints()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def endpoints(dev_stack: DevProcess) -> dict[str, str]:
    """endpoints.json as the stack wrote it."""
    return dev_stack.wait_for_endpoints()


def _client(service: str, endpoint_url: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def s3(endpoints: dict[str, str]) -> Any:
    """A plain boto3 S3 client pointed at the endpoint in endpoints.json."""
    return _client("s3", endpoints["s3"])


@pytest.fixture(scope="module")
def sqs(endpoints: dict[str, str]) -> Any:
    """A plain boto3 SQS client on the same endpoint."""
    return _client("sqs", endpoints["s3"])
