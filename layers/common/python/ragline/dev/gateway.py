"""The HTTP server playing API Gateway: each request becomes a REST API proxy event.

The API is a proxy integration at the root (``/`` and ``/{proxy+}``), as a
``LambdaRestApi`` is, served without a stage prefix (like a custom domain), so
Powertools resolves routes, and the Swagger UI its OpenAPI document, from the path.
What API Gateway does and the handler can see is reproduced: the raw path with
percent-encoding kept, decoded query strings and path parameters, last-value and
multi-value views of headers and query strings, ``null`` for absent maps, the body as
text or base64, and a 502 when the function fails or answers something malformed.
As a server it answers every request: HEAD as the GET without its body, a 400 for a body
whose length cannot be read, a 405 for methods no route serves (TRACE), all as JSON.

A function with a streaming entry point is invoked through it, as an integration in
``STREAM`` response transfer mode invokes one: a body it gives as an iterator goes out
with chunked transfer encoding, one chunk flushed per piece; a client that goes away
closes the iterator, which ends the work behind it (a model call under way).

With an ``authorizer`` it also plays the API's Lambda authorizer: every path but
:data:`OPEN_PATHS` needs the ``x-api-key`` header (or ``Authorization: Bearer <key>``),
the authorizer turns the key into the context API Gateway passes on as
``requestContext.authorizer`` (tenant, scopes, key id), and a missing or refused key is a
401 before the function runs, whose message says why (missing, malformed, unknown,
revoked, expired), as the deployed API's refusals do.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from ragline.dev.context import ACCOUNT_ID, LambdaFunction
from ragline.dev.static import console_file
from ragline.errors import UnauthorizedError

logger = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's request payload quota
API_ID = "ragline0local"
STAGE = "local"
# What a proxy integration's ANY method passes on to the function (HEAD as a GET).
SERVED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# Paths served without a key: the health check and the API's documentation.
OPEN_PATHS = ("/health", "/swagger")
API_KEY_HEADER = "x-api-key"
AUTHORIZATION_HEADER = "authorization"


class Authorizer(Protocol):
    """Turns an API key (None: no header) into the authorizer context; to refuse it,
    raises UnauthorizedError, whose message (the reason) the 401 carries."""

    def __call__(self, api_key: str | None) -> dict[str, str]: ...


@dataclass(frozen=True)
class HttpResponse:
    """What goes back on the wire."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _group(pairs: Iterable[tuple[str, str]], *, fold_case: bool) -> dict[str, list[str]]:
    """Values per name in arrival order; header names compare without case."""
    grouped: dict[str, list[str]] = {}
    spelling: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower() if fold_case else name
        grouped.setdefault(spelling.setdefault(key, name), []).append(value)
    return grouped


def build_proxy_event(
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    *,
    source_ip: str = "127.0.0.1",
    host: str = "localhost",
    request_id: str | None = None,
    now: float | None = None,
    stage: str = STAGE,
) -> dict[str, Any]:
    """The API Gateway REST (v1) proxy event for one HTTP request.

    ``target`` is the request target as sent (path and query string, still encoded),
    ``headers`` the header lines in order (repeated names allowed).
    """
    now = time.time() if now is None else now
    request_id = request_id or str(uuid.uuid4())
    split = urlsplit(target)
    path = split.path or "/"
    multi_headers = _group(headers, fold_case=True)
    multi_query = _group(parse_qsl(split.query, keep_blank_values=True), fold_case=False)
    user_agent = next((v[-1] for k, v in multi_headers.items() if k.lower() == "user-agent"), None)

    if path == "/":
        resource, path_parameters = "/", None
    else:
        resource, path_parameters = "/{proxy+}", {"proxy": unquote(path[1:])}

    try:
        text, is_base64 = (body.decode("utf-8"), False) if body else (None, False)
    except UnicodeDecodeError:
        # API Gateway hands binary payloads over base64-encoded (binary media types).
        text, is_base64 = base64.b64encode(body).decode("ascii"), True

    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {name: values[-1] for name, values in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "resourceId": "proxy" if path_parameters else "root",
            "resourcePath": resource,
            "stage": stage,
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTime": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now * 1000),
            "httpMethod": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "domainName": host,
            "identity": {
                "sourceIp": source_ip,
                "userAgent": user_agent,
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "user": None,
                "userArn": None,
            },
        },
        "body": text,
        "isBase64Encoded": is_base64,
    }


def api_key(headers: Sequence[tuple[str, str]]) -> str | None:
    """The key a request sends: its ``x-api-key`` header, else its ``Authorization``
    header (``Bearer <key>``, as OpenAI clients send it; the authorizer reads the key out
    of it, as the deployed one does on the /v1 routes)."""
    sent = {name.lower(): value for name, value in headers}
    return sent.get(API_KEY_HEADER) or sent.get(AUTHORIZATION_HEADER)


def _json_response(
    status: int,
    message: str,
    headers: Sequence[tuple[str, str]] = (),
    status_code: int | None = None,
) -> HttpResponse:
    """A JSON ``{"message": ...}`` body; with ``status_code`` also that field, as the
    deployed API's gateway responses for refused keys carry (stacks/api.py)."""
    fields: dict[str, Any] = {"message": message}
    if status_code is not None:
        fields["statusCode"] = int(status_code)
    body = json.dumps(fields).encode()
    return HttpResponse(status, [("Content-Type", "application/json"), *headers], body)


def gateway_error(status: int = HTTPStatus.BAD_GATEWAY) -> HttpResponse:
    """API Gateway's own answer when the integration fails."""
    if status == HTTPStatus.BAD_GATEWAY:
        return _json_response(status, "Internal server error")
    return _json_response(status, HTTPStatus(status).phrase)


def parse_proxy_response(result: Any) -> HttpResponse:
    """The HTTP response for a proxy integration's return value, or a 502 if malformed.

    ``headers`` and ``multiValueHeaders`` are merged; a name in both keeps the
    multi-value list, as API Gateway documents.
    """
    if not isinstance(result, Mapping) or not isinstance(result.get("statusCode"), int):
        return gateway_error()
    multi = result.get("multiValueHeaders") or {}
    single = result.get("headers") or {}
    if not isinstance(multi, Mapping) or not isinstance(single, Mapping):
        return gateway_error()
    headers: list[tuple[str, str]] = []
    for name, values in multi.items():
        headers.extend((str(name), str(value)) for value in values)
    in_multi = {str(name).lower() for name in multi}
    headers.extend((str(k), str(v)) for k, v in single.items() if str(k).lower() not in in_multi)

    body = result.get("body")
    if body is None:
        payload = b""
    elif not isinstance(body, str):
        return gateway_error()
    elif result.get("isBase64Encoded"):
        try:
            payload = base64.b64decode(body, validate=True)
        except ValueError:
            return gateway_error()
    else:
        payload = body.encode("utf-8")
    return HttpResponse(int(result["statusCode"]), headers, payload)


class BadRequestError(Exception):
    """The request's framing cannot be read (a bad Content-Length or chunk size)."""


class ClientGoneError(Exception):
    """The client closed the connection while its response was being streamed."""


class _ChunkedSink:
    """Writes a streamed response on the request's connection: the status line and
    headers, then each piece as one chunk, flushed at once."""

    def __init__(self, handler: _RequestHandler) -> None:
        self.handler = handler
        self.started = False

    def start(self, response: Mapping[str, Any]) -> None:
        head = parse_proxy_response(response)
        handler = self.handler
        handler.send_response(head.status)
        for name, value in head.headers:
            if name.lower() not in {"content-length", "transfer-encoding", "connection"}:
                handler.send_header(name, value)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self._send(handler.end_headers)
        self.started = True

    def write(self, piece: bytes) -> None:
        if piece:
            self._send(lambda: self.handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece)))

    def end(self) -> None:
        self._send(lambda: self.handler.wfile.write(b"0\r\n\r\n"))

    def _send(self, write: Any) -> None:
        try:
            write()
            self.handler.wfile.flush()
        except OSError as exc:  # a broken pipe or a reset: nobody is reading any more
            raise ClientGoneError(str(exc)) from exc


class _RequestHandler(BaseHTTPRequestHandler):
    server: _GatewayServer
    protocol_version = "HTTP/1.1"
    # On a keep-alive connection, Nagle's algorithm holds a response's last small segment
    # until the client ACKs the previous one, which the client delays by ~40 ms: every
    # request after the first would wait that long. Responses also go out in one write
    # (a buffered wfile, flushed once per request) rather than headers, then body.
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024

    def _read_body(self) -> bytes | None:
        """The request body; None when it is over API Gateway's quota.

        Raises ``BadRequestError`` when its length cannot be read.
        """
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = _chunk_size(self.rfile.readline())
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
                if sum(map(len, chunks)) > MAX_PAYLOAD_BYTES:
                    return None
        declared = self.headers.get_all("Content-Length") or []
        if len(set(declared)) > 1:
            raise BadRequestError("conflicting Content-Length headers")
        text = declared[0].strip() if declared else "0"
        if not (text.isascii() and text.isdigit()):  # a sign or anything else: not a length
            raise BadRequestError(f"Content-Length {text!r} is not a number of bytes")
        length = int(text)
        if length > MAX_PAYLOAD_BYTES:
            return None
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        started = time.perf_counter()
        response: HttpResponse | None
        try:
            body = self._read_body()
        except BadRequestError as exc:
            # The rest of the stream cannot be framed: answer, then close.
            response = _json_response(HTTPStatus.BAD_REQUEST, str(exc))
            self.close_connection = True
        else:
            response = self._invoke(body)
        if response is None:  # streamed, or the client went away
            return
        self._write(response)
        logger.info(
            "%s %s -> %d (%.0f ms)",
            self.command,
            self.path,
            response.status,
            (time.perf_counter() - started) * 1000,
        )

    def _invoke(self, body: bytes | None) -> HttpResponse | None:
        if body is None:
            self.close_connection = True
            return gateway_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        if self.command in ("GET", "HEAD"):  # the console's page (ragline.dev.static)
            page = console_file(self.path)
            if page is not None:
                status, kind, content = page
                return HttpResponse(status, [("Content-Type", kind)], content)
        host = self.headers.get("Host", "localhost").split(":")[0]
        headers = [(name, value) for name, value in self.headers.items()]
        # HEAD is GET without the body: the function answers the GET, _write drops the body.
        method = "GET" if self.command == "HEAD" else self.command
        event = build_proxy_event(
            method, self.path, headers, body, source_ip=self.client_address[0], host=host
        )
        authorizer = self.server.authorizer
        if authorizer is not None and event["path"] not in OPEN_PATHS:
            key = api_key(headers)
            try:
                context = authorizer(key)
            except UnauthorizedError as refused:  # the deployed API's Deny, reason and all
                return _json_response(
                    HTTPStatus.UNAUTHORIZED, str(refused), status_code=HTTPStatus.UNAUTHORIZED
                )
            except Exception:  # as API Gateway answers an authorizer that fails
                logger.exception("the authorizer failed on %s %s", self.command, self.path)
                return gateway_error(HTTPStatus.INTERNAL_SERVER_ERROR)
            event["requestContext"]["authorizer"] = context
        if self.server.function.stream_handler is not None:
            return self._invoke_streaming(event)
        try:
            return parse_proxy_response(self.server.function.invoke(event))
        except Exception:  # a raising handler is a 502, as an integration error is
            name = self.server.function.name
            logger.exception("%s failed on %s %s", name, self.command, self.path)
            return gateway_error()

    def _invoke_streaming(self, event: dict[str, Any]) -> HttpResponse | None:
        """The response to write, or None when it was streamed (or its client went)."""
        started = time.perf_counter()
        sink = _ChunkedSink(self)
        function = self.server.function
        try:
            result = function.invoke_streaming(event, sink)
            if result is not None:
                return parse_proxy_response(result)
            sink.end()
        except ClientGoneError:
            self.close_connection = True
            logger.info("%s %s: the client went away mid-stream", self.command, self.path)
            return None
        except Exception:  # before the stream: a 502; during it: cut, which a client sees
            logger.exception("%s failed on %s %s", function.name, self.command, self.path)
            if not sink.started:
                return gateway_error()
            self.close_connection = True
            return None
        logger.info("%s %s -> streamed (%.0f ms)", self.command, self.path,
                    (time.perf_counter() - started) * 1000)  # fmt: skip
        return None

    def _write(self, response: HttpResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() not in {"content-length", "transfer-encoding", "connection"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The server's own errors (a malformed request line, an unknown method, headers
        too long) as JSON, like every other answer, instead of http.server's HTML page."""
        self.close_connection = True
        if not getattr(self, "command", None):
            # The request line itself was unreadable; still answer with a status line.
            self.command, self.request_version = "", self.protocol_version
        if code == HTTPStatus.NOT_IMPLEMENTED:
            # A method no route serves (TRACE, CONNECT, QUERY, ...): the resource does not
            # allow it, which is the client's error to fix, not the server's.
            response = _json_response(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"method {self.command} is not allowed",
                [("Allow", ", ".join(SERVED_METHODS))],
            )
        else:
            response = _json_response(code, message or HTTPStatus(code).phrase)
        self._write(response)
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are logged once, with their status and latency, by ``_handle``."""

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


def _chunk_size(line: bytes) -> int:
    """The size on a chunk-size line; ``BadRequestError`` when it is not hexadecimal."""
    text = line.split(b";")[0].strip() or b"0"
    try:
        size = int(text, 16)
    except ValueError:
        raise BadRequestError(f"chunk size {text.decode('latin-1')!r} is not hexadecimal") from None
    if size < 0:
        raise BadRequestError("a chunk size is negative")
    return size


class _GatewayServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], function: LambdaFunction, authorizer: Authorizer | None
    ) -> None:
        self.function = function
        self.authorizer = authorizer
        super().__init__(address, _RequestHandler)


class ApiGateway:
    """A threaded HTTP server on ``host:port`` invoking ``function`` for every request,
    behind ``authorizer`` when one is given."""

    def __init__(
        self,
        function: LambdaFunction,
        host: str = "127.0.0.1",
        port: int = 8000,
        authorizer: Authorizer | None = None,
    ) -> None:
        try:
            self._server = _GatewayServer((host, port), function, authorizer)
        except OSError as exc:
            raise OSError(
                f"cannot listen on {host}:{port} ({exc.strerror}); choose another port "
                f"with --api-port (0 = any free)"
            ) from exc
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` with the port actually bound."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        """Serve in a daemon thread and return the URL."""
        # A short poll interval only makes shutdown quicker; requests never wait on it.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="ragline-api-gateway",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop accepting requests and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
