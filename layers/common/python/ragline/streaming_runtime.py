"""A Lambda runtime loop of our own, for the entry point whose response is streamed.

Lambda's managed Python runtime returns a handler's response in one piece, so a response
stream (API Gateway's ``STREAM`` transfer mode, which invokes the function with
``InvokeWithResponseStream``) would still arrive all at once. This loop speaks the Lambda
Runtime API itself, started by the function's ``AWS_LAMBDA_EXEC_WRAPPER`` in place of the
managed one, on the same interpreter and layer:

1. import the handler named by ``_HANDLER`` (``module.function``); a failure is posted
   to ``/runtime/init/error``;
2. per invocation, ``GET /runtime/invocation/next`` (the event and its context), call
   the handler with the proxy event, as the managed runtime would;
3. ``POST /runtime/invocation/{id}/response`` in ``streaming`` response mode with chunked
   transfer: the proxy response's status and headers as JSON, eight NUL bytes (the
   delimiter API Gateway reads), then the body, one chunk per piece the body's iterator
   yields (a text body is one piece);
4. a handler that raises before its response started is posted to ``.../error``; a body
   that fails mid-stream ends the chunked body with the error trailers
   (``Lambda-Runtime-Function-Error-Type`` and ``-Body``). Either way the body's iterator
   is closed, which ends the work behind it (a model call), as when the runtime API
   stops taking the stream.

Only the standard library: the loop's import adds a few milliseconds to the handler's.
"""

from __future__ import annotations

import base64
import http.client
import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

API_VERSION = "2018-06-01"
# What API Gateway (and a function URL) reads between the response's metadata and its body.
DELIMITER = b"\x00" * 8
INTEGRATION_RESPONSE = "application/vnd.awslambda.http-integration-response"
ERROR_TYPE_TRAILER = "Lambda-Runtime-Function-Error-Type"
ERROR_BODY_TRAILER = "Lambda-Runtime-Function-Error-Body"
# The prelude's fields a proxy response may carry (the body goes after the delimiter).
PRELUDE_FIELDS = ("statusCode", "headers", "multiValueHeaders", "cookies")

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LambdaContext:
    """The context object the managed runtime passes, from the invocation's headers and
    the function's environment."""

    aws_request_id: str
    invoked_function_arn: str
    deadline_ms: int
    function_name: str = ""
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 128
    log_group_name: str = ""
    log_stream_name: str = ""
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout (never negative)."""
        return max(0, self.deadline_ms - int(time.time() * 1000))


@dataclass(frozen=True)
class Invocation:
    """One event from ``/runtime/invocation/next``."""

    request_id: str
    event: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)

    def context(self, environment: Mapping[str, str]) -> LambdaContext:
        headers = self.headers
        return LambdaContext(
            aws_request_id=self.request_id,
            invoked_function_arn=headers.get("lambda-runtime-invoked-function-arn", ""),
            deadline_ms=int(headers.get("lambda-runtime-deadline-ms") or 0),
            function_name=environment.get("AWS_LAMBDA_FUNCTION_NAME", ""),
            function_version=environment.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            memory_limit_in_mb=int(environment.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 128),
            log_group_name=environment.get("AWS_LAMBDA_LOG_GROUP_NAME", ""),
            log_stream_name=environment.get("AWS_LAMBDA_LOG_STREAM_NAME", ""),
            client_context=_json_header(headers.get("lambda-runtime-client-context")),
            identity=_json_header(headers.get("lambda-runtime-cognito-identity")),
        )


class StreamCutError(Exception):
    """The Runtime API stopped taking the response stream (its connection closed)."""


class RuntimeApi:
    """A client of the Lambda Runtime API at ``address`` (``host:port``)."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        # No timeout: /next waits for as long as the function is idle.
        self.connection = http.client.HTTPConnection(host, int(port), timeout=None)
        self.base = f"/{API_VERSION}/runtime"

    def next_invocation(self) -> Invocation:
        """Wait for the next event."""
        self.connection.request("GET", f"{self.base}/invocation/next")
        response = self.connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"the Runtime API answered /next with {response.status}")
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Invocation(headers["lambda-runtime-aws-request-id"], json.loads(body), headers)

    def stream_response(
        self, request_id: str, prelude: Mapping[str, Any], body: Iterable[bytes]
    ) -> None:
        """Post the response in streaming mode: the prelude, the delimiter, then each piece
        of ``body`` as one chunk, sent at once. An exception from ``body`` ends the stream
        with the error trailers, then propagates; :class:`StreamCutError` when the Runtime
        API stopped reading."""
        connection = self.connection
        connection.putrequest("POST", f"{self.base}/invocation/{request_id}/response")
        connection.putheader("Lambda-Runtime-Function-Response-Mode", "streaming")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.putheader("Content-Type", INTEGRATION_RESPONSE)
        connection.putheader("Trailer", f"{ERROR_TYPE_TRAILER}, {ERROR_BODY_TRAILER}")
        try:
            connection.endheaders()
            self._chunk(json.dumps(dict(prelude), separators=(",", ":")).encode() + DELIMITER)
            try:
                for piece in body:
                    if piece:
                        self._chunk(piece)
            except StreamCutError:
                raise
            except Exception as exc:
                trailers = _error_trailers(exc)
                connection.send(b"0\r\n" + trailers + b"\r\n")
                self._read_reply(request_id)
                raise
            connection.send(b"0\r\n\r\n")
        except OSError as exc:
            self._reset()
            raise StreamCutError(str(exc)) from exc
        self._read_reply(request_id)

    def invocation_error(self, request_id: str, exc: BaseException) -> None:
        """Report an invocation that failed before its response started."""
        self._post(f"/invocation/{request_id}/error", exc)

    def init_error(self, exc: BaseException) -> None:
        """Report that the handler could not be loaded."""
        self._post("/init/error", exc)

    def _post(self, path: str, exc: BaseException) -> None:
        headers = {ERROR_TYPE_TRAILER: _error_type(exc), "Content-Type": "application/json"}
        self.connection.request("POST", self.base + path, _error_body(exc), headers)
        self.connection.getresponse().read()

    def _chunk(self, piece: bytes) -> None:
        self.connection.send(b"%x\r\n%s\r\n" % (len(piece), piece))

    def _read_reply(self, request_id: str) -> None:
        try:
            response = self.connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._reset()
            raise StreamCutError(f"no reply to the response of {request_id}: {exc}") from exc
        if response.status >= 400:
            raise RuntimeError(f"the Runtime API refused the response of {request_id}")

    def _reset(self) -> None:
        """A connection in an unknown state is closed: the next request opens a new one."""
        self.connection.close()


def serve(
    handler: Handler,
    api: RuntimeApi,
    *,
    environment: Mapping[str, str],
    invocations: int | None = None,
) -> None:
    """Answer invocations with ``handler`` until the process ends (or ``invocations``)."""
    served = 0
    while invocations is None or served < invocations:
        invocation = api.next_invocation()
        trace = invocation.headers.get("lambda-runtime-trace-id")
        if trace:  # where the X-Ray SDK reads the segment to attach to, as the runtime sets it
            os.environ["_X_AMZN_TRACE_ID"] = trace
        _invoke(handler, api, invocation, environment)
        served += 1


def _invoke(
    handler: Handler, api: RuntimeApi, invocation: Invocation, environment: Mapping[str, str]
) -> None:
    try:
        result = handler(invocation.event, invocation.context(environment))
        prelude, body = split_response(result)
    except Exception as exc:
        traceback.print_exc()
        api.invocation_error(invocation.request_id, exc)
        return
    try:
        api.stream_response(invocation.request_id, prelude, body)
    except StreamCutError as exc:
        print(f"the response stream of {invocation.request_id} was cut: {exc}", file=sys.stderr)
    except Exception:  # ended with the error trailers; the function lives on
        traceback.print_exc()
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()  # a body left half-read ends the work behind it (the model call)


def split_response(result: Any) -> tuple[dict[str, Any], Iterator[bytes]]:
    """A proxy response as the stream's prelude (status, headers) and its body's pieces:
    an iterator body as it is, a text body (base64-decoded when flagged) as one piece."""
    if not isinstance(result, Mapping) or "statusCode" not in result:
        raise TypeError("the handler must return a proxy response with a statusCode")
    prelude = {name: result[name] for name in PRELUDE_FIELDS if result.get(name) is not None}
    body = result.get("body")
    if isinstance(body, Iterator):
        return prelude, body
    if body is None:
        return prelude, iter(())
    if isinstance(body, str):
        body = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    return prelude, iter((bytes(body),))


def load_handler(name: str) -> Handler:
    """The handler ``module.function`` names (Lambda's ``_HANDLER``)."""
    module_name, _, function_name = name.rpartition(".")
    if not module_name or not function_name:
        raise ValueError(f"handler {name!r} is not of the form module.function")
    handler = getattr(importlib.import_module(module_name), function_name, None)
    if not callable(handler):
        raise AttributeError(f"module {module_name} has no callable {function_name}")
    return handler


def main() -> None:
    """The wrapper's entry point: load the handler, then serve until Lambda ends us."""
    # Lambda's runtime contract, not ragline's settings: where the Runtime API is, which
    # handler to run, and the function's name, version, memory and log names.
    environment = dict(os.environ)
    api = RuntimeApi(environment["AWS_LAMBDA_RUNTIME_API"])
    task_root = environment.get("LAMBDA_TASK_ROOT")
    if task_root:  # first, as the managed runtime has it: the function's modules win
        sys.path.insert(0, task_root)
    try:
        handler = load_handler(environment["_HANDLER"])
    except Exception as exc:
        traceback.print_exc()
        api.init_error(exc)
        sys.exit(1)
    serve(handler, api, environment=environment)


def _error_type(exc: BaseException) -> str:
    return f"Runtime.{type(exc).__name__}"


def _error_body(exc: BaseException) -> bytes:
    return json.dumps(
        {
            "errorMessage": str(exc),
            "errorType": type(exc).__name__,
            "stackTrace": traceback.format_exception(exc)[-5:],
        }
    ).encode()


def _error_trailers(exc: BaseException) -> bytes:
    body = base64.b64encode(_error_body(exc))
    return (
        f"{ERROR_TYPE_TRAILER}: {_error_type(exc)}\r\n".encode()
        + ERROR_BODY_TRAILER.encode()
        + b": "
        + body
        + b"\r\n"
    )


def _json_header(value: str | None) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


if __name__ == "__main__":
    main()
