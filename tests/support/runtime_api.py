"""A loopback server playing the Lambda Runtime API for a runtime loop under test.

It hands out the events queued with :meth:`RuntimeApiServer.invoke` from ``GET
/runtime/invocation/next``, and keeps what the loop posts back: a streamed response is
read chunk by chunk as it arrives (each chunk stamped with ``time.monotonic()``), its
trailers kept; ``cut_after`` closes the connection after that many chunks, as a stream
nobody reads any more. Error posts (``.../error``, ``/init/error``) are kept too.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.loopback import LoopbackServer

PREFIX = "/2018-06-01/runtime"
DELIMITER = b"\x00" * 8


@dataclass
class StreamedResponse:
    """What the loop posted for one invocation."""

    request_id: str
    headers: dict[str, str]
    chunks: list[tuple[float, bytes]] = field(default_factory=list)  # (arrival, data)
    trailers: dict[str, str] = field(default_factory=dict)
    complete: bool = False  # the terminating chunk arrived

    @property
    def body(self) -> bytes:
        return b"".join(data for _, data in self.chunks)

    @property
    def prelude(self) -> dict[str, Any]:
        """The status and headers before the delimiter."""
        head, delimiter, _ = self.body.partition(DELIMITER)
        assert delimiter, "no delimiter after the prelude"
        parsed: dict[str, Any] = json.loads(head)
        return parsed

    @property
    def payload(self) -> bytes:
        return self.body.partition(DELIMITER)[2]


@dataclass
class PostedError:
    path: str
    error_type: str | None
    body: dict[str, Any]


class RuntimeApiServer(LoopbackServer):
    """The Runtime API: events in, responses and errors out."""

    def __init__(self, *, cut_after: int | None = None) -> None:
        self._server = None
        self.cut_after = cut_after
        self.events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.responses: dict[str, StreamedResponse] = {}
        self.errors: list[PostedError] = []
        self.done = threading.Condition()

    @property
    def runtime_api(self) -> str:
        """``host:port``, as ``AWS_LAMBDA_RUNTIME_API`` names it."""
        return self.address.removeprefix("http://")

    def invoke(self, event: dict[str, Any]) -> str:
        """Queue an event; its request id."""
        request_id = str(uuid.uuid4())
        self.events.put((request_id, event))
        return request_id

    def wait(self, count: int = 1, timeout: float = 15.0) -> None:
        """Until ``count`` invocations have been answered (responded or failed)."""
        deadline = time.monotonic() + timeout
        with self.done:
            while len(self.responses) + len(self.errors) < count:
                left = deadline - time.monotonic()
                assert left > 0, "the runtime loop did not answer in time"
                self.done.wait(left)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _Handler

    def _finished(self) -> None:
        with self.done:
            self.done.notify_all()


class _Handler(BaseHTTPRequestHandler):
    owner: RuntimeApiServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        assert self.path == f"{PREFIX}/invocation/next", self.path
        request_id, event = self.owner.events.get()
        body = json.dumps(event).encode()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60_000))
        self.send_header(
            "Lambda-Runtime-Invoked-Function-Arn",
            "arn:aws:lambda:us-east-1:123456789012:function:ragline-query-stream",
        )
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        path = self.path.removeprefix(PREFIX)
        if path.endswith("/response"):
            self._streamed(path.split("/")[2])
        else:
            self._error(path)

    def _streamed(self, request_id: str) -> None:
        headers = {name: value for name, value in self.headers.items()}
        response = StreamedResponse(request_id, headers)
        assert "chunked" in self.headers.get("Transfer-Encoding", ""), "not chunked"
        while True:
            size = int(self.rfile.readline().strip() or b"0", 16)
            if size == 0:
                break
            response.chunks.append((time.monotonic(), self.rfile.read(size)))
            self.rfile.readline()
            if self.owner.cut_after is not None and len(response.chunks) >= self.owner.cut_after:
                self.owner.responses[request_id] = response
                self.owner._finished()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)  # nobody reads the stream any more
                return
        while (line := self.rfile.readline().strip()) != b"":
            name, _, value = line.decode().partition(":")
            response.trailers[name.strip()] = value.strip()
        response.complete = True
        self._accepted()
        self.owner.responses[request_id] = response
        self.owner._finished()

    def _error(self, path: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
        self._accepted()
        self.owner.errors.append(PostedError(path, error_type, body))
        self.owner._finished()

    def _accepted(self) -> None:
        self.send_response(202)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass
