"""``ragline ingest``: local files straight into the store, with progress and a summary."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from ragline.dev.commands.common import (
    acting_identity,
    add_tenant_argument,
    local_embeddings,
    use_data_dir,
    without_emf,
)

if TYPE_CHECKING:
    import argparse

    from ragline.dev.commands.common import Subcommands
    from ragline.ingest import IngestResult


def register(commands: Subcommands) -> None:
    """``ragline ingest PATH...`` and its options."""
    ingest = commands.add_parser(
        "ingest",
        help="ingest local files and directories straight into the store",
        description="Parse, chunk, embed and store local files (directories recursively).",
    )
    ingest.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    ingest.add_argument("--collection", help="collection to store into (default: settings)")
    ingest.add_argument("--data-dir", type=Path, help="data directory of the embedded database")
    add_tenant_argument(ingest, "store the files")
    ingest.add_argument("--quiet", action="store_true", help="no progress bar")
    ingest.set_defaults(run=cmd_ingest)


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

    use_data_dir(args.data_dir)
    local_embeddings()
    without_emf()
    from tqdm import tqdm

    from ragline.errors import RaglineError
    from ragline.ingest import get_ingestor

    try:  # the tenant's documents, into its collections (checked before any file is read)
        tenant = acting_identity(args.tenant).tenant if args.tenant else None
    except RaglineError as exc:
        print(f"ragline ingest: {exc}", file=sys.stderr)
        return 2
    ingestor = get_ingestor()
    results: list[IngestResult] = []
    # A first load builds the vector index once at the end: far cheaper than row by row.
    dimensions = ingestor.embedder.dimensions
    deferred = len(files) > 1 and ingestor.store.defer_vector_index(dimensions)
    try:
        # A few files at once, each its own transaction (RAGLINE_INGEST_CONCURRENCY); closed
        # on the way out, so no file is still being written when the index is built.
        ingested = ingestor.ingest_files(files, args.collection, tenant=tenant)
        outcomes = zip(files, ingested, strict=True)
        with (
            closing(ingested),
            tqdm(
                outcomes, total=len(files), unit="file", desc="ingesting", disable=args.quiet
            ) as progress,
        ):
            for path, result in progress:
                results.append(result)
                progress.set_postfix_str(f"{result.status}: {path.name}", refresh=False)
    finally:  # interrupted too: the store is never left without its index
        if deferred:
            if not args.quiet:
                print("building the vector index ...", file=sys.stderr, flush=True)
            ingestor.store.build_vector_index(dimensions)

    from ragline.dev.render import format_ingest_summary

    print(format_ingest_summary(results))
    return 1 if any(result.status == "failed" for result in results) else 0
