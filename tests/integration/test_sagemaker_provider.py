"""SageMaker chat models (both payload styles) and the TEI embedder through moto's
sagemaker-runtime; error classification through botocore's Stubber."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws
from ragline.embeddings.sagemaker import SageMakerEmbedder
from ragline.errors import ModelError, ModelUnavailableError, ModelWarmingUpError
from ragline.llm import GenerationRequest
from ragline.llm.chain import ModelChain
from ragline.llm.sagemaker import SageMakerChatModel

from tests.support.models import ScriptedModel
from tests.support.sagemaker import endpoint_payloads, queue_endpoint_results

REQUEST = GenerationRequest(
    system="Answer from the passages.",
    user="[1] Kayaks launch from dock B.\n\nQuestion: Where do kayaks launch?",
    question="Where do kayaks launch?",
    passages=(),
    abstain_text="The documents do not answer this.",
    max_tokens=128,
)


@pytest.fixture
def runtime() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sagemaker-runtime", region_name="us-east-1")


def test_messages_payload_round_trip(runtime: Any) -> None:
    # GIVEN an endpoint serving the OpenAI chat shape (vLLM, LMI, TGI Messages API)
    queue_endpoint_results({
        "choices": [{"index": 0, "message": {"role": "assistant",
                                             "content": "From dock B [1]."},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 57, "completion_tokens": 6, "total_tokens": 63},
    })  # fmt: skip
    # WHEN the model answers
    completion = SageMakerChatModel("llm-endpoint", runtime, "messages").generate(REQUEST)
    # THEN text and token counts are the container's
    assert completion.text == "From dock B [1]."
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (57, 6)
    assert not completion.usage.estimated
    assert (completion.provider, completion.model) == ("sagemaker", "llm-endpoint")
    # AND the endpoint received the chat messages and the limits
    assert endpoint_payloads() == [
        {
            "messages": [
                {"role": "system", "content": REQUEST.system},
                {"role": "user", "content": REQUEST.user},
            ],
            "max_tokens": 128,
            "temperature": 0.0,
        }
    ]


def test_messages_without_usage_are_estimated(runtime: Any) -> None:
    queue_endpoint_results({"choices": [{"message": {"content": "From dock B [1]."}}]})
    usage = SageMakerChatModel("llm-endpoint", runtime, "messages").generate(REQUEST).usage
    assert usage.estimated and usage.input_tokens > 10 and usage.output_tokens > 0


def test_tgi_payload_round_trip(runtime: Any) -> None:
    # GIVEN an endpoint serving TGI's generate shape with details
    queue_endpoint_results([{
        "generated_text": "Kayaks launch from dock B [1].",
        "details": {"finish_reason": "eos_token", "generated_tokens": 9, "seed": None},
    }])  # fmt: skip
    # WHEN the model answers
    completion = SageMakerChatModel("tgi-endpoint", runtime, "tgi").generate(REQUEST)
    # THEN the text is TGI's, the output count TGI's, the input count an estimate
    assert completion.text == "Kayaks launch from dock B [1]."
    assert completion.usage.output_tokens == 9 and completion.usage.estimated
    assert completion.usage.input_tokens > 10
    assert completion.details["finish_reason"] == "eos_token"
    # AND the endpoint received one prompt and greedy parameters asking for details
    (payload,) = endpoint_payloads()
    assert payload["inputs"] == f"{REQUEST.system}\n\n{REQUEST.user}"
    assert payload["parameters"] == {
        "max_new_tokens": 128,
        "details": True,
        "return_full_text": False,
        "do_sample": False,
    }


def test_tgi_prefill_gives_the_input_count(runtime: Any) -> None:
    queue_endpoint_results({
        "generated_text": "Dock B [1].",
        "details": {"generated_tokens": 4, "prefill": [{"id": i} for i in range(31)]},
    })  # fmt: skip
    usage = SageMakerChatModel("tgi-endpoint", runtime, "tgi").generate(REQUEST).usage
    assert (usage.input_tokens, usage.output_tokens, usage.estimated) == (31, 4, False)


def test_a_response_of_the_other_style_names_the_setting(runtime: Any) -> None:
    queue_endpoint_results([{"generated_text": "hello"}])
    with pytest.raises(ModelError, match="RAGLINE_SAGEMAKER_PAYLOAD"):
        SageMakerChatModel("llm-endpoint", runtime, "messages").generate(REQUEST)


def test_tei_embeddings(runtime: Any) -> None:
    # GIVEN a text-embeddings container returning one vector per input
    queue_endpoint_results([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0]])
    embedder = SageMakerEmbedder("tei-endpoint", runtime)
    # WHEN two texts are embedded
    result = embedder.embed_documents(["first text", "second text"])
    # THEN the vectors are the container's, normalized, and the size is learned
    assert result.vectors == pytest.approx(np.array([[0.6, 0.8, 0.0], [0.0, 0.0, 1.0]]))
    assert embedder.dimensions == 3 and result.estimated_tokens and result.tokens > 0
    assert endpoint_payloads() == [{"inputs": ["first text", "second text"]}]


# --- errors, as the runtime reports them ---------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "fields", "retryable"),
    [
        ("ThrottlingException", 400, {}, True),
        ("ServiceUnavailable", 503, {}, True),
        ("ModelNotReadyException", 429, {}, True),
        ("ModelError", 424, {"OriginalStatusCode": 503}, True),
        ("ModelError", 424, {"OriginalStatusCode": 400}, False),
        ("ValidationError", 400, {}, False),
    ],
)
def test_endpoint_errors_are_classified(
    code: str, status: int, fields: dict[str, Any], retryable: bool
) -> None:
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error("invoke_endpoint", code, "it failed", status, modeled_fields=fields)
        with pytest.raises(ModelError, match=code) as caught:
            SageMakerChatModel("llm-endpoint", client).generate(REQUEST)
    assert caught.value.retryable is retryable


def test_tei_reranker_round_trip(runtime: Any) -> None:
    from ragline.rerankers.sagemaker import SageMakerReranker

    # GIVEN a TEI reranker endpoint answering every text, best first, as a bare list
    queue_endpoint_results([{"index": 2, "score": 0.98}, {"index": 0, "score": 0.31},
                            {"index": 1, "score": 0.02}])  # fmt: skip
    texts = ["Kayaks need a permit.", "The cafe opens at 9.", "Kayaks launch from dock B."]
    # WHEN the two best are asked for
    result = SageMakerReranker("rerank-endpoint", runtime).rerank(
        "Where do kayaks launch?", texts, 2
    )
    # THEN they are the endpoint's best two, and it was sent TEI's request
    assert [(r.index, r.score) for r in result.ranked] == [(2, 0.98), (0, 0.31)]
    assert endpoint_payloads() == [{"query": "Where do kayaks launch?", "texts": texts}]


def test_tei_reranker_malformed_answer_is_a_model_error(runtime: Any) -> None:
    from ragline.rerankers.sagemaker import SageMakerReranker

    # GIVEN an endpoint that serves embeddings, not a ranking
    queue_endpoint_results([[0.1, 0.2], [0.3, 0.4]])
    # WHEN asked to rerank THEN the answer is refused as a ModelError
    with pytest.raises(ModelError, match="not a rerank answer"):
        SageMakerReranker("embed-endpoint", runtime).rerank("q", ["a", "b"], 2)


# --- an inference component scaled to zero -------------------------------------------------

# SageMaker's answer while an inference component has no copy (0 after scaling in).
NO_CAPACITY = (
    "Inference Component has no capacity to process this request. ApplicationAutoScaling "
    "may be in-progress (if configured) or try to increase the capacity by invoking "
    "UpdateInferenceComponentRuntimeConfig API."
)


def _scaled_to_zero_client(stub_calls: int = 1) -> tuple[Any, Stubber]:
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    stub = Stubber(client)
    for _ in range(stub_calls):
        stub.add_client_error(
            "invoke_endpoint",
            "ValidationError",
            NO_CAPACITY,
            400,
            expected_params={
                "EndpointName": "ragline-llm",
                "InferenceComponentName": "ragline-llm-ic",
                "ContentType": "application/json",
                "Accept": "application/json",
                "Body": ANY,
            },
        )
    return client, stub


def test_a_component_without_copies_is_warming_up_not_retried() -> None:
    # GIVEN a model served as an inference component that has scaled to zero
    client, stub = _scaled_to_zero_client()
    model = SageMakerChatModel("ragline-llm", client, inference_component="ragline-llm-ic")
    # WHEN the chain (with retries) asks it alone
    with stub, pytest.raises(ModelUnavailableError) as caught:
        ModelChain((model,)).generate(REQUEST)
    # THEN the invocation named the component, was tried once (a copy takes minutes)
    stub.assert_no_pending_responses()
    # AND the caller is told the model is warming up and when to come back
    assert "warming up" in str(caught.value)
    assert caught.value.retry_after_seconds == ModelWarmingUpError.retry_after_seconds


def test_a_component_without_copies_hands_over_to_the_fallback() -> None:
    # GIVEN the scaled-to-zero component and a fallback model
    client, stub = _scaled_to_zero_client()
    model = SageMakerChatModel("ragline-llm", client, inference_component="ragline-llm-ic")
    fallback = ScriptedModel("fake:fallback", "From dock B [1].")
    # WHEN the chain answers
    with stub:
        completion = ModelChain((model, fallback)).generate(REQUEST)
    # THEN the fallback wrote the answer, after one try of the component
    assert completion.text == "From dock B [1]." and completion.details["fallback"] is True
    assert completion.details["failed"] == ["sagemaker:ragline-llm"]
    stub.assert_no_pending_responses()


def test_other_validation_errors_are_not_warming_up() -> None:
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error("invoke_endpoint", "ValidationError", "Endpoint x not found", 400)
        with pytest.raises(ModelError) as caught:
            SageMakerChatModel("x", client).generate(REQUEST)
    assert not isinstance(caught.value, ModelWarmingUpError)
