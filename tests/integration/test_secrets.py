"""No secret in a log line or a response: an upstream that quotes the key it was sent
(in a 401, say) must not put that key anywhere ragline writes."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from ragline.config import Settings
from ragline.embeddings.openai import OpenAIEmbedder
from ragline.errors import ModelError
from ragline.ingest import Ingestor
from ragline.providers.clients import OpenAIConnection
from ragline.store import get_store

from tests.support.openai_server import CHAT, OpenAICompatibleServer

# The shape of a real project key, and the key the server expects instead.
LEAKED_KEY = "sk-proj-Zx81Qm4LrT0vB7nKp2Wc9YdE5sHa3Uf6"
SERVER_KEY = "sk-the-right-one-0000000000"
HANDBOOK = b"# Leave policy\n\nEmployees get 25 vacation days each year.\n"


@pytest.fixture(scope="module")
def seeded(database_url: str) -> str:
    Ingestor.from_settings(Settings(database_url=database_url)).ingest_bytes(
        "s3://docs/handbook/leave.md", HANDBOOK
    )
    get_store.cache_clear()
    return database_url


@pytest.fixture
def server() -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer(reply="25 days [1].", api_key=SERVER_KEY) as running:
        yield running


def post(api: ModuleType, event: dict[str, Any], context: Any, body: dict[str, Any]) -> Any:
    request = copy.deepcopy(event)
    request["body"] = json.dumps(body)
    return api.lambda_handler(request, context)


def test_a_401_quoting_the_key_leaves_it_out_of_logs_and_the_response(
    seeded: str,
    server: OpenAICompatibleServer,
    cold_start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the query Lambda holding a key the upstream refuses, quoting it in its 401
    api = cold_start(
        "query",
        RAGLINE_DATABASE_URL=seeded,
        OPENAI_BASE_URL=server.base_url,
        OPENAI_API_KEY=LEAKED_KEY,
        RAGLINE_LLM="openai:gpt-4o-mini",
        RAGLINE_LLM_MAX_RETRIES="0",
    )
    # WHEN a question is asked
    with caplog.at_level(logging.DEBUG):
        response = post(api, event("api_query"), lambda_context, {"question": "vacation days?"})
    # THEN the upstream did quote the key (the reproducer holds)
    assert len(server.received(CHAT)) == 1
    # AND the caller gets the 503 with the model's failure, without the key
    assert response["statusCode"] == 503
    assert LEAKED_KEY not in response["body"]
    # AND the failure was logged, redacted
    logged = caplog.text + "".join(capsys.readouterr())
    assert "Incorrect API key provided: [redacted]" in caplog.text
    assert LEAKED_KEY not in logged
    assert LEAKED_KEY[3:] not in logged  # not even without its prefix


def test_a_failing_embedding_call_logged_with_its_traceback_keeps_the_key_out(
    server: OpenAICompatibleServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN the openai embedder with a key the upstream refuses, quoting it in its 401
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", LEAKED_KEY)
    embedder = OpenAIEmbedder("text-embedding-3-small", OpenAIConnection(5.0))
    # WHEN the call fails and the error is logged with its traceback, as the API does
    with pytest.raises(ModelError) as failure:
        embedder.embed_query("vacation days")
    logging.getLogger("ragline.test").error("request failed", exc_info=failure.value)
    # THEN neither the message nor the traceback (its causes included) holds the key
    assert "HTTP 401" in str(failure.value)
    assert LEAKED_KEY not in str(failure.value)
    assert LEAKED_KEY not in caplog.text
