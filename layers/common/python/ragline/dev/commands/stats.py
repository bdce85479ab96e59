"""``ragline stats``: queries, latency, tokens and cost from the query log."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ragline.dev.commands.common import use_data_dir

if TYPE_CHECKING:
    import argparse


def cmd_stats(args: argparse.Namespace) -> int:
    """Report queries, latency, tokens and cost from the query log."""
    use_data_dir(args.data_dir)
    from ragline.config import get_settings
    from ragline.dev.stats import parse_since, run_stats
    from ragline.store import get_store

    try:
        since = parse_since(args.since)
    except ValueError as exc:
        print(f"ragline stats: {exc}", file=sys.stderr)
        return 2
    print(run_stats(get_store(get_settings()), since, plot=args.plot, tenant=args.tenant))
    return 0
