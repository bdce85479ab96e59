"""``ragline dev``: the local stack, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ragline.dev.commands.common import DEFAULT_DATA_DIR, configure_logging, local_embeddings

if TYPE_CHECKING:
    from types import FrameType

    from ragline.dev.commands.common import Subcommands


def register(commands: Subcommands) -> None:
    """``ragline dev`` and its options."""
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


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("a port is between 0 and 65535 (0 = any free port)")
    return port


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


@contextmanager
def _shielded_from_signals() -> Iterator[None]:
    """While the stack stops, a second Ctrl-C or SIGTERM (an impatient user, a supervisor
    repeating itself) is noted, not obeyed: dying now would orphan the embedded
    PostgreSQL, which outlives us and holds the data dir."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        print(
            "ragline dev: still stopping (the database last); SIGKILL would orphan it",
            file=sys.stderr,
            flush=True,
        )

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_dev(args: argparse.Namespace) -> int:
    """Run the local stack until interrupted."""
    local_embeddings()  # before the stack's handlers read their settings
    from ragline.dev.stack import LocalStack, StackOptions, StackStartError
    from ragline.errors import RaglineError

    configure_logging(logging.INFO)
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
            f"  Console   {endpoints.api}/console/   (playground and review queue)\n"
            f"  S3        {endpoints.s3}   bucket {endpoints.bucket}\n"
            f"  SQS       {endpoints.queue}\n"
            f"  DLQ       {endpoints.dlq}\n"
            f"  API key   {endpoints.api_key}   (development key of the default tenant, every "
            f"scope; kept in {stack.options.data_dir / 'dev-key'})\n"
            f"Upload with any S3 client, for example:\n"
            f"  aws --endpoint-url {endpoints.s3} s3 cp handbook.md s3://{endpoints.bucket}/\n"
            f"Ask:\n"
            f'  curl -s {endpoints.api}/query -H "x-api-key: $(cat '
            f'{stack.options.data_dir / "dev-key"})" \\\n'
            f'       -d \'{{"question": "..."}}\'\n'
            f"Ctrl-C stops.",
            flush=True,
        )
        _wait_for_termination()
    finally:
        with _shielded_from_signals():
            print("stopping…", file=sys.stderr, flush=True)
            stack.stop()
    return 0
