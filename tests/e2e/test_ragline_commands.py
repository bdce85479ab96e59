"""The other ``ragline`` commands as a user runs them: ``demo``, ``ingest`` and ``ask``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.support import run_ragline
from tests.support.openai_server import OpenAICompatibleServer

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_demo_exits_zero_and_prints_answers_citing_the_examples(scratch: Path) -> None:
    # GIVEN the example documents and questions
    documents = sorted(path.name for path in (EXAMPLES / "docs").iterdir())
    questions = json.loads((EXAMPLES / "questions.json").read_text())

    # WHEN `ragline demo` runs (strict: every answer must cite its expected document)
    result = run_ragline("demo", "--data-dir", str(scratch / "demo"), "--strict")

    # THEN it exits 0 after printing an answer per question, citing every example document
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout
    assert output.count("\nQ: ") == len(questions)
    for name in documents:
        assert f"s3://ragline-documents/{name}" in output
    assert f"{len(questions)}/{len(questions)} answers met their expectation" in output
    assert "cost $" in output and "Latency:" in output


def test_demo_fails_clearly_when_a_document_cannot_be_ingested(scratch: Path) -> None:
    # GIVEN examples where one document is not valid UTF-8
    examples = scratch / "examples"
    (examples / "docs").mkdir(parents=True)
    (examples / "docs" / "good.md").write_text("# Good\n\nThe good document is fine.\n")
    (examples / "docs" / "broken.md").write_bytes(b"\xff\xfe\x00\x01 binary")
    (examples / "questions.json").write_text('[{"question": "Is the good document fine?"}]')

    # WHEN the demo runs on them
    result = run_ragline("demo", "--data-dir", str(scratch / "demo"), "--examples", str(examples))

    # THEN it exits non-zero and names the document and the reason
    assert result.returncode == 1, result.stdout + result.stderr
    assert "s3://ragline-documents/broken.md: failed" in result.stdout


def test_ingest_then_ask_in_process(scratch: Path) -> None:
    # GIVEN a directory with the examples, an unsupported file, a corrupt file and a hidden one
    corpus = scratch / "corpus"
    (corpus / "handbook").mkdir(parents=True)
    for path in (EXAMPLES / "docs").iterdir():
        (corpus / "handbook" / path.name).write_bytes(path.read_bytes())
    (corpus / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (corpus / "broken.md").write_bytes(b"\xff\xfe\x80 not text")
    (corpus / ".hidden").mkdir()
    (corpus / ".hidden" / "notes.md").write_text("# Hidden\n\nNever ingested.\n")
    data_dir = str(scratch / "data")

    # WHEN it is ingested twice, then a question is asked
    first = run_ragline("ingest", str(corpus), "--data-dir", data_dir)
    second = run_ragline("ingest", str(corpus / "handbook"), "--data-dir", data_dir, "--quiet")
    asked = run_ragline(
        "ask", "What is the minimum age for the Sunset Paddle?", "--data-dir", data_dir, "--json"
    )

    # THEN the summary counts every outcome with reasons, and a rerun changes nothing
    assert first.returncode == 1, first.stdout + first.stderr  # one file failed
    examples = len(list((EXAMPLES / "docs").iterdir()))  # six texts and a PDF
    assert (
        f"{examples + 2} files: {examples} ingested, 0 unchanged (skipped), 1 unsupported, 1 failed"
        in first.stdout
    )
    assert "photo.png" in first.stdout and "broken.md" in first.stdout and "UTF-8" in first.stdout
    assert "Hidden" not in first.stdout
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"{examples} files: 0 ingested, {examples} unchanged (skipped)" in second.stdout
    # ... and the answer cites the local file it came from
    assert asked.returncode == 0, asked.stdout + asked.stderr
    answer = json.loads(asked.stdout)
    assert not answer["abstained"]
    assert answer["citations"][0]["source"].endswith("/handbook/tours.txt")
    assert set(answer) >= {"answer", "citations", "model", "usage", "latency_ms", "request_id"}


def test_ask_prints_answer_citations_usage_and_latency(scratch: Path) -> None:
    # GIVEN a store holding the examples
    data_dir = str(scratch / "data")
    ingested = run_ragline("ingest", str(EXAMPLES / "docs"), "--data-dir", data_dir, "--quiet")
    assert ingested.returncode == 0, ingested.stdout + ingested.stderr

    # WHEN a question is asked without --json
    result = run_ragline(
        "ask", "How much is the security deposit for renting a kayak?", "--data-dir", data_dir
    )

    # THEN the answer comes first, then numbered sources, usage, cost and latency
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("A: ") and "$200" in result.stdout
    assert any(line.strip().startswith("[1] file://") for line in lines)
    assert any(line.strip().startswith("Usage:") and "cost $" in line for line in lines)
    assert any(line.strip().startswith("Latency:") for line in lines)


def test_ask_stream_prints_events_as_they_come(scratch: Path) -> None:
    # GIVEN a store holding the examples
    data_dir = str(scratch / "data")
    ingested = run_ragline("ingest", str(EXAMPLES / "docs"), "--data-dir", data_dir, "--quiet")
    assert ingested.returncode == 0, ingested.stdout + ingested.stderr
    question = "How much is the security deposit for renting a kayak?"

    # WHEN the question is asked with --stream, as events and as text
    events = run_ragline("ask", question, "--data-dir", data_dir, "--stream", "--json")
    text = run_ragline("ask", question, "--data-dir", data_dir, "--stream")

    # THEN the events come in order: the retrieval, the text, the final answer
    assert events.returncode == 0, events.stdout + events.stderr
    lines = [json.loads(line) for line in events.stdout.splitlines()]
    names = [line["event"] for line in lines]
    assert names[0] == "retrieval" and names[-1] == "final" and "delta" in names
    assert lines[0]["data"]["citations"][0]["source"].startswith("file://")
    deltas = "".join(line["data"]["text"] for line in lines if line["event"] == "delta")
    assert deltas == lines[-1]["data"]["answer"] and "$200" in deltas
    # AND as text: the answer, then its sources and usage
    assert text.returncode == 0, text.stdout + text.stderr
    assert text.stdout.startswith("A: ") and "$200" in text.stdout
    assert any(line.strip().startswith("Usage:") for line in text.stdout.splitlines()), text.stdout


def test_ask_json_reports_a_model_error_as_json_saying_a_retry_will_not_help(
    scratch: Path,
) -> None:
    # GIVEN a store holding the examples, and a model name the provider answers 404 for
    data_dir = str(scratch / "data")
    ingested = run_ragline("ingest", str(EXAMPLES / "docs"), "--data-dir", data_dir, "--quiet")
    assert ingested.returncode == 0, ingested.stdout + ingested.stderr
    with OpenAICompatibleServer(reply="unused") as server:
        server.fail_model("gpt-gone", 404)
        settings = {
            "RAGLINE_LLM": "openai:gpt-gone",
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_API_KEY": "test",
        }
        # WHEN a question is asked with --json
        result = run_ragline(
            "ask", "How much is the kayak deposit?", "--data-dir", data_dir, "--json",
            environment=settings,
        )  # fmt: skip

    # THEN it fails with the API's error body as JSON on stdout: the 404 named, no
    # "retry later", and the retrieved passages
    assert result.returncode == 1, result.stdout + result.stderr
    error = json.loads(result.stdout)
    assert error["statusCode"] == 502
    assert "retrying will not help" in error["message"] and "HTTP 404" in error["message"]
    assert "retry later" not in error["message"]
    assert error["citations"], error
