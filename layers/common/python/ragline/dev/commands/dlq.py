"""``ragline dlq redrive``: move the ingest DLQ's messages back to the ingest queue."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ragline.dev.commands.common import add_target_arguments

if TYPE_CHECKING:
    import argparse

    from ragline.dev.commands.common import Subcommands


def register(commands: Subcommands) -> None:
    """``ragline dlq`` and its actions: ``redrive``."""
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
    add_target_arguments(redrive)
    redrive.add_argument("--limit", type=int, help="move at most this many messages")
    redrive.set_defaults(run=cmd_dlq_redrive)


def cmd_dlq_redrive(args: argparse.Namespace) -> int:
    """Redrive the dead-letter queue of the local or a deployed stack; print the count."""
    from ragline.dev.targets import TargetError, deployed_target, local_target
    from ragline.ingest.redrive import RedriveError, redrive

    try:
        target = (
            deployed_target(args.stack, args.region) if args.stack else local_target(args.data_dir)
        )
        queue_url = target.ingest_queue_url()
    except TargetError as exc:
        print(f"ragline dlq redrive: {exc}", file=sys.stderr)
        return 2
    try:
        report = redrive(target.sqs, target.dlq_url, queue_url, limit=args.limit)
    except RedriveError as exc:
        print(
            f"ragline dlq redrive: {exc}; {exc.moved} moved before it stopped, the rest are "
            "still in the DLQ",
            file=sys.stderr,
        )
        return 1
    print(f"{report.moved} messages moved from {target.dlq_url} to {queue_url} ({target.name})")
    if report.failed:
        print(f"{report.failed} refused by the queue, left in the DLQ", file=sys.stderr)
        return 1
    return 0
