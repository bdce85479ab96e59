"""``ragline demo``: the examples uploaded through S3 and asked over HTTP."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ragline.dev.commands.common import configure_logging, local_embeddings

if TYPE_CHECKING:
    import argparse


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
