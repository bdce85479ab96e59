"""``ragline stats``: queries, latency, tokens and cost from the query log."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ragline.dev.commands.common import use_data_dir

if TYPE_CHECKING:
    import argparse

    from ragline.dev.commands.common import Subcommands


def register(commands: Subcommands) -> None:
    """``ragline stats`` and its options."""
    stats = commands.add_parser(
        "stats",
        help="queries, latency per stage, tokens and cost by model, profile and tenant",
        description="Summarise the query log: p50/p95 latency per stage, tokens and cost by "
        "model and profile, abstention rate, feedback; --plot draws cost and latency.",
    )
    stats.add_argument("--since", default="24h", help="window: 30m, 24h, 7d, 2w (default 24h)")
    stats.add_argument("--plot", type=Path, metavar="FILE.png", help="also draw a PNG")
    stats.add_argument("--tenant", help="only this tenant's queries, tokens and cost")
    stats.add_argument("--data-dir", type=Path, help="data directory of the embedded database")
    stats.set_defaults(run=cmd_stats)


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
