"""The streaming runtime loop against a loopback Runtime API: real HTTP, chunked bodies,
the error paths Lambda defines."""

from __future__ import annotations

import base64
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ragline.streaming_runtime import RuntimeApi, serve, split_response

from tests.support.runtime_api import RuntimeApiServer

ROOT = Path(__file__).resolve().parents[2]
PIECE_DELAY = 0.1


@pytest.fixture
def runtime() -> Iterator[RuntimeApiServer]:
    with RuntimeApiServer() as server:
        yield server


def run_loop(handler: Any, server: RuntimeApiServer, invocations: int = 1) -> threading.Thread:
    api = RuntimeApi(server.runtime_api)
    thread = threading.Thread(
        target=serve,
        args=(handler, api),
        kwargs={
            "environment": {"AWS_LAMBDA_FUNCTION_NAME": "ragline-query-stream"},
            "invocations": invocations,
        },
        daemon=True,
    )
    thread.start()
    return thread


def slow_pieces(closed: list[bool]) -> Iterator[bytes]:
    try:
        for number in range(4):
            yield f"event: delta\ndata: {number}\n\n".encode()
            time.sleep(PIECE_DELAY)
    finally:
        closed.append(True)


def test_a_streamed_body_reaches_the_runtime_api_piece_by_piece() -> None:
    # GIVEN a handler whose body writes a piece every 100 ms
    closed: list[bool] = []
    seen: list[Any] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append((event, context.aws_request_id, context.function_name))
        return {
            "statusCode": 200,
            "multiValueHeaders": {"Content-Type": ["text/event-stream"]},
            "body": slow_pieces(closed),
        }

    with RuntimeApiServer() as server:
        request_id = server.invoke({"path": "/query/stream"})
        thread = run_loop(handler, server)
        server.wait()
        thread.join(5)
    response = server.responses[request_id]
    # THEN the handler saw the event and its context
    assert seen == [({"path": "/query/stream"}, request_id, "ragline-query-stream")]
    # AND the response was posted in streaming mode, chunked, as an integration response
    assert response.headers["Lambda-Runtime-Function-Response-Mode"] == "streaming"
    assert response.headers["Content-Type"] == "application/vnd.awslambda.http-integration-response"
    assert response.complete and response.trailers == {}
    # AND the prelude carries the status and headers, the delimiter then the body
    assert response.prelude == {
        "statusCode": 200,
        "multiValueHeaders": {"Content-Type": ["text/event-stream"]},
    }
    assert response.payload.decode().count("event: delta") == 4
    # AND each piece arrived as it was written, not all at the end
    arrivals = [at for at, _ in response.chunks[1:]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert len(arrivals) == 4 and min(gaps) > PIECE_DELAY * 0.7
    # AND the body's iterator was closed
    assert closed == [True]


def test_a_text_body_is_one_piece_after_the_prelude() -> None:
    # GIVEN a buffered response (an error status with a JSON body, as a bad request gets)
    body = json.dumps({"message": "question must not be empty", "statusCode": 400})
    prelude, pieces = split_response(
        {"statusCode": 400, "headers": {"Content-Type": "application/json"}, "body": body}
    )
    # THEN its status and headers lead, and the body is one piece
    assert prelude == {"statusCode": 400, "headers": {"Content-Type": "application/json"}}
    assert list(pieces) == [body.encode()]
    # AND a base64 body is decoded
    _, binary = split_response(
        {"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True}
    )
    assert list(binary) == [b"\x00\x01"]


def test_a_handler_failing_before_its_response_is_an_invocation_error(
    runtime: RuntimeApiServer,
) -> None:
    # GIVEN a handler that raises
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise ValueError("no database")

    runtime.invoke({})
    run_loop(handler, runtime)
    runtime.wait()
    # THEN the error is posted to the invocation's error path, typed
    (error,) = runtime.errors
    assert error.path.startswith("/invocation/") and error.path.endswith("/error")
    assert error.error_type == "Runtime.ValueError"
    assert error.body["errorMessage"] == "no database"
    assert runtime.responses == {}


def test_a_body_failing_mid_stream_ends_with_the_error_trailers(
    runtime: RuntimeApiServer,
) -> None:
    # GIVEN a body that fails after its first piece
    def failing() -> Iterator[bytes]:
        yield b"event: retrieval\ndata: {}\n\n"
        raise RuntimeError("the model went away")

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"statusCode": 200, "body": failing()}

    request_id = runtime.invoke({})
    run_loop(handler, runtime)
    runtime.wait()
    response = runtime.responses[request_id]
    # THEN the first piece went out, then the chunked body ended with the error trailers
    assert response.payload == b"event: retrieval\ndata: {}\n\n"
    assert response.trailers["Lambda-Runtime-Function-Error-Type"] == "Runtime.RuntimeError"
    error = json.loads(base64.b64decode(response.trailers["Lambda-Runtime-Function-Error-Body"]))
    assert error["errorMessage"] == "the model went away"


def test_a_stream_nobody_reads_closes_the_body_and_the_loop_goes_on() -> None:
    # GIVEN a Runtime API that drops the connection after two chunks
    closed: list[bool] = []
    calls: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(1)
        return {"statusCode": 200, "body": slow_pieces(closed)}

    with RuntimeApiServer(cut_after=2) as server:
        server.invoke({})
        server.invoke({})
        thread = run_loop(handler, server, invocations=2)
        thread.join(10)
        # THEN the body was closed early each time, and the second invocation was served
        assert not thread.is_alive()
    assert calls == [1, 1] and closed == [True, True]


def test_the_wrapper_starts_the_loop_and_reports_a_handler_that_cannot_load(
    runtime: RuntimeApiServer, tmp_path: Path
) -> None:
    # GIVEN the exec wrapper of the streaming function, a task root with a handler that
    # fails at import, and the venv's python as the runtime's python3
    (tmp_path / "broken.py").write_text("raise ImportError('no such driver')\n")
    environment = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "AWS_LAMBDA_RUNTIME_API": runtime.runtime_api,
        "LAMBDA_TASK_ROOT": str(tmp_path),
        "_HANDLER": "broken.handler",
    }
    # WHEN Lambda runs the wrapper
    completed = subprocess.run(
        ["sh", str(ROOT / "functions" / "query" / "streaming-runtime"), "/var/lang/bin/python3"],
        env=environment, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    # THEN the loop started, posted the init error and exited
    assert completed.returncode == 1
    (error,) = runtime.errors
    assert error.path == "/init/error" and error.error_type == "Runtime.ImportError"
    assert error.body["errorMessage"] == "no such driver"


def test_the_wrapper_serves_a_handler_from_the_task_root(
    runtime: RuntimeApiServer, tmp_path: Path
) -> None:
    # GIVEN a task root whose handler streams two pieces
    (tmp_path / "app.py").write_text(
        "def handler(event, context):\n"
        "    return {'statusCode': 201, 'body': iter([b'one', event['word'].encode()])}\n"
    )
    request_id = runtime.invoke({"word": "two"})
    environment = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "AWS_LAMBDA_RUNTIME_API": runtime.runtime_api,
        "LAMBDA_TASK_ROOT": str(tmp_path),
        "_HANDLER": "app.handler",
    }
    # WHEN the wrapper runs until the response is in
    process = subprocess.Popen(
        ["sh", str(ROOT / "functions" / "query" / "streaming-runtime")],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        runtime.wait()
    finally:
        process.kill()
        process.communicate(timeout=10)
    # THEN the handler's response was streamed
    response = runtime.responses[request_id]
    assert response.prelude == {"statusCode": 201} and response.payload == b"onetwo"
