"""AWS event streams on loopback: Bedrock's ConverseStream and SageMaker's
InvokeEndpointWithResponseStream answered in the binary ``application/vnd.amazon.eventstream``
framing, so the real botocore client parses them (Stubber cannot return an event
stream, and moto does not serve these operations).

    with EventStreamServer() as server:
        server.events = [delta_event("At "), ...]
        client = boto3.client("bedrock-runtime", endpoint_url=server.address, ...)
"""

from __future__ import annotations

import json
import struct
import threading
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.loopback import LoopbackServer

_STRING = 7  # the header value type of a string


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event stream message: prelude, its CRC, headers, payload, the message's CRC."""
    encoded = b"".join(
        struct.pack("!B", len(name)) + name.encode() + struct.pack("!BH", _STRING, len(value))
        + value.encode()
        for name, value in headers.items()
    )  # fmt: skip
    total = 4 + 4 + 4 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack("!I", zlib.crc32(message))


def event(event_type: str, body: Any) -> bytes:
    """An event whose payload is its JSON members (Converse's events)."""
    headers = {":message-type": "event", ":event-type": event_type,
               ":content-type": "application/json"}  # fmt: skip
    return encode_message(headers, json.dumps(body).encode())


def payload_part(data: bytes) -> bytes:
    """SageMaker's PayloadPart: the bytes are the event's payload."""
    headers = {":message-type": "event", ":event-type": "PayloadPart",
               ":content-type": "application/octet-stream"}  # fmt: skip
    return encode_message(headers, data)


def exception(exception_type: str, message: str) -> bytes:
    """An error sent inside the stream (botocore raises it while iterating)."""
    headers = {":message-type": "exception", ":exception-type": exception_type,
               ":content-type": "application/json"}  # fmt: skip
    return encode_message(headers, json.dumps({"message": message}).encode())


@dataclass
class EventStreamServer(LoopbackServer):
    """Answers every POST with ``events``, one message per write, ``delay`` seconds apart;
    records each request's path and JSON body."""

    events: list[bytes] = field(default_factory=list)
    delay: float = 0.0
    requests: list[tuple[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _Handler


class _Handler(BaseHTTPRequestHandler):
    owner: EventStreamServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.owner._lock:
            self.owner.requests.append((self.path, json.loads(body or b"{}")))
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.amazon.eventstream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for message in self.owner.events:
                time.sleep(self.owner.delay)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(message), message))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass
