"""``ragline demo``: the examples uploaded through S3 and asked over HTTP."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ragline.dev.commands.common import DEFAULT_DATA_DIR, configure_logging, local_embeddings

if TYPE_CHECKING:
    import argparse

    from ragline.dev.commands.common import Subcommands


def register(commands: Subcommands) -> None:
    """``ragline demo`` and its options."""
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


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the stack, upload the examples through S3, ask the example questions."""
    local_embeddings()  # before the stack's handlers read their settings
    from ragline.dev.demo import run_demo

    configure_logging(logging.WARNING)
    return run_demo(
        data_dir=args.data_dir,
        examples=args.examples,
        timeout_seconds=args.timeout,
        strict=args.strict,
    )
