"""The real openai SDK against an OpenAI-compatible server on loopback: chat, embeddings,
usage with cached tokens, throttling, server errors, timeouts, bad keys, and the key
from Secrets Manager."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from ragline.config import Settings
from ragline.embeddings.base import batches as split_into_batches
from ragline.embeddings.openai import OpenAIEmbedder
from ragline.errors import ConfigurationError, ModelError, ModelUnavailableError
from ragline.llm import GenerationRequest, ModelChain, RetryPolicy
from ragline.llm.openai import OpenAIChatModel
from ragline.providers.clients import OpenAIConnection, openai_connection

from tests.support.openai_server import CHAT, EMBEDDINGS, OpenAICompatibleServer, Scripted

REQUEST = GenerationRequest(
    system="Answer from the passages.",
    user="[1] Employees get 25 vacation days.\n\nQuestion: How many vacation days?",
    question="How many vacation days?",
    passages=(),
    abstain_text="The documents do not answer this.",
    max_tokens=200,
)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer(reply="Employees get 25 vacation days [1].") as running:
        monkeypatch.setenv("OPENAI_BASE_URL", running.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        openai_connection.cache_clear()
        yield running
    openai_connection.cache_clear()


def chat_model(name: str = "gpt-4o-mini", timeout: float = 5.0) -> OpenAIChatModel:
    return OpenAIChatModel(name, OpenAIConnection(timeout))


def no_wait(retries: int) -> RetryPolicy:
    return RetryPolicy(max_retries=retries, sleep=lambda _: None)


def test_chat_completion_text_and_usage_come_from_the_server(
    server: OpenAICompatibleServer,
) -> None:
    # WHEN the model answers a request
    completion = chat_model().generate(REQUEST)
    # THEN the text and the token counts (cached included) are the server's
    assert completion.text == "Employees get 25 vacation days [1]."
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (412, 23)
    assert completion.usage.cached_input_tokens == 256 and not completion.usage.estimated
    assert (completion.provider, completion.model) == ("openai", "gpt-4o-mini")
    assert completion.details["finish_reason"] == "stop"
    # AND the server received the system and user parts, the limits and the key
    (request,) = server.received(CHAT)
    assert request.body["model"] == "gpt-4o-mini"
    assert request.body["messages"] == [
        {"role": "system", "content": REQUEST.system},
        {"role": "user", "content": REQUEST.user},
    ]
    assert request.body["max_tokens"] == 200 and request.body["temperature"] == 0.0
    assert request.headers["authorization"] == "Bearer test"


def test_reasoning_models_get_max_completion_tokens(server: OpenAICompatibleServer) -> None:
    chat_model("o3-mini").generate(REQUEST)
    body = server.received(CHAT)[0].body
    assert body["max_completion_tokens"] == 200
    assert "max_tokens" not in body and "temperature" not in body


def test_throttling_is_retried_until_the_server_answers(server: OpenAICompatibleServer) -> None:
    # GIVEN a server that throttles the first request
    server.script(CHAT, Scripted(status=429))
    # WHEN the model is called through the chain (one retry allowed)
    completion = ModelChain((chat_model(),), no_wait(1)).generate(REQUEST)
    # THEN the retry got the answer
    assert completion.text.startswith("Employees get 25")
    assert completion.details["attempts"] == 2 and len(server.received(CHAT)) == 2


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (401, False),
                                                   (400, False)])  # fmt: skip
def test_http_errors_are_classified(
    server: OpenAICompatibleServer, status: int, retryable: bool
) -> None:
    server.script(CHAT, Scripted(status=status))
    with pytest.raises(ModelError, match=f"HTTP {status}") as caught:
        chat_model().generate(REQUEST)
    assert caught.value.retryable is retryable


def test_a_bad_key_is_not_retried(server: OpenAICompatibleServer) -> None:
    # GIVEN a server that only accepts another key
    server.api_key = "the-real-key"
    # WHEN the chain calls it with retries to spare
    with pytest.raises(ModelUnavailableError) as caught:
        ModelChain((chat_model(),), no_wait(3)).generate(REQUEST)
    # THEN it asked once: a retry cannot fix a wrong key
    assert len(server.received(CHAT)) == 1
    assert "HTTP 401" in caught.value.failures[0][1]


def test_a_slow_server_times_out_and_the_retry_succeeds(server: OpenAICompatibleServer) -> None:
    # GIVEN a server whose first reply takes longer than the client waits
    server.script(CHAT, Scripted(delay=2.0))
    model = chat_model(timeout=0.3)
    with pytest.raises(ModelError, match="no response within the timeout") as caught:
        model.generate(REQUEST)
    assert caught.value.retryable
    # WHEN it is slow once more, behind the retry policy
    server.script(CHAT, Scripted(delay=2.0))
    completion, attempts = no_wait(1).run(lambda: model.generate(REQUEST))
    # THEN the second attempt answers
    assert attempts == 2 and completion.usage.output_tokens == 23


def test_a_missing_key_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        OpenAIConnection(5.0)


def test_the_key_comes_from_secrets_manager_and_follows_rotation(
    server: OpenAICompatibleServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.utilities import parameters

    monkeypatch.delenv("OPENAI_API_KEY")
    with mock_aws():
        # GIVEN the key only in a secret (as on AWS), and a server that checks it
        secrets = boto3.client("secretsmanager")
        arn = secrets.create_secret(Name="ragline/openai", SecretString="sk-first")["ARN"]
        server.api_key = "sk-first"
        parameters.clear_caches()
        model = OpenAIChatModel.from_settings("gpt-4o-mini", Settings(openai_secret_arn=arn))
        # WHEN the model is called
        assert model.generate(REQUEST).text.startswith("Employees")
        # THEN after the secret is rotated (and its cache has expired) the new key is used
        secrets.put_secret_value(SecretId=arn, SecretString='{"api_key": "sk-second"}')
        server.api_key = "sk-second"
        parameters.clear_caches()
        assert model.generate(REQUEST).text.startswith("Employees")
        assert [r.headers["authorization"] for r in server.received(CHAT)] == [
            "Bearer sk-first",
            "Bearer sk-second",
        ]


# --- embeddings -----------------------------------------------------------------------------


def test_embeddings_are_batched_with_the_requested_dimensions(
    server: OpenAICompatibleServer,
) -> None:
    # GIVEN an embedder asking for 64 dimensions, limited to 3 inputs a request
    embedder = OpenAIEmbedder("text-embedding-3-small", OpenAIConnection(5.0), dimensions=64)
    embedder.batch_size = 3
    texts = [f"passage number {i} about kayaks" for i in range(7)]
    # WHEN seven texts are embedded
    result = embedder.embed_documents(texts)
    # THEN three requests carried them in order, as floats, at 64 dimensions
    requests = server.received(EMBEDDINGS)
    assert [r.body["input"] for r in requests] == [texts[0:3], texts[3:6], texts[6:7]]
    assert {r.body["dimensions"] for r in requests} == {64}
    assert {r.body["encoding_format"] for r in requests} == {"float"}
    # AND the vectors are the server's, one per text, with its token count
    assert result.vectors.shape == (7, 64) and result.tokens == 7 * 7
    assert embedder.dimensions == 64 and embedder.name == "openai:text-embedding-3-small"


def test_an_unknown_model_tells_its_dimension(server: OpenAICompatibleServer) -> None:
    # GIVEN a model the embedder has no size for (say, one an Ollama server serves)
    embedder = OpenAIEmbedder("nomic-embed-text", OpenAIConnection(5.0))
    # WHEN texts are embedded first
    result = embedder.embed_documents(["a", "b"])
    # THEN the size is the server's, learned without an extra request
    assert result.vectors.shape == (2, 48) and embedder.dimensions == 48
    assert len(server.received(EMBEDDINGS)) == 1
    # AND asking for the size first costs one probe
    fresh = OpenAIEmbedder("nomic-embed-text", OpenAIConnection(5.0))
    assert fresh.dimensions == 48 and len(server.received(EMBEDDINGS)) == 2


def test_embedding_throttling_is_retried(server: OpenAICompatibleServer) -> None:
    server.script(EMBEDDINGS, Scripted(status=429))
    embedder = OpenAIEmbedder(
        "text-embedding-3-small", OpenAIConnection(5.0), dimensions=32, retry=no_wait(2)
    )
    assert embedder.embed_documents(["x"]).vectors.shape == (1, 32)
    assert len(server.received(EMBEDDINGS)) == 2


def batches(texts: list[str]) -> Iterator[list[str]]:
    """The requests the embedder's texts are split into, within the API's two limits."""
    return split_into_batches(
        texts, max_inputs=OpenAIEmbedder.batch_size, max_tokens=OpenAIEmbedder.batch_tokens
    )


def test_batches_respect_both_api_limits() -> None:
    # GIVEN many short texts: the input count limit splits them
    sizes = [len(b) for b in batches(["word"] * 5000)]
    assert sizes == [2048, 2048, 904]
    # GIVEN long texts: the token limit (with its safety margin) splits them
    long_text = "tok " * 70_000  # 70,000 estimated tokens
    sizes = [len(b) for b in batches([long_text] * 7)]
    assert sizes == [3, 3, 1]
    # AND a single text over the limit still goes alone (the API will judge it)
    assert [len(b) for b in batches(["tok " * 400_000, "x"])] == [1, 1]
