"""The local API Gateway: HTTP requests in, REST proxy events out, responses back."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest
from ragline.dev.context import LambdaFunction
from ragline.dev.gateway import ApiGateway, build_proxy_event, parse_proxy_response
from ragline.errors import UnauthorizedError


class RecordingHandler:
    """A fake query function: records each event and context, replays a canned response."""

    def __init__(self, response: Any = None, error: Exception | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.response = response or {"statusCode": 200, "headers": {}, "body": "{}"}
        self.error = error

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        self.contexts.append(context)
        if self.error is not None:
            raise self.error
        return self.response


def test_path_query_and_headers_become_a_proxy_event() -> None:
    # GIVEN a request with a nested path, repeated query parameters and repeated headers
    headers = [
        ("Host", "127.0.0.1:8000"),
        ("Accept", "application/json"),
        ("X-Tag", "one"),
        ("x-tag", "two"),
        ("User-Agent", "pytest"),
    ]

    # WHEN it becomes an event
    event = build_proxy_event(
        "GET",
        "/documents/doc%2F1?limit=5&tag=a&tag=b+c&empty=",
        headers,
        b"",
        source_ip="10.0.0.7",
        request_id="req-1",
        now=1_700_000_000.25,
    )

    # THEN it has API Gateway's shape: raw path, decoded parameters, both header views
    assert event["resource"] == "/{proxy+}"
    assert event["path"] == "/documents/doc%2F1"
    assert event["pathParameters"] == {"proxy": "documents/doc/1"}
    assert event["httpMethod"] == "GET"
    assert event["queryStringParameters"] == {"limit": "5", "tag": "b c", "empty": ""}
    assert event["multiValueQueryStringParameters"] == {
        "limit": ["5"],
        "tag": ["a", "b c"],
        "empty": [""],
    }
    assert event["headers"]["X-Tag"] == "two"
    assert event["multiValueHeaders"]["X-Tag"] == ["one", "two"]
    assert event["stageVariables"] is None
    assert event["body"] is None
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["requestId"] == "req-1"
    assert context["stage"] == "local"
    assert context["httpMethod"] == "GET"
    assert context["path"] == "/documents/doc%2F1"
    assert context["requestTimeEpoch"] == 1_700_000_000_250
    assert context["requestTime"] == "14/Nov/2023:22:13:20 +0000"
    assert context["identity"]["sourceIp"] == "10.0.0.7"
    assert context["identity"]["userAgent"] == "pytest"


def test_root_has_no_path_parameters_and_absent_maps_are_null() -> None:
    # GIVEN a bare request for the root
    # WHEN it becomes an event
    event = build_proxy_event("GET", "/", [], b"")

    # THEN the root resource is used and the empty maps are null, as API Gateway sends them
    assert event["resource"] == "/"
    assert event["pathParameters"] is None
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["headers"] is None
    assert event["multiValueHeaders"] is None


def test_text_body_is_passed_as_is_and_binary_body_as_base64() -> None:
    # GIVEN a JSON body and a body that is not UTF-8
    payload = json.dumps({"question": "Où est le café ?"}).encode()
    binary = b"\x89PNG\r\n\x1a\n\xff\x00"

    # WHEN they become events
    text_event = build_proxy_event(
        "POST", "/query", [("Content-Type", "application/json")], payload
    )
    binary_event = build_proxy_event("POST", "/upload", [], binary)

    # THEN text stays text and binary is base64-encoded and flagged
    assert text_event["body"] == payload.decode()
    assert text_event["isBase64Encoded"] is False
    assert binary_event["isBase64Encoded"] is True
    assert base64.b64decode(binary_event["body"]) == binary


def test_response_headers_merge_and_base64_bodies_are_decoded() -> None:
    # GIVEN a proxy response with both header maps and a base64 body
    result = {
        "statusCode": 201,
        "headers": {"Content-Type": "image/png", "Set-Cookie": "ignored=1"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": base64.b64encode(b"\x00\x01").decode(),
        "isBase64Encoded": True,
    }

    # WHEN it is turned into the HTTP response
    response = parse_proxy_response(result)

    # THEN the multi-value list wins for a name in both maps, and the body is raw bytes
    assert response.status == 201
    assert response.headers == [
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Content-Type", "image/png"),
    ]
    assert response.body == b"\x00\x01"


@pytest.mark.parametrize(
    "result",
    [None, "text", {"body": "no status"}, {"statusCode": 200, "body": 12}, {"statusCode": "200"}],
)
def test_malformed_responses_are_a_502(result: Any) -> None:
    # GIVEN a function answer that is not a proxy response
    # WHEN it is turned into the HTTP response
    response = parse_proxy_response(result)

    # THEN the client sees API Gateway's integration error
    assert response.status == 502
    assert json.loads(response.body) == {"message": "Internal server error"}


@pytest.fixture
def served() -> Iterator[tuple[ApiGateway, RecordingHandler]]:
    handler = RecordingHandler(
        {
            "statusCode": 200,
            "multiValueHeaders": {"Content-Type": ["application/json"], "X-Trace": ["1", "2"]},
            "body": '{"ok": true}',
            "isBase64Encoded": False,
        }
    )
    gateway = ApiGateway(LambdaFunction("ragline-query", handler), "127.0.0.1", 0)
    gateway.start()
    yield gateway, handler
    gateway.stop()


def _connection(gateway: ApiGateway) -> http.client.HTTPConnection:
    host, port = gateway.url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=10)


def test_http_request_reaches_the_function_and_its_response_comes_back(
    served: tuple[ApiGateway, RecordingHandler],
) -> None:
    # GIVEN the gateway serving a recording function
    gateway, handler = served
    connection = _connection(gateway)

    # WHEN a client posts JSON with a repeated header
    connection.putrequest("POST", "/query?top_k=3")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("X-Tag", "one")
    connection.putheader("X-Tag", "two")
    body = b'{"question": "hi"}'
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    response = connection.getresponse()

    # THEN the function got the proxy event and a Lambda context, and the client its answer
    assert response.status == 200
    assert response.getheader("X-Trace") == "1, 2"
    assert json.loads(response.read()) == {"ok": True}
    (event,) = handler.events
    assert event["httpMethod"] == "POST"
    assert event["path"] == "/query"
    assert event["queryStringParameters"] == {"top_k": "3"}
    assert event["multiValueHeaders"]["X-Tag"] == ["one", "two"]
    assert event["body"] == '{"question": "hi"}'
    (context,) = handler.contexts
    assert context.function_name == "ragline-query"
    assert context.invoked_function_arn.endswith(":function:ragline-query")
    assert 0 < context.get_remaining_time_in_millis() <= 30_000


def test_each_invocation_gets_a_fresh_request_id(
    served: tuple[ApiGateway, RecordingHandler],
) -> None:
    # GIVEN the gateway serving a recording function
    gateway, handler = served

    # WHEN two requests arrive on one keep-alive connection
    connection = _connection(gateway)
    for _ in range(2):
        connection.request("GET", "/health")
        connection.getresponse().read()

    # THEN each ran with its own request id, in the same execution environment
    first, second = handler.contexts
    assert first.aws_request_id != second.aws_request_id
    assert first.log_stream_name == second.log_stream_name


def test_a_raising_function_is_a_502() -> None:
    # GIVEN a function that raises
    gateway = ApiGateway(
        LambdaFunction("ragline-query", RecordingHandler(error=RuntimeError("boom"))), port=0
    )
    gateway.start()
    try:
        # WHEN it is called
        connection = _connection(gateway)
        connection.request("GET", "/health")
        response = connection.getresponse()

        # THEN the client sees API Gateway's integration error, not a stack trace
        assert response.status == 502
        assert json.loads(response.read()) == {"message": "Internal server error"}
    finally:
        gateway.stop()


def test_an_oversized_payload_is_refused_before_the_function_runs(
    served: tuple[ApiGateway, RecordingHandler],
) -> None:
    # GIVEN the gateway serving a recording function
    gateway, handler = served

    # WHEN a client announces a body above API Gateway's 10 MB quota
    connection = _connection(gateway)
    connection.putrequest("POST", "/query")
    connection.putheader("Content-Length", str(11 * 1024 * 1024))
    connection.endheaders()
    response = connection.getresponse()

    # THEN it gets a 413 and the function never sees the request
    assert response.status == 413
    assert handler.events == []


def _raw_exchange(gateway: ApiGateway, request: bytes) -> bytes:
    """Send raw bytes on a fresh connection; return everything until the server closes it."""
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    return received


def test_keep_alive_requests_after_the_first_do_not_wait_for_a_delayed_ack(
    served: tuple[ApiGateway, RecordingHandler],
) -> None:
    # GIVEN the gateway and one keep-alive connection
    gateway, handler = served
    connection = _connection(gateway)
    connection.request("GET", "/health")
    connection.getresponse().read()

    # WHEN 20 more requests follow on it
    took = []
    for _ in range(20):
        started = time.perf_counter()
        connection.request("POST", "/query", body=b'{"question": "hi"}')
        connection.getresponse().read()
        took.append(time.perf_counter() - started)

    # THEN they do not wait for the client's delayed ACK, which Nagle's algorithm makes
    # them do (~40 ms each, a kernel timer: never less): the median is well under that,
    # whatever a busy host adds to a few of them
    assert len(handler.events) == 21
    median = statistics.median(took)
    assert median < 0.02, f"median keep-alive request took {median * 1000:.1f} ms"


@pytest.mark.parametrize(
    ("framing", "body", "message"),
    [
        (b"Content-Length: abc\r\n", b"{}", "Content-Length 'abc' is not a number"),
        (b"Content-Length: -5\r\n", b"{}", "Content-Length '-5' is not a number"),
        (b"Content-Length: 2\r\nContent-Length: 3\r\n", b"{}", "conflicting Content-Length"),
        (b"Transfer-Encoding: chunked\r\n", b"zz\r\n{}", "chunk size 'zz' is not hexadecimal"),
    ],
)
def test_a_request_whose_length_cannot_be_read_gets_a_400(
    served: tuple[ApiGateway, RecordingHandler], framing: bytes, body: bytes, message: str
) -> None:
    # GIVEN the gateway serving a recording function
    gateway, handler = served

    # WHEN a request arrives with a body length that cannot be read
    raw = _raw_exchange(gateway, b"POST /query HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n" + body)

    # THEN it gets a JSON 400 naming the problem (not a dropped connection), unseen by the function
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), raw
    assert b"Connection: close" in head
    assert message in json.loads(body)["message"]
    assert handler.events == []


@pytest.mark.parametrize(
    ("method", "status"), [("TRACE", 405), ("CONNECT", 405), ("QUERY", 405), ("", 400)]
)
def test_methods_the_api_does_not_serve_get_a_json_error(
    served: tuple[ApiGateway, RecordingHandler], method: str, status: int
) -> None:
    # GIVEN the gateway serving a recording function
    gateway, handler = served

    # WHEN a client sends a method no route serves (or no request line at all)
    request_line = f"{method} /health HTTP/1.1" if method else "GARBAGE"
    raw = _raw_exchange(gateway, f"{request_line}\r\nHost: x\r\nConnection: close\r\n\r\n".encode())

    # THEN it gets a 4xx with a JSON message, as every other answer, not an HTML page (a 405
    # names the methods that are served)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), raw
    assert b"Content-Type: application/json" in head
    assert (b"Allow: GET, HEAD, POST" in head) == (status == 405)
    assert json.loads(body)["message"]
    assert handler.events == []


def test_head_answers_the_get_headers_without_a_body(
    served: tuple[ApiGateway, RecordingHandler],
) -> None:
    # GIVEN the gateway serving a recording function
    gateway, handler = served
    connection = _connection(gateway)

    # WHEN a client sends HEAD, then a GET on the same connection
    connection.request("HEAD", "/health")
    head = connection.getresponse()
    head_body = head.read()
    connection.request("GET", "/health")
    get = connection.getresponse()
    get_body = get.read()

    # THEN HEAD has the GET's status and headers (its Content-Length too) and no body,
    # and the function served it as the GET it stands for
    assert head.status == get.status == 200
    assert head.getheader("Content-Length") == str(len(get_body)) != "0"
    assert head_body == b""
    assert [event["httpMethod"] for event in handler.events] == ["GET", "GET"]


def test_with_an_authorizer_keys_are_required_and_its_context_reaches_the_function() -> None:
    # GIVEN a gateway whose authorizer knows one key, serving a recording function
    asked: list[str | None] = []

    def authorizer(api_key: str | None) -> dict[str, str]:
        asked.append(api_key)
        if api_key != "good":
            raise UnauthorizedError(f"refused {api_key}")
        return {"tenant": "acme", "scopes": "read", "keyId": "k1"}

    handler = RecordingHandler()
    gateway = ApiGateway(LambdaFunction("ragline-query", handler), port=0, authorizer=authorizer)
    gateway.start()
    try:
        connection = _connection(gateway)
        statuses = {}
        for key in (None, "bad", "good"):
            # WHEN a request comes with no key, an unknown key, and a known one
            headers = {} if key is None else {"x-api-key": key}
            connection.request("GET", "/documents", headers=headers)
            response = connection.getresponse()
            statuses[key] = (response.status, json.loads(response.read()))
        connection.request("GET", "/health")
        health = connection.getresponse()
        health.read()
    finally:
        gateway.stop()
    # THEN the refused ones are 401 before the function runs, each with the authorizer's
    # reason, in the deployed API's refusal shape
    assert statuses[None] == (401, {"message": "refused None", "statusCode": 401})
    assert statuses["bad"] == (401, {"message": "refused bad", "statusCode": 401})
    assert statuses["good"][0] == 200
    # AND the function got the authorizer's context, as API Gateway passes it on
    (event, _health) = handler.events
    assert event["requestContext"]["authorizer"] == {"tenant": "acme", "scopes": "read",
                                                     "keyId": "k1"}  # fmt: skip
    # AND /health needs no key (the authorizer was not asked for it)
    assert health.status == 200 and asked == [None, "bad", "good"]
    assert "authorizer" not in _health["requestContext"]
