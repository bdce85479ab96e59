"""The ``ragline`` command line: ``dev``, ``ingest``, ``ask``, ``demo``, ``stats``, ``eval``,
``export-reviews``,
``sync``, ``dlq`` and ``keys``.

Each subcommand is a module under ``ragline.dev.commands`` that registers its own parser
and options; this module lists them, in the order ``ragline --help`` shows, and dispatches.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Protocol

from ragline.dev.commands import ask, demo, dev, dlq, export_reviews, ingest, keys, stats, sync
from ragline.dev.commands import eval as evaluation

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ragline.dev.commands.common import Subcommands


class Command(Protocol):
    """A module of ``ragline.dev.commands``."""

    def register(self, commands: Subcommands) -> None:
        """Add the command's parser and options; its ``run`` default runs it."""


COMMANDS: tuple[Command, ...] = (
    dev, ingest, ask, demo, stats, evaluation, export_reviews, sync, dlq, keys,
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The command line, one subcommand per use."""
    parser = argparse.ArgumentParser(
        prog="ragline", description="ragline on one machine: the local stack and its tools."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
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
