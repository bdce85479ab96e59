"""The ``ragline`` command line: ``dev``, ``ingest``, ``ask`` and ``demo``.

Settings are read once per process, so every option that feeds them (the data
directory) is put in the environment before the library is imported.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ragline.ingest import IngestResult

DEFAULT_DATA_DIR = Path(".ragline")


def _configure_logging(level: int) -> None:
    """Our own log lines, on stderr, apart from the handlers' JSON logs."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    dev_logger = logging.getLogger("ragline.dev")
    dev_logger.handlers[:] = [handler]
    dev_logger.setLevel(level)
    dev_logger.propagate = False  # "ragline" may be the handlers' Powertools logger


def _use_data_dir(data_dir: Path | None) -> None:
    if data_dir is not None:
        os.environ["RAGLINE_DATA_DIR"] = str(data_dir.resolve())


def _without_emf() -> None:
    """Keep EMF metric documents off stdout: no log agent reads them here, people do.

    The query log in the store still records every answer.
    """
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("a port is between 0 and 65535 (0 = any free port)")
    return port


# --- ragline dev ----------------------------------------------------------------------------


def _wait_for_termination() -> None:
    """Block until Ctrl-C (SIGINT) or SIGTERM; both end in a clean shutdown (atexit hooks run).

    Both are handled explicitly: a shell starting us in the background hands SIGINT down
    as ignored, and Python would then never raise KeyboardInterrupt.
    """
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_dev(args: argparse.Namespace) -> int:
    """Run the local stack until interrupted."""
    from ragline.dev.stack import LocalStack, StackOptions, StackStartError
    from ragline.errors import RaglineError

    _configure_logging(logging.INFO)
    options = StackOptions(
        host=args.host,
        api_port=args.api_port,
        aws_port=args.aws_port,
        data_dir=args.data_dir,
        bucket=args.bucket,
        batch_size=args.batch_size,
        max_receive_count=args.max_receive_count,
        visibility_timeout=args.visibility_timeout,
    )
    stack = LocalStack(options)
    try:
        endpoints = stack.start()
    except (OSError, RaglineError, StackStartError) as exc:  # ports, handlers, database
        print(f"ragline dev: {exc}", file=sys.stderr)
        return 1
    try:
        print(
            f"ragline dev is ready ({stack.endpoints_file})\n"
            f"  API       {endpoints.api}   (Swagger UI: {endpoints.api}/swagger)\n"
            f"  S3        {endpoints.s3}   bucket {endpoints.bucket}\n"
            f"  SQS       {endpoints.queue}\n"
            f"  DLQ       {endpoints.dlq}\n"
            f"Upload with any S3 client, for example:\n"
            f"  aws --endpoint-url {endpoints.s3} s3 cp handbook.md s3://{endpoints.bucket}/\n"
            f"Ask:\n"
            f"  curl -s {endpoints.api}/query -H 'Content-Type: application/json' \\\n"
            f'       -d \'{{"question": "..."}}\'\n'
            f"Ctrl-C stops.",
            flush=True,
        )
        _wait_for_termination()
    finally:
        print("stopping…", file=sys.stderr, flush=True)
        stack.stop()
    return 0


# --- ragline ingest -------------------------------------------------------------------------


def collect_files(paths: Sequence[Path]) -> Iterator[Path]:
    """The files named, and those under the directories named (hidden ones left out)."""
    for path in paths:
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                relative = found.relative_to(path).parts
                if found.is_file() and not any(part.startswith(".") for part in relative):
                    yield found
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(f"no such file or directory: {path}")


def cmd_ingest(args: argparse.Namespace) -> int:
    """Ingest local files straight into the store, with a progress bar and a summary."""
    try:
        files = list(collect_files(args.paths))
    except FileNotFoundError as exc:
        print(f"ragline ingest: {exc}", file=sys.stderr)
        return 2
    if not files:
        print("ragline ingest: no files found", file=sys.stderr)
        return 2

    _use_data_dir(args.data_dir)
    _without_emf()
    from tqdm import tqdm

    from ragline.ingest import DocumentFailedError, IngestResult, get_ingestor

    ingestor = get_ingestor()
    results: list[IngestResult] = []
    with tqdm(files, unit="file", desc="ingesting", disable=args.quiet) as progress:
        for path in progress:
            try:
                result = ingestor.ingest_file(path, collection=args.collection)
            except DocumentFailedError as exc:  # recorded as failed in the store, with the reason
                result = exc.result
            except Exception as exc:  # one file's failure must not stop the others
                result = IngestResult(path.resolve().as_uri(), "failed", error=_describe(exc))
            results.append(result)
            progress.set_postfix_str(f"{result.status}: {path.name}", refresh=False)

    from ragline.dev.render import format_ingest_summary

    print(format_ingest_summary(results))
    return 1 if any(result.status == "failed" for result in results) else 0


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# --- ragline ask ----------------------------------------------------------------------------


def cmd_ask(args: argparse.Namespace) -> int:
    """Answer one question in-process, from the store the data directory holds."""
    _use_data_dir(args.data_dir)
    # The query is logged for `ragline stats`; its EMF line is for CloudWatch, not a terminal.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    _without_emf()
    from ragline.answer import get_answerer
    from ragline.errors import RaglineError

    try:
        # Anything the library prints goes to stderr: stdout is the answer (or its JSON).
        with contextlib.redirect_stdout(sys.stderr):
            response = get_answerer().answer(
                args.question, collection=args.collection, top_k=args.top_k, profile=args.profile
            )
    except RaglineError as exc:
        print(f"ragline ask: {exc}", file=sys.stderr)
        return 1
    body = response.model_dump(mode="json")
    if args.json:
        print(json.dumps(body, indent=2, ensure_ascii=False))
    else:
        from ragline.dev.render import format_answer

        print(format_answer(body))
    return 0


# --- ragline demo ---------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the stack, upload the examples through S3, ask the example questions."""
    from ragline.dev.demo import run_demo

    _configure_logging(logging.WARNING)
    return run_demo(
        data_dir=args.data_dir,
        examples=args.examples,
        timeout_seconds=args.timeout,
        strict=args.strict,
    )


# --- ragline stats --------------------------------------------------------------------------


def cmd_stats(args: argparse.Namespace) -> int:
    """Report queries, latency, tokens and cost from the query log."""
    _use_data_dir(args.data_dir)
    from ragline.config import get_settings
    from ragline.dev.stats import parse_since, run_stats
    from ragline.store import get_store

    try:
        since = parse_since(args.since)
    except ValueError as exc:
        print(f"ragline stats: {exc}", file=sys.stderr)
        return 2
    print(run_stats(get_store(get_settings()), since, plot=args.plot))
    return 0


# --- the parser -----------------------------------------------------------------------------


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
    stats.add_argument("--data-dir", type=Path, help="data directory of the embedded database")
    stats.set_defaults(run=cmd_stats)
    return parser


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
