"""Fixtures shared by the integration tests of the S3-facing functions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws
from ragline.config import Settings

from tests.support.data_api import DRIVERS, driver_environment, driver_settings
from tests.support.databases import create_database
from tests.support.s3 import BUCKET


@pytest.fixture
def s3() -> Iterator[Any]:
    """An S3 client on moto, with the documents bucket created."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module marked ``both_drivers`` runs each test that reaches the database through
    ``driver`` twice: through psycopg, then through the Data API driver."""
    if "driver" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_drivers"):
        metafunc.parametrize("driver", DRIVERS, indirect=True, scope="module")


@pytest.fixture(scope="module")
def driver(request: pytest.FixtureRequest) -> str:
    """The store's driver under the handlers: psycopg, or each of ``DRIVERS`` in turn in a
    module marked ``both_drivers``."""
    return str(getattr(request, "param", "psycopg"))


@pytest.fixture(scope="module")
def database_url(postgres_server: str, driver: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database for this test module, one per driver it runs through."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    return create_database(postgres_server, module if driver == "psycopg" else f"{module}_{driver}")


@pytest.fixture
def database_environment(database_url: str, driver: str) -> Iterator[dict[str, str]]:
    """The environment that points a handler at this module's database through ``driver``.

    With the Data API, the adapter answers the rds-data calls of the clients made during
    the test. It hooks into boto3's default session, and moto's ``mock_aws`` swaps in a
    session of its own: a test with moto S3 requests ``s3`` before this fixture.
    """
    with driver_settings(database_url, driver) as settings:
        yield driver_environment(settings)


@pytest.fixture
def ingest(
    s3: Any, database_environment: dict[str, str], cold_start: Callable[..., ModuleType]
) -> ModuleType:
    """The ingest Lambda's module, cold-started against this module's database."""
    return cold_start("ingest", **database_environment, RAGLINE_EMBEDDINGS="hash")


@pytest.fixture(scope="module", params=DRIVERS)
def store_settings(postgres_server: str, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """Settings of a store on a fresh database, through each driver in turn: psycopg, and
    the Data API driver answered by the embedded server (tests/support/data_api.py)."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    url = create_database(postgres_server, f"{module}_{request.param}")
    with driver_settings(url, request.param) as settings:
        yield settings


@pytest.fixture
def emf_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """EMF output on, for tests that read the metrics (POWERTOOLS_DEV switches it off)."""
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
