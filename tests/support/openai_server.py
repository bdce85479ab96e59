"""An OpenAI-compatible HTTP server on loopback, for testing the real openai SDK.

It serves ``POST /v1/chat/completions`` and ``POST /v1/embeddings`` the way the OpenAI
API (and vLLM, Ollama, llama.cpp's server...) does, records every request it receives,
and plays scripted failures: a status (429, 500, 401...) or a delay longer than the
client's timeout, either queued for the next requests or always for one model.

    with OpenAICompatibleServer(reply="25 days [1].") as server:
        ... OPENAI_BASE_URL=server.base_url ...
        server.script(CHAT, Scripted(status=429))   # the next chat request is throttled
        server.fail_model("gpt-broken", 500)        # this model always fails

A chat request with ``"stream": true`` is answered with server-sent chunks, one word
each, ``token_delay`` seconds apart, and the usage in a last chunk when
``stream_options.include_usage`` asks for it, as OpenAI does. The server notices a client
that goes away mid-stream (``disconnects``), notes when it sent each stream's first
token (``first_token_at``, ``time.monotonic()``), and ``Scripted(cut_after=n)`` drops the
connection after n tokens.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ragline.embeddings.hash import HashEmbedder

from tests.support.loopback import LoopbackServer

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
# Native sizes the server gives models when the request sets no dimensions.
DEFAULT_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}
OTHER_MODEL_DIMENSIONS = 48

# status -> the error type the OpenAI API puts in the body
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_api_key",
    404: "model_not_found",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "server_error",
}


@dataclass(frozen=True)
class Scripted:
    """One scripted reply: an error status, and/or a delay before answering."""

    status: int = 200
    delay: float = 0.0
    cut_after: int | None = None  # a streamed reply: drop the connection after n tokens


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    delay: float = 0.0
    cut_after: int | None = None


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass(frozen=True)
class ChatUsage:
    prompt_tokens: int = 412
    completion_tokens: int = 23
    cached_tokens: int = 256


@dataclass
class OpenAICompatibleServer(LoopbackServer):
    """A loopback server; ``reply`` is the completion text, or a function of the request."""

    reply: str | Callable[[dict[str, Any]], str] = "The documents do not answer this."
    usage: ChatUsage = field(default_factory=ChatUsage)
    api_key: str | None = None  # when set, other keys get 401 quoting the key they sent
    token_delay: float = 0.0  # seconds between the chunks of a streamed reply
    requests: list[Recorded] = field(default_factory=list)
    first_token_at: list[float] = field(default_factory=list)
    disconnects: list[int] = field(default_factory=list)  # tokens sent before each went away
    completed_streams: int = 0
    _queue: dict[str, list[Scripted]] = field(default_factory=dict)
    _failing_models: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    # --- control ----------------------------------------------------------------------------

    def script(self, path: str, *replies: Scripted) -> None:
        """Queue replies for the next requests to ``path``, before normal service resumes."""
        with self._lock:
            self._queue.setdefault(path, []).extend(replies)

    def fail_model(self, model: str, status: int) -> None:
        """Every request naming ``model`` fails with ``status``."""
        self._failing_models[model] = status

    def received(self, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    @property
    def base_url(self) -> str:
        return self.address + "/v1"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _Handler

    # --- serving ----------------------------------------------------------------------------

    def _next_script(self, path: str) -> Scripted | None:
        with self._lock:
            queue = self._queue.get(path)
            return queue.pop(0) if queue else None

    def respond(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> Reply:
        """Record the request and decide the reply: scripted, failing model, or service."""
        with self._lock:
            self.requests.append(Recorded(path, headers, body))
        presented = headers.get("authorization", "")
        if self.api_key is not None and presented != f"Bearer {self.api_key}":
            # Like some upstreams, the message quotes the key it was sent (and the header).
            key = presented.removeprefix("Bearer ")
            return _error(401, f"Incorrect API key provided: {key} (header {presented!r}).")
        scripted = self._next_script(path)
        if scripted is not None and scripted.status != 200:
            return _error(scripted.status, f"scripted failure {scripted.status}")
        status = self._failing_models.get(str(body.get("model")))
        if status is not None:
            return _error(status, f"model {body.get('model')} is failing ({status})")
        serve = {CHAT: self._chat, EMBEDDINGS: self._embeddings}.get(path)
        if serve is None:
            return _error(404, f"no route {path}")
        if scripted is None:
            return Reply(200, serve(body))
        return Reply(200, serve(body), scripted.delay, scripted.cut_after)

    def _chat(self, body: dict[str, Any]) -> dict[str, Any]:
        text = self.reply(body) if callable(self.reply) else self.reply
        usage = self.usage
        return {
            "id": "chatcmpl-loopback",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
            },
        }

    def _embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        model = str(body["model"])
        dimensions = body.get("dimensions") or DEFAULT_DIMENSIONS.get(model, OTHER_MODEL_DIMENSIONS)
        vectors = HashEmbedder(dimensions).embed_documents(texts).vectors
        return {
            "object": "list",
            "model": model,
            "data": [
                {"object": "embedding", "index": i, "embedding": vector.tolist()}
                for i, vector in enumerate(vectors)
            ],
            "usage": {
                "prompt_tokens": 7 * len(texts),
                "total_tokens": 7 * len(texts),
            },
        }


def stream_chunks(reply: dict[str, Any], include_usage: bool) -> tuple[list[bytes], bytes | None]:
    """A chat completion as streamed chunks (``data:`` lines): the role, one per word, the
    finish reason; and the usage chunk, when asked for."""
    text = reply["choices"][0]["message"]["content"]
    base = {k: reply[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return b"data: " + json.dumps({**base, "choices": [choice]}).encode() + b"\n\n"

    words = re.findall(r"\S+\s*", text)
    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": word}) for word in words]
    chunks.append(chunk({}, "stop"))
    usage = None
    if include_usage:
        data = {**base, "choices": [], "usage": reply["usage"]}
        usage = b"data: " + json.dumps(data).encode() + b"\n\n"
    return chunks, usage


def _error(status: int, message: str) -> Reply:
    kind = _ERROR_TYPES.get(status, "error")
    return Reply(status, {"error": {"message": message, "type": kind, "code": kind, "param": None}})


class _Handler(BaseHTTPRequestHandler):
    owner: OpenAICompatibleServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # each streamed chunk leaves when written

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.owner.respond(self.path, headers, body)
        if reply.delay:
            time.sleep(reply.delay)  # scripted to outlast the client's timeout
        if reply.status == 200 and self.path == CHAT and body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(reply, include_usage)
            return
        data = json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (the timeout case)

    def _stream(self, reply: Reply, include_usage: bool) -> None:
        """Chunked server-sent events, one word per ``token_delay``; a write that fails
        is a client gone away, noted in ``disconnects``."""
        owner = self.owner
        chunks, usage = stream_chunks(reply.body, include_usage)
        role, *tokens, finish = chunks
        tokens_sent = 0
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._chunk(role)
            for token in tokens:
                time.sleep(owner.token_delay)
                if reply.cut_after is not None and tokens_sent >= reply.cut_after:
                    self.close_connection = True
                    self.connection.shutdown(2)  # mid-answer, no end of stream
                    return
                self._chunk(token)
                if tokens_sent == 0:
                    with owner._lock:
                        owner.first_token_at.append(time.monotonic())
                tokens_sent += 1
            for last in (finish, usage, b"data: [DONE]\n\n"):
                if last is not None:
                    self._chunk(last)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            with owner._lock:
                owner.completed_streams += 1
        except (BrokenPipeError, ConnectionResetError):
            with owner._lock:
                owner.disconnects.append(tokens_sent)
            self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean
