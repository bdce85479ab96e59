"""A ``POST /rerank`` server on loopback, for testing the ``http:`` reranker for real.

It ranks the way the Cohere API, vLLM and TEI do (each document's index and a score,
best first), with a transparent score: the share of the query's words a document
contains. It answers in Cohere's shape (``{"results": [{"index", "relevance_score"}]}``,
honouring ``top_n``) or TEI's (a bare ``[{"index", "score"}]`` over every text), records
every request, and plays scripted failures: a status, a delay longer than the client's
timeout, or a body that is not a ranking.

    with RerankServer(shape="tei") as server:
        ... RAGLINE_RERANKER_URL=server.base_url ...
        server.script(Scripted(status=503))          # the next request fails
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from tests.support.loopback import LoopbackServer

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Scripted:
    """One scripted reply: an error status, a delay, and/or a raw body instead of a ranking."""

    status: int = 200
    delay: float = 0.0
    body: str | None = None


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def overlap_score(query: str, document: str) -> float:
    """The share of the query's distinct words that ``document`` contains (0 to 1)."""
    wanted = {w.lower() for w in _WORD.findall(query)}
    present = {w.lower() for w in _WORD.findall(document)}
    return round(len(wanted & present) / len(wanted), 6) if wanted else 0.0


@dataclass
class RerankServer(LoopbackServer):
    """A loopback ``/rerank`` server answering in ``shape`` (``cohere`` or ``tei``)."""

    shape: Literal["cohere", "tei"] = "cohere"
    api_key: str | None = None  # when set, other keys get 401
    requests: list[Recorded] = field(default_factory=list)
    _queue: list[Scripted] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def script(self, *replies: Scripted) -> None:
        """Queue replies for the next requests, before normal service resumes."""
        with self._lock:
            self._queue.extend(replies)

    @property
    def base_url(self) -> str:
        return self.address

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _Handler

    def _next(self) -> Scripted | None:
        with self._lock:
            return self._queue.pop(0) if self._queue else None

    def answer(self, body: dict[str, Any]) -> tuple[int, Any]:
        """The ranking of the request's documents (``texts`` for TEI)."""
        if self.shape == "tei":
            texts = body["texts"]
            ranked = sorted(
                ({"index": i, "score": overlap_score(body["query"], t)}
                 for i, t in enumerate(texts)),
                key=lambda r: -r["score"],
            )  # fmt: skip
            return 200, ranked
        documents = body["documents"]
        results = sorted(
            ({"index": i, "relevance_score": overlap_score(body["query"], d)}
             for i, d in enumerate(documents)),
            key=lambda r: -r["relevance_score"],
        )  # fmt: skip
        top_n = body.get("top_n") or len(results)
        return 200, {
            "id": "rerank-test",
            "results": results[:top_n],
            "meta": {"billed_units": {"search_units": 1}},
        }


class _Handler(BaseHTTPRequestHandler):
    owner: RerankServer

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        owner = self.owner
        with owner._lock:
            owner.requests.append(Recorded(self.path, dict(self.headers.items()), body))
        scripted = owner._next()
        if scripted is not None and scripted.delay:
            time.sleep(scripted.delay)
        if self.path != "/rerank":
            return self._send(404, {"error": f"no route {self.path}"})
        if owner.api_key and self.headers.get("Authorization") != f"Bearer {owner.api_key}":
            return self._send(401, {"message": "invalid api token"})
        if scripted is not None and scripted.body is not None:
            return self._send_raw(scripted.status, scripted.body.encode("utf-8"))
        if scripted is not None and scripted.status != 200:
            return self._send(scripted.status, {"message": "scripted failure"})
        self._send(*owner.answer(body))

    def _send(self, status: int, payload: Any) -> None:
        self._send_raw(status, json.dumps(payload).encode("utf-8"))

    def _send_raw(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        try:
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a scripted delay past its timeout)
