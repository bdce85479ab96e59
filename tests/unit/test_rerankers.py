"""Rerankers: the registry, the Bedrock Rerank API through botocore's Stubber, a /rerank
server on loopback, the rerank step of retrieval, and what reranking costs."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from ragline.config import Settings
from ragline.errors import ConfigurationError, ModelError
from ragline.providers.retry import RetryPolicy
from ragline.rerankers import Ranked, create_reranker
from ragline.rerankers.base import parse_ranking
from ragline.rerankers.bedrock import BedrockReranker
from ragline.rerankers.http import HttpReranker
from ragline.retrieval import Retrieval, Retriever
from ragline.store import RetrievedChunk
from ragline.telemetry.pricing import PriceTable

from tests.support.rerank_server import RerankServer, Scripted, overlap_score

AMAZON_RERANK = "amazon.rerank-v1:0"
AMAZON_RERANK_ARN = f"arn:aws:bedrock:us-east-1::foundation-model/{AMAZON_RERANK}"
QUERY = "how do I undo a commit"
DOCUMENTS = [
    "git branch lists, creates or deletes branches",
    "git revert: undo a commit by recording a new commit",
    "git log shows the commit history",
]
NO_WAIT = RetryPolicy(max_retries=1, sleep=lambda _: None)


def _chunk(n: int, text: str, score: float) -> RetrievedChunk:
    return RetrievedChunk(
        chunk_id=n, document_id=uuid.UUID(int=n), source=f"s3://docs/{n}.html", title="Git",
        section="", text=text, token_count=10, score=score, similarity=0.5 - n / 100,
    )  # fmt: skip


FUSED = Retrieval([_chunk(i, text, 0.03 - i / 1000) for i, text in enumerate(DOCUMENTS)], 7)


# --- the registry ---------------------------------------------------------------------------


def test_none_is_the_default_and_builds_no_reranker() -> None:
    # GIVEN the default settings THEN there is no reranker, and no SDK to load for one
    assert Settings().reranker == "none"
    assert create_reranker("none", Settings()) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cohere:rerank-v3.5", "unknown reranker provider 'cohere'.*known: none, bedrock, http"),
        ("bedrock", "needs a model: bedrock:MODEL"),
        ("http:bge-reranker-base", "needs RAGLINE_RERANKER_URL"),
    ],
)
def test_bad_reranker_settings_fail_at_cold_start_naming_the_fix(spec: str, message: str) -> None:
    # GIVEN a reranker spec that cannot work WHEN built THEN the error says why
    with pytest.raises(ConfigurationError, match=message):
        create_reranker(spec, Settings())


def test_settings_read_the_reranker_variables() -> None:
    settings = Settings.from_env({
        "RAGLINE_RERANKER": "http:bge-reranker-base", "RAGLINE_RERANKER_URL": "http://tei:80",
        "RAGLINE_RERANK_DEPTH": "50", "RAGLINE_RERANK_TIMEOUT_SECONDS": "2.5",
    })  # fmt: skip
    assert (settings.reranker, settings.reranker_url) == ("http:bge-reranker-base", "http://tei:80")
    assert (settings.rerank_depth, settings.rerank_timeout_seconds) == (50, 2.5)
    with pytest.raises(ConfigurationError, match="RAGLINE_RERANK_DEPTH"):
        Settings.from_env({"RAGLINE_RERANK_DEPTH": "0"})
    with pytest.raises(ConfigurationError, match="RAGLINE_RERANKER_URL"):
        Settings.from_env({"RAGLINE_RERANKER_URL": "tei:80"})


# --- checking an answer ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("not a list", "expected a list"),
        ([(0, 0.9), (3, 0.1)], "index 3 is not one of 3"),
        ([(0, 0.9), (0, 0.8)], "index 0 is not one of 3"),
        ([("1", 0.9), (0, 0.8)], "index '1'"),
        ([(0, "high"), (1, 0.8)], "no numeric score"),
        ([(0, 0.9)], "1 results for 3 documents"),
    ],
)
def test_a_malformed_ranking_is_a_model_error(rows: Any, message: str) -> None:
    with pytest.raises(ModelError, match=message) as raised:
        parse_ranking(rows, documents=3, wanted=2, what="http:test")
    assert not raised.value.retryable


def test_a_ranking_comes_back_best_first() -> None:
    ranked = parse_ranking([(2, 0.1), (1, 0.7), (0, 0.3)], documents=3, wanted=3, what="t")
    assert ranked == [Ranked(1, 0.7), Ranked(0, 0.3), Ranked(2, 0.1)]


# --- Bedrock --------------------------------------------------------------------------------


@pytest.fixture
def agent_runtime() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("bedrock-agent-runtime", region_name="us-east-1")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def _rerank_request(documents: list[str], results: int) -> dict[str, Any]:
    return {
        "queries": [{"type": "TEXT", "textQuery": {"text": QUERY}}],
        "sources": [
            {"type": "INLINE",
             "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": text}}}
            for text in documents
        ],
        "rerankingConfiguration": {
            "type": "BEDROCK_RERANKING_MODEL",
            "bedrockRerankingConfiguration": {
                "modelConfiguration": {"modelArn": AMAZON_RERANK_ARN},
                "numberOfResults": results,
            },
        },
    }  # fmt: skip


def test_bedrock_rerank_request_and_order(agent_runtime: tuple[Any, Stubber]) -> None:
    client, stub = agent_runtime
    # GIVEN Bedrock expecting the query, the passages inline and the model's ARN
    stub.add_response(
        "rerank",
        {"results": [{"index": 1, "relevanceScore": 0.93}, {"index": 2, "relevanceScore": 0.2}]},
        _rerank_request(DOCUMENTS, 2),
    )
    # WHEN the two best of three are asked for
    result = BedrockReranker(AMAZON_RERANK, client).rerank(QUERY, DOCUMENTS, 2)
    # THEN they come back in Bedrock's order with its scores, one billed query used
    assert result.ranked == [Ranked(1, 0.93), Ranked(2, 0.2)]
    assert (result.documents, result.queries) == (3, 1)
    assert result.latency_ms >= 0


def test_bedrock_throttling_is_retried_once(agent_runtime: tuple[Any, Stubber]) -> None:
    client, stub = agent_runtime
    # GIVEN Bedrock throttling the first call, then answering
    stub.add_client_error("rerank", "ThrottlingException", http_status_code=429)
    stub.add_response("rerank", {"results": [{"index": 0, "relevanceScore": 0.5}]})
    # WHEN one result is asked for THEN the retry gets it
    reranker = BedrockReranker(AMAZON_RERANK, client, retry=NO_WAIT)
    assert reranker.rerank(QUERY, DOCUMENTS[:1], 1).ranked == [Ranked(0, 0.5)]


def test_bedrock_validation_errors_are_not_retried(agent_runtime: tuple[Any, Stubber]) -> None:
    client, stub = agent_runtime
    stub.add_client_error("rerank", "AccessDeniedException", "no access", http_status_code=403)
    with pytest.raises(ModelError, match="AccessDeniedException") as raised:
        BedrockReranker(AMAZON_RERANK, client, retry=NO_WAIT).rerank(QUERY, DOCUMENTS, 2)
    assert not raised.value.retryable


# --- an HTTP /rerank server -----------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[RerankServer]:
    with RerankServer() as running:
        yield running


def _http(server: RerankServer, **options: Any) -> HttpReranker:
    return HttpReranker("bge-reranker-base", server.base_url, retry=NO_WAIT, **options)


def test_http_request_and_cohere_style_answer(server: RerankServer) -> None:
    # GIVEN a Cohere/vLLM-style server that wants a bearer key
    server.api_key = "k-123"
    # WHEN the best two are asked for
    result = _http(server, api_key="k-123").rerank(QUERY, DOCUMENTS, 2)
    # THEN the revert passage (every query word but "how", "do", "I") ranks first
    assert [r.index for r in result.ranked] == [1, 2]
    assert result.ranked[0].score > result.ranked[1].score
    # AND the server got one request naming the model, in both field names
    (request,) = server.requests
    assert request.path == "/rerank" and request.headers["Authorization"] == "Bearer k-123"
    assert request.body == {"model": "bge-reranker-base", "query": QUERY,
                            "documents": DOCUMENTS, "texts": DOCUMENTS, "top_n": 2}  # fmt: skip


def test_http_reads_tei_bare_list_answers() -> None:
    # GIVEN a TEI server, which answers every text as a bare list
    with RerankServer(shape="tei") as tei:
        result = _http(tei).rerank(QUERY, DOCUMENTS, 2)
    # THEN the order is the same and only the two best are kept
    assert [r.index for r in result.ranked] == [1, 2]


def test_http_5xx_is_retried_and_then_answered(server: RerankServer) -> None:
    server.script(Scripted(status=503))
    assert [r.index for r in _http(server).rerank(QUERY, DOCUMENTS, 1).ranked] == [1]
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("scripted", "message", "retryable"),
    [
        (Scripted(status=401), "HTTP 401", False),
        (Scripted(body="<html>bad gateway</html>"), "not JSON", False),
        (Scripted(body='{"results": "none"}'), "not a rerank answer", False),
        (Scripted(body='[{"index": 7, "score": 1.0}]'), "index 7", False),
        (Scripted(delay=0.5), "timed out", True),
    ],
)
def test_http_failures_are_model_errors(
    server: RerankServer, scripted: Scripted, message: str, retryable: bool
) -> None:
    # GIVEN a server failing in one way, every time
    server.script(scripted, scripted)
    reranker = _http(server, timeout_seconds=0.2)
    # WHEN asked THEN the failure is a ModelError saying what went wrong
    with pytest.raises(ModelError, match=message) as raised:
        reranker.rerank(QUERY, DOCUMENTS, 2)
    assert raised.value.retryable is retryable


# --- the rerank step of retrieval -----------------------------------------------------------


def test_the_rerank_step_reorders_and_rescores_the_fused_candidates(server: RerankServer) -> None:
    # GIVEN fused candidates in the search's order, the revert passage second
    retriever = Retriever(store=None, embedder=None, reranker=_http(server))  # type: ignore[arg-type]
    # WHEN the best two are reranked
    reranked = retriever.rerank(QUERY, FUSED, 2)
    # THEN the reranker's best comes first, scored by it, its cosine similarity kept
    assert [c.chunk_id for c in reranked.chunks] == [1, 2]
    assert reranked.chunks[0].score == overlap_score(QUERY, DOCUMENTS[1]) == 0.5
    assert reranked.chunks[0].similarity == FUSED.chunks[1].similarity
    # AND the reranker read each passage under its title
    assert server.requests[0].body["documents"][1] == f"Git\n{DOCUMENTS[1]}"
    # AND what it did is kept for the response and the ledger
    assert reranked.reranking is not None and not reranked.reranking.failed
    reranking = reranked.reranking
    assert (reranking.reranker, reranking.documents) == ("http:bge-reranker-base", 3)
    assert reranked.embedding_tokens == 7


def test_a_failing_reranker_keeps_the_search_order_with_a_warning(
    server: RerankServer, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a reranker server that fails every attempt
    server.script(Scripted(status=500), Scripted(status=500))
    retriever = Retriever(store=None, embedder=None, reranker=_http(server))  # type: ignore[arg-type]
    # WHEN the step runs
    with caplog.at_level(logging.WARNING, logger="ragline.retrieval"):
        reranked = retriever.rerank(QUERY, FUSED, 2)
    # THEN the fused top two come back unchanged, marked failed, and a warning says why
    assert reranked.chunks == FUSED.chunks[:2]
    assert reranked.reranking is not None and reranked.reranking.failed
    assert "reranker http:bge-reranker-base failed" in caplog.text and "HTTP 500" in caplog.text


# --- cost -----------------------------------------------------------------------------------


def test_rerank_prices_follow_the_bedrock_price_list() -> None:
    table = PriceTable.load()
    # GIVEN Amazon Rerank 1.0 at $1.00 and Cohere Rerank 3.5 at $2.00 per 1,000 queries
    assert table.rerank_cost(f"bedrock:{AMAZON_RERANK}", 1).usd == pytest.approx(0.001)
    assert table.rerank_cost("bedrock:cohere.rerank-v3-5:0", 2).usd == pytest.approx(0.004)
    # AND a server the table does not name is unpriced, not free
    assert table.rerank_cost("http:bge-reranker-base", 1).usd is None
    # AND a SageMaker endpoint costs its instance time, marked as an estimate
    cost = table.rerank_cost("sagemaker:rerank", 1, seconds=3.6, instance_type="ml.g5.xlarge")
    assert cost.usd == pytest.approx(1.408 / 1000) and cost.estimated


def test_a_query_is_billed_per_started_hundred_documents() -> None:
    from ragline.rerankers import billed_queries

    assert [billed_queries(n) for n in (1, 20, 100, 101, 250)] == [1, 1, 1, 2, 3]
