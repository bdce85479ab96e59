"""A stand-in for the Lambda runtime: the context object and one "function" to invoke.

Powertools' ``inject_lambda_context`` reads the context's attributes, so the fake
carries every one of them. :class:`LambdaFunction` plays one execution environment:
it runs one invocation at a time, on one thread that outlives invocations, as Lambda
does. Handler modules rely on both: Powertools resolvers keep the current event on the
app, and the store keeps one connection per thread, reused while the thread lives.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"

Handler = Callable[[dict[str, Any], Any], Any]


class StreamSink(Protocol):
    """Where a streamed response goes: its status and headers first, then each piece."""

    def start(self, response: Mapping[str, Any]) -> None: ...

    def write(self, piece: bytes) -> None: ...


@dataclass
class LambdaContext:
    """The attributes and method of the context object the Python runtime passes."""

    function_name: str
    timeout_seconds: float = 30.0
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    log_stream_name: str = ""
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    identity: Any = None
    client_context: Any = None
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        if not self.log_stream_name:
            self.log_stream_name = new_log_stream_name(self.function_version)

    @property
    def invoked_function_arn(self) -> str:
        """The ARN the function was invoked with."""
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        """The CloudWatch log group Lambda would write to."""
        return f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout (never negative)."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def new_log_stream_name(version: str = "$LATEST") -> str:
    """A log stream name in Lambda's format: date, version, environment id."""
    return f"{datetime.now(UTC):%Y/%m/%d}/[{version}]{uuid.uuid4().hex}"


class LambdaFunction:
    """A handler with a name, a timeout and a memory size, invoked one event at a time."""

    def __init__(
        self,
        name: str,
        handler: Handler,
        *,
        timeout_seconds: float = 30.0,
        memory_limit_in_mb: int = 1024,
        stream_handler: Handler | None = None,
    ) -> None:
        self.name = name
        self.handler = handler
        # The entry point a streaming integration invokes: a proxy response whose body may
        # be an iterator of bytes, written as they come (see :meth:`invoke_streaming`).
        self.stream_handler = stream_handler
        self.timeout_seconds = timeout_seconds
        self.memory_limit_in_mb = memory_limit_in_mb
        # One execution environment: its log stream outlives invocations, its request ids don't.
        self.log_stream_name = new_log_stream_name()
        self._environment = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def new_context(self) -> LambdaContext:
        """A context for one invocation, with a fresh request id."""
        return LambdaContext(
            function_name=self.name,
            timeout_seconds=self.timeout_seconds,
            memory_limit_in_mb=self.memory_limit_in_mb,
            log_stream_name=self.log_stream_name,
        )

    def invoke(self, event: dict[str, Any]) -> Any:
        """Run the handler on one event and return what it returns (or raise what it raises).

        Callers from several threads queue up: one invocation runs at a time.
        """
        # The context is made on the worker so its deadline starts when the handler does.
        return self._environment.submit(self._run, event).result()

    def _run(self, event: dict[str, Any]) -> Any:
        return self.handler(event, self.new_context())

    def invoke_streaming(self, event: dict[str, Any], sink: StreamSink) -> Any:
        """Run the streaming entry point on one event. A response whose body is an
        iterator goes to ``sink`` as it comes (``start`` with the response, its body
        aside, then ``write`` per piece) and None is returned; any other response is
        returned as :meth:`invoke` returns it.

        The body is read in the execution environment, as Lambda runs a streaming
        function until its stream ends; a ``write`` that raises (the client went away)
        closes the body's iterator, which ends the work behind it.
        """
        if self.stream_handler is None:
            raise RuntimeError(f"{self.name} has no streaming entry point")
        return self._environment.submit(self._run_streaming, event, sink).result()

    def _run_streaming(self, event: dict[str, Any], sink: StreamSink) -> Any:
        assert self.stream_handler is not None
        result = self.stream_handler(event, self.new_context())
        body = result.get("body") if isinstance(result, Mapping) else None
        if not isinstance(body, Iterator):
            return result
        try:
            sink.start({**result, "body": None})
            for piece in body:
                sink.write(piece)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return None

    def close(self) -> None:
        """Let the invocation in progress finish, then end the environment's thread."""
        self._environment.shutdown(wait=True, cancel_futures=True)
