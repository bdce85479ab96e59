"""What the key authorizer costs a request, through psycopg and the Data API driver.

Loads ``functions/authorizer/handler.py`` as Lambda would (a fresh module, its settings
from the environment) over a database holding ``--keys`` keys of ten tenants, then feeds
it API Gateway's TOKEN event: the first call (the connection opened, the migrations
checked), then warm calls with a live key and with a revoked one. Prints the median
latency and the database round trips per call: psycopg statements, or Data API calls
(each one an HTTPS request on AWS, whose network and service time the figures leave
out: see bench/data_api_overhead.py). API Gateway caches an answer per key for the
stack's ``authorizer_cache_seconds`` (300 by default), so inside that time a request
makes no authorizer call at all.

    python bench/authorizer.py [--keys 1000] [--repeat 300]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "common" / "python")]

METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123defg/v1/POST/query"


@contextmanager
def counting(driver: str) -> Iterator[list[str]]:
    """Every statement psycopg sends, or every Data API call (whose answer the adapter
    computes with psycopg statements of its own, not counted), made meanwhile."""
    import psycopg

    from tests.support.data_api import DataApiAdapter

    sent: list[str] = []
    execute, answer = psycopg.Cursor.execute, DataApiAdapter._before_call

    def counted_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        if driver == "psycopg":
            sent.append("sql")
        return execute(self, query, *args, **kwargs)

    def counted_call(self: Any, model: Any, params: Any, **kwargs: Any) -> Any:
        sent.append(model.name)
        return answer(self, model, params, **kwargs)

    psycopg.Cursor.execute = counted_execute  # type: ignore[method-assign]
    DataApiAdapter._before_call = counted_call  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        psycopg.Cursor.execute = execute  # type: ignore[method-assign]
        DataApiAdapter._before_call = answer  # type: ignore[method-assign]


def cold_start(environment: dict[str, str]) -> Any:
    """The authorizer's module, imported afresh with this environment."""
    from ragline import config, store, tenancy
    from ragline.providers import clients

    os.environ.update(environment)
    for cached in (config.get_settings, store.get_store, tenancy.get_keys, clients.aws_client):
        cached.cache_clear()
    spec = importlib.util.spec_from_file_location(
        f"authorizer_{len(sys.modules)}", ROOT / "functions" / "authorizer" / "handler.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(server: str, driver: str, keys: int, repeat: int) -> dict[str, tuple[float, float]]:
    """Name -> (median ms, round trips per call)."""
    from ragline.config import Settings
    from ragline.dev.context import LambdaContext
    from ragline.store import Store
    from ragline.tenancy import Keys

    from tests.support.data_api import driver_environment, driver_settings
    from tests.support.databases import create_database

    url = create_database(server, f"bench_authorizer_{driver}")
    owner = Keys(Store(Settings(database_url=url)))
    made = [owner.create(f"tenant-{i % 10}", ["query", "read"]).key for i in range(keys)]
    revoked = owner.create("tenant-0", ["query"])
    owner.revoke(revoked.record.id)
    owner.store.database.close()
    context = LambdaContext(function_name="bench-authorizer")
    figures: dict[str, tuple[float, float]] = {}
    with counting(driver) as sent, driver_settings(url, driver) as settings:
        handler = cold_start(driver_environment(settings))

        def call(key: str) -> dict[str, Any]:
            event = {"type": "TOKEN", "authorizationToken": key, "methodArn": METHOD_ARN}
            answer: dict[str, Any] = handler.lambda_handler(event, context)
            return answer

        started = time.perf_counter()
        assert call(made[0])["policyDocument"]["Statement"][0]["Effect"] == "Allow"
        figures["first call (connect, migrations)"] = (
            (time.perf_counter() - started) * 1000, float(len(sent)),
        )  # fmt: skip
        for name, key, effect in (
            ("warm, live key", None, "Allow"),
            ("warm, revoked key", revoked.key, "Deny"),
        ):
            times = []
            sent.clear()
            for i in range(repeat):
                started = time.perf_counter()
                answer = call(key or made[i % len(made)])
                times.append((time.perf_counter() - started) * 1000)
                assert answer["policyDocument"]["Statement"][0]["Effect"] == effect
            figures[name] = (statistics.median(times), len(sent) / repeat)
        handler.keys.store.database.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="ragline-bench-authorizer-"))
    os.environ.update(
        RAGLINE_DATA_DIR=str(data_dir),
        POWERTOOLS_METRICS_DISABLED="true",
        POWERTOOLS_LOG_LEVEL="WARNING",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # never sent: the adapter answers every call
        AWS_DEFAULT_REGION="us-east-1",
    )
    from ragline.config import Settings
    from ragline.store.database import embedded_url

    server = embedded_url(Settings.from_env())
    results = {d: measure(server, d, args.keys, args.repeat) for d in ("psycopg", "data-api")}
    print(f"{args.keys} keys of 10 tenants; medians of {args.repeat} calls")
    print(f"{'':34} {'psycopg ms':>10} {'trips':>6} {'data-api ms':>11} {'trips':>6}")
    for name, (ms, trips) in results["psycopg"].items():
        api_ms, api_trips = results["data-api"][name]
        print(f"{name:34} {ms:10.2f} {trips:6.1f} {api_ms:11.2f} {api_trips:6.1f}")
    shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
