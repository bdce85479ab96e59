"""The ``ragline`` command line: ``dev``, ``ingest``, ``ask``, ``demo``, ``stats``, ``eval``,
``sync``, ``dlq`` and ``keys``.

This module is the parser and the dispatch; each subcommand lives in its own module
under ``ragline.dev.commands``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ragline.dev.commands.ask import cmd_ask
from ragline.dev.commands.demo import cmd_demo
from ragline.dev.commands.dev import cmd_dev
from ragline.dev.commands.dlq import cmd_dlq_redrive
from ragline.dev.commands.eval import DEFAULT_BAR, cmd_eval
from ragline.dev.commands.ingest import cmd_ingest
from ragline.dev.commands.keys import register as register_keys
from ragline.dev.commands.stats import cmd_stats
from ragline.dev.commands.sync import cmd_sync

DEFAULT_DATA_DIR = Path(".ragline")


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("a port is between 0 and 65535 (0 = any free port)")
    return port


def build_parser() -> argparse.ArgumentParser:
    """The command line, one subcommand per use."""
    parser = argparse.ArgumentParser(
        prog="ragline", description="ragline on one machine: the local stack and its tools."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = commands.add_parser(
        "dev",
        help="run the local stack (S3 + SQS on moto, the ingest poller, the REST API)",
        description="Run the Lambda handlers locally behind an S3 + SQS endpoint and an API.",
    )
    dev.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    dev.add_argument("--api-port", type=_port, default=8000, help="REST API port (0 = any free)")
    dev.add_argument("--aws-port", type=_port, default=4566, help="S3 + SQS port (0 = any free)")
    dev.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="database and endpoints.json"
    )
    dev.add_argument("--bucket", default="ragline-documents", help="the documents bucket")
    dev.add_argument("--batch-size", type=int, default=10, help="SQS messages per invocation")
    dev.add_argument(
        "--max-receive-count", type=int, default=3, help="receives before a message goes to the DLQ"
    )
    dev.add_argument(
        "--visibility-timeout", type=int, default=5, help="seconds before a failure is retried"
    )
    dev.set_defaults(run=cmd_dev)

    ingest = commands.add_parser(
        "ingest",
        help="ingest local files and directories straight into the store",
        description="Parse, chunk, embed and store local files (directories recursively).",
    )
    ingest.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    ingest.add_argument("--collection", help="collection to store into (default: settings)")
    ingest.add_argument("--data-dir", type=Path, help="data directory of the embedded database")
    ingest.add_argument("--quiet", action="store_true", help="no progress bar")
    ingest.set_defaults(run=cmd_ingest)

    ask = commands.add_parser(
        "ask",
        help="answer a question from the store, in-process",
        description="Answer a question with citations, as POST /query does.",
    )
    ask.add_argument("question")
    ask.add_argument("--collection", help="collection to search (default: settings)")
    ask.add_argument("--top-k", type=int, help="passages to retrieve")
    ask.add_argument("--profile", help="routing profile")
    ask.add_argument("--data-dir", type=Path, help="data directory of the embedded database")
    ask.add_argument("--json", action="store_true", help="print the raw JSON response")
    ask.set_defaults(run=cmd_ask)

    demo = commands.add_parser(
        "demo",
        help="upload the examples through S3 and ask the example questions over HTTP",
        description="Start the local stack on free ports, ingest examples/docs through "
        "S3 -> SQS -> ingest, ask examples/questions.json through POST /query, stop.",
    )
    demo.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR / "demo",
        help="a scratch data directory, emptied first",
    )
    demo.add_argument("--examples", type=Path, help="directory with docs/ and questions.json")
    demo.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for ingestion")
    demo.add_argument(
        "--strict",
        action="store_true",
        help="also fail when an answer misses its expected source or abstention",
    )
    demo.set_defaults(run=cmd_demo)

    stats = commands.add_parser(
        "stats",
        help="queries, latency per stage, tokens and cost by model and profile",
        description="Summarise the query log: p50/p95 latency per stage, tokens and cost by "
        "model and profile, abstention rate, feedback; --plot draws cost and latency.",
    )
    stats.add_argument("--since", default="24h", help="window: 30m, 24h, 7d, 2w (default 24h)")
    stats.add_argument("--plot", type=Path, metavar="FILE.png", help="also draw a PNG")
    stats.add_argument("--tenant", help="only this tenant's queries, tokens and cost")
    stats.add_argument("--data-dir", type=Path, help="data directory of the embedded database")
    stats.set_defaults(run=cmd_stats)

    evaluation = commands.add_parser(
        "eval",
        help="score retrieval per search mode and answers per model on an evaluation set",
        description="Run an evaluation set (JSON lines: id, question, gold, answer, "
        "must_contain) through POST /retrieve per search mode and POST /query per model, "
        "in-process; name the cheapest model that meets the bar. Exits 1 when --bar is "
        "given and no model meets it.",
    )
    evaluation.add_argument("set", type=Path, metavar="SET.jsonl", help="the evaluation set")
    evaluation.add_argument(
        "--corpus",
        type=Path,
        metavar="DIR",
        help="ingest this directory first, into a collection named by its content hash "
        "(COPYRIGHT and LICENSES/ left out; a second run re-embeds nothing)",
    )
    evaluation.add_argument(
        "--collection", help="without --corpus: the collection to evaluate (default: settings)"
    )
    evaluation.add_argument(
        "--modes", default="hybrid,vector,keyword", help="search modes to score, comma-separated"
    )
    evaluation.add_argument(
        "--llm", metavar="A,B,...", help="provider:model specs to compare (default: RAGLINE_LLM)"
    )
    evaluation.add_argument("--reranker", metavar="SPEC", help="RAGLINE_RERANKER for this run")
    evaluation.add_argument("--embeddings", metavar="SPEC", help="RAGLINE_EMBEDDINGS for this run")
    evaluation.add_argument(
        "--bar",
        help=f"what a model must meet, e.g. hit@5>=0.9,answer>=0.8 (default: {DEFAULT_BAR})",
    )
    evaluation.add_argument("--top-k", type=int, help="passages per answer (default: settings)")
    evaluation.add_argument("--json", type=Path, metavar="FILE", help="also write the report")
    evaluation.add_argument("--plot", type=Path, metavar="FILE.png", help="quality against cost")
    evaluation.add_argument("--data-dir", type=Path, help="data directory of the embedded database")
    evaluation.add_argument("--quiet", action="store_true", help="no progress bars")
    evaluation.set_defaults(run=cmd_eval)

    sync = commands.add_parser(
        "sync",
        help="make the store match the bucket: ingest missing or changed objects, delete "
        "documents whose object is gone",
        description="Reconcile the store with the documents bucket of the running `ragline "
        "dev` (default) or of a deployed stack (--stack, found by its CloudFormation outputs; "
        "runs its reconcile function, or here when RAGLINE_DATABASE_URL reaches its "
        "database). Unchanged objects are not read or embedded again. Exits 1 when an "
        "object failed.",
    )
    _add_target_arguments(sync)
    sync.add_argument("--prefix", default="", help="only the keys starting with this")
    sync.add_argument("--json", action="store_true", help="print the report as JSON")
    sync.set_defaults(run=cmd_sync)

    dlq = commands.add_parser(
        "dlq",
        help="the ingest dead-letter queue",
        description="Act on the ingest dead-letter queue.",
    )
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    redrive = dlq_commands.add_parser(
        "redrive",
        help="move the DLQ's messages back to the ingest queue",
        description="Move the dead-letter queue's messages back to the ingest queue, each "
        "deleted from the DLQ only once the queue has it, of the running `ragline dev` "
        "(default) or of a deployed stack (--stack).",
    )
    _add_target_arguments(redrive)
    redrive.add_argument("--limit", type=int, help="move at most this many messages")
    redrive.set_defaults(run=cmd_dlq_redrive)

    register_keys(commands)
    return parser


def _add_target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="data directory of the running `ragline dev` (its endpoints.json and database)",
    )
    parser.add_argument(
        "--stack", help="a deployed stack's name: act on it with the current AWS credentials"
    )
    parser.add_argument("--region", help="the deployed stack's region (default: AWS config)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ragline`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:  # Ctrl-C outside `ragline dev`, which handles it itself
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
