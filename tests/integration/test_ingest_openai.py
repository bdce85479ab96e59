"""Ingest with OpenAI embeddings (the real SDK, a loopback server), then ask through the
query Lambda with the same embeddings and an OpenAI chat model: the whole path."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import psycopg
import pytest
from ragline.config import Settings
from ragline.ingest import Ingestor
from ragline.providers.clients import openai_connection
from ragline.store import get_store

from tests.support.openai_server import EMBEDDINGS, OpenAICompatibleServer

GUIDE = b"""# Paddling guide

## Launch
Kayaks launch from dock B between 8:00 and 18:00.

## Safety
Every paddler wears a buoyancy aid. Groups of more than six need a guide.

## Returns
Boats are rinsed with fresh water and racked upside down.
"""


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer(reply="From dock B, 8:00 to 18:00 [1].") as running:
        monkeypatch.setenv("OPENAI_BASE_URL", running.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        openai_connection.cache_clear()
        yield running
    openai_connection.cache_clear()


def test_ingest_batches_embeddings_and_stores_the_servers_dimension(
    server: OpenAICompatibleServer,
    database_url: str,
    cold_start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
) -> None:
    # GIVEN OpenAI embeddings (native size) and chunks embedded two at a time
    settings = Settings(
        database_url=database_url,
        embeddings="openai:text-embedding-3-small",
        embedding_batch_size=2,
        chunk_tokens=32,
        chunk_overlap=0,
    )
    # WHEN a document is ingested
    result = Ingestor.from_settings(settings).ingest_bytes("s3://docs/guide.md", GUIDE)
    get_store.cache_clear()
    # THEN the server got the chunk texts in batches of at most two
    requests = server.received(EMBEDDINGS)
    inputs = [r.body["input"] for r in requests]
    assert result.status == "ingested" and result.chunks >= 3
    assert all(isinstance(batch, list) and 1 <= len(batch) <= 2 for batch in inputs)
    assert sum(len(batch) for batch in inputs) == result.chunks
    assert any("dock B" in text for batch in inputs for text in batch)
    assert {r.body["model"] for r in requests} == {"text-embedding-3-small"}
    # AND the token count is the server's, and the vectors have its dimension
    assert result.embedding_tokens == 7 * result.chunks
    assert result.embedding_model == "openai:text-embedding-3-small"
    with psycopg.connect(database_url) as conn:
        dims = conn.execute("SELECT DISTINCT vector_dims(embedding) FROM chunks").fetchall()
        collection = conn.execute(
            "SELECT embedding_model, dimensions FROM collections WHERE name = 'default'"
        ).fetchone()
    assert dims == [(1536,)]
    assert collection == ("openai:text-embedding-3-small", 1536)

    # WHEN a question is asked with the same embeddings and an OpenAI chat model
    api = cold_start("query", RAGLINE_DATABASE_URL=database_url, OPENAI_API_KEY="test",
                     OPENAI_BASE_URL=server.base_url,
                     RAGLINE_EMBEDDINGS="openai:text-embedding-3-small",
                     RAGLINE_LLM="openai:gpt-4o-mini")  # fmt: skip
    request = copy.deepcopy(event("api_query"))
    request["body"] = json.dumps({"question": "Where do kayaks launch from?"})
    response = api.lambda_handler(request, lambda_context)
    body = json.loads(response["body"])
    # THEN the query was embedded by the server and the launch rules are cited
    assert response["statusCode"] == 200, body
    assert server.received(EMBEDDINGS)[-1].body["input"] == ["Where do kayaks launch from?"]
    assert body["answer"] == "From dock B, 8:00 to 18:00 [1]."
    assert "dock B" in body["citations"][0]["text"]
    assert body["usage"]["embedding_tokens"] == 7
