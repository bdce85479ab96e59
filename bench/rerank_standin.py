"""A local reranker stand-in: a ``POST /rerank`` server (Cohere's request and answer
shapes) that needs no model hub and no account, for ``ragline eval --reranker http:...``.

It scores a passage by its best sentence window against the query with all-MiniLM-L6-v2
(the ``minilm`` extra): a chunk embedding averages every sentence of the chunk, while a
question is usually answered by one or two of them. It is a stand-in for a cross-encoder
(Cohere Rerank, bge-reranker behind TEI), to measure what the rerank step does to
ranking and latency on this machine, not a recommendation.

    python bench/rerank_standin.py --port 8181 &
    RAGLINE_RERANKER_URL=http://127.0.0.1:8181 ragline eval SET.jsonl \\
        --reranker http:minilm-sentences ...
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import numpy as np

_SENTENCES = re.compile(r"(?<=[.!?:])\s+|\n+")
WINDOW = 2  # sentences per window: an answer often spans a sentence and its follow-up


def windows(text: str) -> list[str]:
    """The passage's overlapping windows of WINDOW sentences (the passage itself if short)."""
    sentences = [s.strip() for s in _SENTENCES.split(text) if len(s.strip()) > 3]
    if len(sentences) <= WINDOW:
        return [text]
    return [" ".join(sentences[i : i + WINDOW]) for i in range(len(sentences) - WINDOW + 1)]


class Scorer:
    """Best-window cosine similarity, blended with the whole passage's."""

    def __init__(self) -> None:
        from ragline.embeddings.minilm import MiniLMEmbedder

        self.model = MiniLMEmbedder()
        # An evaluation sends the same candidates again and again (per mode, per model).
        self.cache: dict[str, np.ndarray] = {}

    def vectors(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if missing:
            found = np.asarray(self.model.embed_batch(missing).vectors, dtype=np.float32)
            found /= np.linalg.norm(found, axis=1, keepdims=True) + 1e-12
            self.cache.update(zip(missing, found, strict=True))
        return np.stack([self.cache[t] for t in texts])

    def scores(self, query: str, documents: list[str]) -> list[float]:
        texts = [query, *documents]
        spans: list[tuple[int, int]] = []
        for document in documents:
            parts = windows(document)
            spans.append((len(texts), len(texts) + len(parts)))
            texts.extend(parts)
        vectors = self.vectors(texts)
        similarity = vectors @ vectors[0]
        return [
            0.7 * float(similarity[start:end].max()) + 0.3 * float(similarity[1 + i])
            for i, (start, end) in enumerate(spans)
        ]


def serve(port: int) -> None:
    scorer = Scorer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body: dict[str, Any] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            documents = [str(d) for d in body.get("documents") or body.get("texts") or []]
            scores = scorer.scores(str(body["query"]), documents)
            order = sorted(range(len(documents)), key=lambda i: -scores[i])
            top_n = int(body.get("top_n") or len(documents))
            results = [{"index": i, "relevance_score": scores[i]} for i in order[:top_n]]
            payload = json.dumps({"results": results}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = HTTPServer(("127.0.0.1", port), Handler)
    print(f"rerank stand-in on http://127.0.0.1:{port}", file=sys.stderr, flush=True)
    server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8181)
    serve(parser.parse_args().port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
