"""EMF documents: one per query or object, valid by the specification."""

from __future__ import annotations

import pytest
from ragline.outcomes import QuerySignals
from ragline.telemetry.metrics import IngestSignals, MetricsEmitter

from tests.support.emf import check_emf, dimension_sets, emf_documents, metric_units, value

SIGNALS = QuerySignals(
    provider="openai",
    model="gpt-4o-mini",
    prompt="answer@v1",
    profile="simple",
    input_tokens=812,
    output_tokens=64,
    cached_input_tokens=512,
    embedding_tokens=9,
    cost_usd=0.000123,
    retrieve_ms=41.5,
    generate_ms=630.25,
    total_ms=672.0,
    chunks_retrieved=5,
    top_score=0.71,
    abstained=False,
    needs_review=True,
    fallback=False,
)


@pytest.fixture(autouse=True)
def emf_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)


def test_a_query_is_one_document_with_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    MetricsEmitter("Ragline", "ragline").query(SIGNALS)
    documents = emf_documents(capsys.readouterr().out)
    assert len(documents) == 1
    doc = documents[0]
    check_emf(doc)
    assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Ragline"
    assert dimension_sets(doc) == [
        ["service"],
        ["service", "Provider", "Model", "Prompt", "Profile"],
    ]
    assert (doc["service"], doc["Provider"], doc["Model"], doc["Prompt"], doc["Profile"]) == (
        "ragline",
        "openai",
        "gpt-4o-mini",
        "answer@v1",
        "simple",
    )
    units = metric_units(doc)
    assert units == {
        "InputTokens": "Count",
        "OutputTokens": "Count",
        "CachedInputTokens": "Count",
        "EmbeddingTokens": "Count",
        "CostUSD": "None",
        "RetrieveLatency": "Milliseconds",
        "GenerateLatency": "Milliseconds",
        "TotalLatency": "Milliseconds",
        "ChunksRetrieved": "Count",
        "TopScore": "None",
        "Abstained": "Count",
        "NeedsReview": "Count",
        "InstructionEcho": "Count",
        "Fallback": "Count",
    }
    figures = {n: value(doc, n) for n in units}
    assert (figures["InputTokens"], figures["CachedInputTokens"]) == (812, 512)
    assert figures["CostUSD"] == 0.000123 and figures["TopScore"] == 0.71
    assert (figures["NeedsReview"], figures["Abstained"], figures["GenerateLatency"]) == (
        1,
        0,
        630.25,
    )


def test_unpriced_cost_is_absent_not_zero(capsys: pytest.CaptureFixture[str]) -> None:
    from dataclasses import replace

    MetricsEmitter("Ragline", "ragline").query(replace(SIGNALS, cost_usd=None, top_score=None))
    (doc,) = emf_documents(capsys.readouterr().out)
    check_emf(doc)
    assert "CostUSD" not in doc and "CostUSD" not in metric_units(doc)
    assert "TopScore" not in doc


@pytest.mark.parametrize(
    ("status", "counter", "written"),
    [
        ("ingested", "DocumentsIngested", 7),
        ("unchanged", "DocumentsSkipped", 0),
        ("skipped", "DocumentsSkipped", 0),
        ("failed", "DocumentsFailed", 0),
        ("deleted", "DocumentsDeleted", 0),
    ],
)
def test_an_object_is_one_document(
    capsys: pytest.CaptureFixture[str], status: str, counter: str, written: int
) -> None:
    MetricsEmitter("Custom", "ragline").ingest(IngestSignals(status, 7, 300, 0.000006, 12.5))
    (doc,) = emf_documents(capsys.readouterr().out)
    check_emf(doc)
    assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Custom"
    assert dimension_sets(doc) == [["service"]]
    assert value(doc, counter) == 1 and value(doc, "ChunksWritten") == written
    assert value(doc, "IngestLatency") == 12.5 and value(doc, "EmbeddingCostUSD") == 0.000006
    assert set(metric_units(doc)) == {
        counter,
        "ChunksWritten",
        "EmbeddingTokens",
        "EmbeddingCostUSD",
        "IngestLatency",
    }


def test_nothing_for_an_absent_object(capsys: pytest.CaptureFixture[str]) -> None:
    MetricsEmitter("Ragline", "ragline").ingest(IngestSignals("absent", 0, 0, 0.0, 1.0))
    assert emf_documents(capsys.readouterr().out) == []


def test_feedback_counts_by_rating(capsys: pytest.CaptureFixture[str]) -> None:
    MetricsEmitter("Ragline", "ragline").feedback("down")
    (doc,) = emf_documents(capsys.readouterr().out)
    check_emf(doc)
    assert value(doc, "Feedback") == 1 and doc["Rating"] == "down"
