"""Bedrock Converse and Titan embeddings through botocore's Stubber (moto has no Converse)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from ragline.embeddings.bedrock import BedrockEmbedder
from ragline.errors import ConfigurationError, ModelError
from ragline.llm import GenerationRequest, ModelChain, RetryPolicy
from ragline.llm.bedrock import BedrockChatModel

MODEL_ID = "anthropic.claude-3-haiku-20240307-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"
REQUEST = GenerationRequest(
    system="Answer from the passages.",
    user="[1] Dock B opens at 8.\n\nQuestion: When does dock B open?",
    question="When does dock B open?",
    passages=(),
    abstain_text="The documents do not answer this.",
    max_tokens=300,
)
CONVERSE_PARAMS = {
    "modelId": MODEL_ID,
    "messages": [{"role": "user", "content": [{"text": REQUEST.user}]}],
    "system": [{"text": REQUEST.system}],
    "inferenceConfig": {"maxTokens": 300, "temperature": 0.0},
}
CONVERSE_RESPONSE = {
    "output": {"message": {"role": "assistant", "content": [{"text": "At 8 [1]."}]}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 40, "outputTokens": 5, "totalTokens": 1069,
              "cacheReadInputTokens": 1024},
    "metrics": {"latencyMs": 321},
}  # fmt: skip


@pytest.fixture
def bedrock() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def test_converse_request_and_usage(bedrock: tuple[Any, Stubber]) -> None:
    client, stub = bedrock
    # GIVEN Bedrock expecting the Converse request and answering with cache reads
    stub.add_response("converse", CONVERSE_RESPONSE, CONVERSE_PARAMS)
    # WHEN the model answers
    completion = BedrockChatModel(MODEL_ID, client).generate(REQUEST)
    # THEN text and usage are Bedrock's; input counts every prompt token, cached included
    assert completion.text == "At 8 [1]."
    assert completion.usage.input_tokens == 40 + 1024
    assert completion.usage.cached_input_tokens == 1024
    assert completion.usage.output_tokens == 5 and not completion.usage.estimated
    assert (completion.provider, completion.model) == ("bedrock", MODEL_ID)
    assert completion.details["finish_reason"] == "end_turn"


def test_throttling_then_success_is_retried(bedrock: tuple[Any, Stubber]) -> None:
    client, stub = bedrock
    # GIVEN a throttled first call, then an answer
    stub.add_client_error("converse", "ThrottlingException", "Too many requests", 429,
                          expected_params=CONVERSE_PARAMS)  # fmt: skip
    stub.add_response("converse", CONVERSE_RESPONSE, CONVERSE_PARAMS)
    waits: list[float] = []
    chain = ModelChain((BedrockChatModel(MODEL_ID, client),), RetryPolicy(2, sleep=waits.append))
    # WHEN the chain generates
    completion = chain.generate(REQUEST)
    # THEN the second attempt answered after one jittered wait
    assert completion.text == "At 8 [1]." and completion.details["attempts"] == 2
    assert len(waits) == 1 and 0 <= waits[0] <= 0.25


def test_access_denied_is_not_retried(bedrock: tuple[Any, Stubber]) -> None:
    client, stub = bedrock
    stub.add_client_error("converse", "AccessDeniedException", "no model access", 403)
    with pytest.raises(ModelError, match="AccessDeniedException") as caught:
        BedrockChatModel(MODEL_ID, client).generate(REQUEST)
    assert caught.value.retryable is False


def titan_body(vector: list[float], tokens: int) -> StreamingBody:
    data = json.dumps({"embedding": vector, "inputTextTokenCount": tokens}).encode()
    return StreamingBody(io.BytesIO(data), len(data))


def test_titan_embeddings_one_call_per_text(bedrock: tuple[Any, Stubber]) -> None:
    client, stub = bedrock
    # GIVEN Titan v2 at 256 dimensions, expecting one normalized request per text
    for text, tokens in (("alpha", 3), ("beta gamma", 4)):
        body = json.dumps({"inputText": text, "dimensions": 256, "normalize": True})
        stub.add_response(
            "invoke_model",
            {"body": titan_body([1.0] + [0.0] * 255, tokens), "contentType": "application/json"},
            {"modelId": TITAN, "body": body, "contentType": "application/json",
             "accept": "application/json"},
        )  # fmt: skip
    embedder = BedrockEmbedder(TITAN, client, dimensions=256, workers=1)
    # WHEN both texts are embedded
    result = embedder.embed_documents(["alpha", "beta gamma"])
    # THEN there is a 256-dimensional vector per text and Titan's token counts add up
    assert result.vectors.shape == (2, 256) and result.tokens == 7
    assert embedder.name == f"bedrock:{TITAN}" and embedder.dimensions == 256


def test_titan_throttling_is_retried(bedrock: tuple[Any, Stubber]) -> None:
    client, stub = bedrock
    stub.add_client_error("invoke_model", "ThrottlingException", "slow down", 429)
    stub.add_response("invoke_model", {"body": titan_body([0.5] * 1024, 2),
                                       "contentType": "application/json"})  # fmt: skip
    embedder = BedrockEmbedder(TITAN, client, retry=RetryPolicy(1, sleep=lambda _: None))
    assert embedder.embed_documents(["x"]).vectors.shape == (1, 1024)


def test_titan_dimensions_are_checked_at_configuration() -> None:
    with pytest.raises(ConfigurationError, match="256, 512, 1024"):
        BedrockEmbedder(TITAN, client=None, dimensions=300)
    with pytest.raises(ConfigurationError, match="not supported"):
        BedrockEmbedder("cohere.embed-english-v3", client=None)
