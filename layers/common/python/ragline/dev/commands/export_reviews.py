"""``ragline export-reviews``: reviewed answers as an evaluation set for ``ragline eval``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ragline.dev.commands.common import use_data_dir

if TYPE_CHECKING:
    import argparse

    from ragline.dev.commands.common import Subcommands


def register(commands: Subcommands) -> None:
    """``ragline export-reviews`` and its options."""
    export = commands.add_parser(
        "export-reviews",
        help="write approved and corrected answers (and rejections for want of documents) "
        "as an evaluation set",
        description="Write the review queue's decisions as JSON lines that `ragline eval` "
        "reads: approved and corrected answers with their cited documents as gold and "
        "must_contain from the reviewer or the correction, rejections whose documents do "
        "not answer as cases to abstain on (docs/review.md).",
    )
    export.add_argument("-o", "--output", type=Path, metavar="SET.jsonl", help="default: stdout")
    export.add_argument("--since", default="90d", help="decided within: 24h, 7d, 2w (default 90d)")
    export.add_argument("--tenant", help="only this tenant's decisions (default: every tenant's)")
    export.add_argument("--data-dir", type=Path, help="data directory of the embedded database")
    export.set_defaults(run=cmd_export_reviews)


def cmd_export_reviews(args: argparse.Namespace) -> int:
    """Export decided review items as evaluation cases."""
    use_data_dir(args.data_dir)
    from datetime import UTC, datetime

    from ragline.config import get_settings
    from ragline.dev.stats import parse_since
    from ragline.reviews import get_review_queue
    from ragline.reviews.export import export_cases

    try:
        since = datetime.now(UTC) - parse_since(args.since)
    except ValueError as exc:
        print(f"ragline export-reviews: {exc}", file=sys.stderr)
        return 2
    export = export_cases(get_review_queue(get_settings()).decided(since, tenant=args.tenant))
    lines = "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in export.cases)
    if args.output is None:
        sys.stdout.write(lines)
    else:
        args.output.write_text(lines, "utf-8")
    left_out = ", ".join(f"{n} {why}" for why, n in sorted(export.skipped.items()))
    print(
        f"{len(export.cases)} cases written" + (f"; left out: {left_out}" if left_out else ""),
        file=sys.stderr,
    )
    return 0
