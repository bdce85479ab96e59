"""The local stack wired together, with fake functions: S3 -> SQS -> poller, HTTP -> API."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from ragline.dev.aws import client
from ragline.dev.handlers import find_repository_root
from ragline.dev.stack import Endpoints, LocalStack, StackOptions, StackStartError
from ragline.errors import ConfigurationError

logger = Logger(service="ragline-dev-test")
HEALTHY = {"statusCode": 200, "body": '{"status": "ok"}'}


class RecordingFunction:
    """A fake handler behind Powertools' context injection, which needs every context field."""

    def __init__(self, response: Any = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.response = response
        self.handler = logger.inject_lambda_context(self._handle)

    def _handle(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        return self.response

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        return self.handler(event, context)


@pytest.fixture
def restored_environment() -> Iterator[None]:
    """The stack sets process-wide variables (endpoint, data dir); undo them for other tests."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def stack(
    tmp_path: Path, restored_environment: None
) -> Iterator[tuple[LocalStack, RecordingFunction, RecordingFunction]]:
    ingest = RecordingFunction({"batchItemFailures": []})
    query = RecordingFunction(HEALTHY)
    options = StackOptions(api_port=0, aws_port=0, data_dir=tmp_path / "dev", bucket="docs-test")
    with LocalStack(options, ingest_handler=ingest, query_handler=query) as running:
        yield running, ingest, query


def _with_fakes(options: StackOptions, query_response: Any = HEALTHY) -> LocalStack:
    query = RecordingFunction(query_response)
    return LocalStack(options, ingest_handler=RecordingFunction(), query_handler=query)


def _notified_keys(function: RecordingFunction) -> list[tuple[str, str]]:
    keys = []
    for event in function.events:
        for record in event["Records"]:
            for notification in json.loads(record["body"]).get("Records", []):
                key = notification["s3"]["object"]["key"]
                keys.append((notification["eventName"], urllib.parse.unquote_plus(key)))
    return keys


def _wait_for(predicate: Any, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.05)


def test_endpoints_file_is_written_once_ready(
    stack: tuple[LocalStack, RecordingFunction, RecordingFunction],
) -> None:
    # GIVEN a running stack
    running, _, _ = stack

    # WHEN a client reads endpoints.json
    endpoints = Endpoints.read(running.options.data_dir)

    # THEN it names the API, the S3 endpoint, the bucket and both queues
    assert endpoints == running.endpoints
    assert endpoints.api.startswith("http://127.0.0.1:")
    assert endpoints.s3.startswith("http://127.0.0.1:")
    assert endpoints.bucket == "docs-test"
    assert endpoints.queue.endswith("/ragline-ingest")
    assert endpoints.dlq.endswith("/ragline-ingest-dlq")
    assert os.environ["AWS_ENDPOINT_URL_S3"] == endpoints.s3
    assert os.environ["RAGLINE_DATA_DIR"] == str(running.options.data_dir.resolve())


def test_uploads_and_deletes_reach_the_ingest_function_through_the_queue(
    stack: tuple[LocalStack, RecordingFunction, RecordingFunction],
) -> None:
    # GIVEN a running stack and any S3 client pointed at it
    running, ingest, _ = stack
    s3 = client("s3", running.endpoints.s3)

    # WHEN an object is uploaded and then deleted
    s3.put_object(Bucket="docs-test", Key="guides/hello world.md", Body=b"# Hello\n")
    s3.delete_object(Bucket="docs-test", Key="guides/hello world.md")

    # THEN the ingest function receives both S3 notifications as SQS events
    expected = [
        ("ObjectCreated:Put", "guides/hello world.md"),
        ("ObjectRemoved:Delete", "guides/hello world.md"),
    ]
    _wait_for(lambda: sorted(_notified_keys(ingest)) == expected)
    record = ingest.events[-1]["Records"][0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(":ragline-ingest")


def test_http_requests_reach_the_query_function(
    stack: tuple[LocalStack, RecordingFunction, RecordingFunction],
) -> None:
    # GIVEN a running stack
    running, _, query = stack

    # WHEN a client calls the API
    with urllib.request.urlopen(f"{running.endpoints.api}/health?deep=1", timeout=10) as response:
        body = json.loads(response.read())

    # THEN the query function answered a REST proxy event (after the start-up health check)
    assert body == {"status": "ok"}
    event = query.events[-1]
    assert event["path"] == "/health"
    assert event["queryStringParameters"] == {"deep": "1"}


def test_stopping_removes_endpoints_file_and_frees_the_ports(
    tmp_path: Path, restored_environment: None
) -> None:
    # GIVEN a running stack
    options = StackOptions(api_port=0, aws_port=0, data_dir=tmp_path / "dev")
    running = _with_fakes(options)
    endpoints = running.start()

    # WHEN it stops
    running.stop()

    # THEN endpoints.json is gone and nothing listens any more
    assert not running.endpoints_file.exists()
    for url in (endpoints.api, endpoints.s3):
        host, port = urllib.parse.urlsplit(url).netloc.split(":")
        with socket.socket() as probe:
            assert probe.connect_ex((host, int(port))) != 0


def test_an_unhealthy_api_stops_the_start_with_its_answer(
    tmp_path: Path, restored_environment: None
) -> None:
    # GIVEN a query function whose health check fails
    options = StackOptions(api_port=0, aws_port=0, data_dir=tmp_path / "dev")
    unhealthy = {"statusCode": 503, "body": '{"message": "database unavailable"}'}

    # WHEN the stack starts
    # THEN it fails with the API's answer, and never announces endpoints
    with pytest.raises(StackStartError, match=r"503.*database unavailable"):
        _with_fakes(options, query_response=unhealthy).start()
    assert not (tmp_path / "dev" / "endpoints.json").exists()


def test_a_taken_port_is_a_readable_error(tmp_path: Path, restored_environment: None) -> None:
    # GIVEN a port somebody else holds
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        options = StackOptions(api_port=0, aws_port=port, data_dir=tmp_path / "dev")

        # WHEN the stack is asked to use it
        # THEN it says which option to change, and leaves nothing behind
        with pytest.raises(OSError, match="--aws-port"):
            _with_fakes(options).start()
    assert not (tmp_path / "dev" / "endpoints.json").exists()


def test_repository_root_is_found_from_the_package_and_missing_ones_are_explained(
    tmp_path: Path,
) -> None:
    # GIVEN the editable install and a directory outside any checkout
    # WHEN the repository root is looked for
    root = find_repository_root()

    # THEN it holds the handlers, and outside a checkout the error says what is needed
    assert (root / "functions").is_dir()
    assert (root / "layers" / "common" / "python" / "ragline").is_dir()
    with pytest.raises(ConfigurationError, match="pip install -e"):
        find_repository_root(tmp_path)
