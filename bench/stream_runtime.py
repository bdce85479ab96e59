"""The streaming function's two possible shapes, measured on their shared part here.

Lambda's Python runtime cannot stream, so the streaming query function needs either
ragline's own runtime loop (ragline.streaming_runtime, the choice) or the Lambda Web
Adapter, which runs the function as an HTTP app and relays its chunked response to the
Runtime API. What this machine can measure of each, without AWS or the adapter's binary:

- start: a fresh interpreter importing the runtime loop's module, against importing what
  an HTTP app needs to serve the handler (the standard library's HTTP server and
  ragline.dev.gateway, which turns requests into the proxy events the handler reads);
- per piece: a handler yields 50 pieces, each stamped when yielded; the time until each
  arrives (a) at a loopback Runtime API through the runtime loop, (b) at an HTTP client
  through that HTTP app, as the adapter would read it (the adapter's own relay to the
  Runtime API comes on top, and its readiness check before the first request).

    python bench/stream_runtime.py [--pieces 50] [--runs 7]
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ragline.dev.context import LambdaFunction  # noqa: E402
from ragline.dev.gateway import ApiGateway  # noqa: E402
from ragline.streaming_runtime import RuntimeApi, serve  # noqa: E402

from tests.support.runtime_api import RuntimeApiServer  # noqa: E402

PIECE_DELAY = 0.005
START_PROBES = {
    "runtime loop": "import ragline.streaming_runtime",
    "HTTP app": "import http.server, socketserver, ragline.dev.gateway",
}


def _handler(pieces: int) -> Any:
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        def body() -> Iterator[bytes]:
            for _ in range(pieces):
                time.sleep(PIECE_DELAY)
                yield struct.pack("!d", time.monotonic()) + b"." * 56  # a 64-byte frame

        return {"statusCode": 200, "headers": {"Content-Type": "text/event-stream"}, "body": body()}

    return handler


def _delays(data: list[tuple[float, bytes]]) -> list[float]:
    """Seconds from each frame's stamp to its arrival (frames may share a chunk)."""
    delays = []
    for arrived, chunk in data:
        for offset in range(0, len(chunk) - 63, 64):
            (stamped,) = struct.unpack("!d", chunk[offset : offset + 8])
            delays.append(arrived - stamped)
    return delays


def through_runtime_loop(pieces: int) -> list[float]:
    with RuntimeApiServer() as runtime:
        request_id = runtime.invoke({"path": "/query/stream"})
        serve(_handler(pieces), RuntimeApi(runtime.runtime_api), environment={}, invocations=1)
        runtime.wait()
        response = runtime.responses[request_id]
    body = response.chunks[1:]  # the prelude first
    return _delays(body)


def through_http_app(pieces: int) -> list[float]:
    handler = _handler(pieces)
    function = LambdaFunction("bench", handler, stream_handler=handler)
    gateway = ApiGateway(function, port=0)
    url = gateway.start()
    try:
        host, port = url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request("POST", "/query/stream", b"{}", {"Content-Type": "application/json"})
        response = connection.getresponse()
        received: list[tuple[float, bytes]] = []
        buffer = b""
        while piece := response.read1(65536):
            buffer += piece
            whole = len(buffer) - len(buffer) % 64
            received.append((time.monotonic(), buffer[:whole]))
            buffer = buffer[whole:]
        connection.close()
    finally:
        gateway.stop()
        function.close()
    return _delays(received)


def start_time(statement: str, runs: int) -> float:
    """Median milliseconds of ``statement`` in fresh interpreters (this environment)."""
    probe = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    times = []
    for _ in range(runs):
        completed = subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
        )
        times.append(float(completed.stdout.strip()) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pieces", type=int, default=50)
    parser.add_argument("--runs", type=int, default=7)
    arguments = parser.parse_args()
    print(f"python {sys.version.split()[0]}, medians of {arguments.runs} fresh interpreters")
    for name, statement in START_PROBES.items():
        print(f"start   {name:<13} import {start_time(statement, arguments.runs):7.1f} ms")
    for name, measure in (("runtime loop", through_runtime_loop), ("HTTP app", through_http_app)):
        delays: list[float] = []
        for _ in range(3):
            delays += measure(arguments.pieces)
        delays.sort()
        median = statistics.median(delays) * 1000
        p95 = delays[int(len(delays) * 0.95)] * 1000
        print(
            f"piece   {name:<13} yield -> arrival: median {median:6.2f} ms, "
            f"p95 {p95:6.2f} ms ({len(delays)} pieces)"
        )


if __name__ == "__main__":
    main()
