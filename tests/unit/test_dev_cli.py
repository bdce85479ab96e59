"""The command line's pure parts: file collection, argument parsing, rendering."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from ragline.dev.cli import build_parser
from ragline.dev.commands.ingest import collect_files
from ragline.dev.render import format_answer, format_ingest_summary

ANSWER = {
    "answer": "The deposit is $200 per kayak. [1]",
    "citations": [
        {
            "n": 1,
            "document_id": "d1",
            "source": "s3://ragline-documents/gear-rental.html",
            "title": "Gear Rental Rates",
            "chunk_id": 7,
            "score": 0.0328,
            "text": "A refundable security deposit of $200 per kayak...",
            "section": "Gear Rental Rates > Security deposit",
        }
    ],
    "abstained": False,
    "model": {"provider": "extractive", "name": "extractive", "prompt": "answer@v1"},
    "usage": {
        "input_tokens": 360,
        "output_tokens": 20,
        "embedding_tokens": 15,
        "cost_usd": None,
        "estimated": True,
    },
    "latency_ms": {"retrieve": 4.2, "generate": 3.1, "total": 7.3},
    "request_id": "req-1",
}


@dataclass
class Result:
    source: str
    status: str
    chunks: int = 0
    embedding_tokens: int = 0
    error: str | None = None


def test_collect_files_walks_directories_and_leaves_hidden_ones_out(tmp_path: Path) -> None:
    # GIVEN a tree with nested, hidden and named files
    (tmp_path / "docs" / "nested").mkdir(parents=True)
    (tmp_path / "docs" / ".git").mkdir()
    (tmp_path / "docs" / "b.md").write_text("b")
    (tmp_path / "docs" / "nested" / "a.txt").write_text("a")
    (tmp_path / "docs" / ".git" / "config").write_text("x")
    (tmp_path / "docs" / ".draft.md").write_text("x")
    single = tmp_path / "single.rst"
    single.write_text("s")

    # WHEN files are collected from a directory and a file
    found = list(collect_files([tmp_path / "docs", single]))

    # THEN the directory's visible files come in order, then the named file
    assert found == [tmp_path / "docs" / "b.md", tmp_path / "docs" / "nested" / "a.txt", single]


def test_collect_files_rejects_missing_paths(tmp_path: Path) -> None:
    # GIVEN a path that does not exist
    # WHEN files are collected
    # THEN the error names it
    with pytest.raises(FileNotFoundError, match="nope"):
        list(collect_files([tmp_path / "nope"]))


def test_dev_options_default_to_the_documented_ports() -> None:
    # GIVEN no options
    # WHEN `ragline dev` is parsed
    args = build_parser().parse_args(["dev"])

    # THEN it listens on loopback, API on 8000, S3 + SQS on 4566, data under .ragline
    assert (args.host, args.api_port, args.aws_port) == ("127.0.0.1", 8000, 4566)
    assert args.data_dir == Path(".ragline")
    assert args.bucket == "ragline-documents"


def test_ports_out_of_range_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a port above 65535
    # WHEN it is parsed
    # THEN argparse stops with a message
    with pytest.raises(SystemExit):
        build_parser().parse_args(["dev", "--api-port", "70000"])
    assert "0 = any free port" in capsys.readouterr().err


def test_answer_is_printed_with_sources_usage_cost_and_latency() -> None:
    # GIVEN a POST /query response whose model has no known price
    # WHEN it is formatted
    text = format_answer(ANSWER, "How much is the deposit?")

    # THEN question, answer, numbered source, usage, unknown cost and latency all show
    lines = text.splitlines()
    assert lines[0] == "Q: How much is the deposit?"
    assert lines[1] == "A: The deposit is $200 per kayak. [1]"
    assert (
        "[1] s3://ragline-documents/gear-rental.html — Gear Rental Rates > Security deposit" in text
    )
    assert "360 in / 20 out tokens (estimated) · 15 embedding tokens" in text
    assert "cost unknown" in text
    assert "Latency: 7 ms (retrieve 4 · generate 3)" in text


def test_ingest_summary_counts_outcomes_and_gives_reasons() -> None:
    # GIVEN results of every kind
    results = [
        Result("file:///a.md", "ingested", chunks=3, embedding_tokens=120),
        Result("file:///b.md", "unchanged", chunks=2),
        Result("file:///c.pdf", "skipped", error="unsupported document type '.pdf'"),
        Result("file:///d.md", "failed", error="not valid UTF-8 text"),
    ]

    # WHEN they are summarized
    text = format_ingest_summary(results)

    # THEN each outcome is counted and each problem explained
    assert text.splitlines()[0] == (
        "4 files: 1 ingested, 1 unchanged (skipped), 1 unsupported, 1 failed"
    )
    assert "3 chunks written, 120 embedding tokens" in text
    assert "unsupported: file:///c.pdf: unsupported document type '.pdf'" in text
    assert "failed: file:///d.md: not valid UTF-8 text" in text


def test_export_reviews_defaults_to_stdout_and_ninety_days() -> None:
    # WHEN export-reviews is parsed without options, then with them
    bare = build_parser().parse_args(["export-reviews"])
    given = build_parser().parse_args(
        ["export-reviews", "-o", "set.jsonl", "--since", "7d", "--tenant", "acme"]
    )
    # THEN it writes to stdout every tenant's last 90 days, or what the options say
    assert (bare.output, bare.since, bare.tenant) == (None, "90d", None)
    assert (given.output, given.since, given.tenant) == (Path("set.jsonl"), "7d", "acme")
