"""``ragline dlq list`` and ``ragline dlq redrive``: see what rests in the ingest DLQ, and
move it back to the ingest queue."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from ragline.dev.commands.common import add_target_arguments

if TYPE_CHECKING:
    import argparse

    from ragline.dev.commands.common import Subcommands


def register(commands: Subcommands) -> None:
    """``ragline dlq`` and its actions: ``list`` and ``redrive``."""
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
    listing = dlq_commands.add_parser(
        "list",
        help="show the DLQ's messages without moving them",
        description="List the dead-letter queue's messages (the objects each names, how "
        "often it was received, when it was sent) without consuming them, with each "
        "object's document status and failure reason when the store is reachable (the "
        "local stack's, or RAGLINE_DATABASE_URL's).",
    )
    add_target_arguments(listing)
    listing.add_argument("--limit", type=int, default=100, help="show at most this many")
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    listing.set_defaults(run=cmd_dlq_list)


def _document_states(sources: set[str], local: bool) -> dict[str, tuple[str, str | None]]:
    """Each source's document status and error, from the store when one is reachable."""
    from ragline.config import get_settings
    from ragline.errors import RaglineError
    from ragline.store import get_store

    settings = get_settings()
    if not local and not settings.database_url:
        return {}
    try:
        store = get_store(settings)
        records = {source: store.find_document(source) for source in sorted(sources)}
    except RaglineError:
        return {}
    return {s: (r.status, r.error) for s, r in records.items() if r is not None}


def cmd_dlq_list(args: argparse.Namespace) -> int:
    """Print the dead letters of the local or a deployed stack; 0 even when there are some."""
    from ragline.dev.commands.common import use_data_dir
    from ragline.dev.targets import TargetError, deployed_target, local_target
    from ragline.ingest.redrive import peek

    try:
        target = (
            deployed_target(args.stack, args.region) if args.stack else local_target(args.data_dir)
        )
    except TargetError as exc:
        print(f"ragline dlq list: {exc}", file=sys.stderr)
        return 2
    if not args.stack:
        use_data_dir(args.data_dir)
    letters = peek(target.sqs, target.dlq_url, limit=args.limit)
    states = _document_states({s for letter in letters for _, s in letter.changes}, not args.stack)
    rows: list[dict[str, Any]] = []
    for letter in letters:
        objects = []
        for event, source in letter.changes:
            status, error = states.get(source, (None, None))
            objects.append({"event": event, "source": source, "status": status, "error": error})
        rows.append(
            {
                "message_id": letter.message_id,
                "receives": letter.receive_count,
                "sent_at": letter.sent_at.isoformat() if letter.sent_at else None,
                "objects": objects,
                "unreadable": letter.unreadable,
            }
        )
    if args.json:
        print(json.dumps({"dlq": target.dlq_url, "messages": rows}, indent=2))
        return 0
    print(f"{len(rows)} messages in {target.dlq_url} ({target.name})")
    for row in rows:
        head = f"- {row['message_id']}  received {row['receives']}x  sent {row['sent_at']}"
        print(head)
        if row["unreadable"]:
            print(f"    not an S3 event: {row['unreadable']}")
        for obj in row["objects"]:
            state = f"{obj['status']}: {obj['error']}" if obj["status"] else "no document"
            print(f"    {obj['event']} {obj['source']}  [{state}]")
    return 0


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
