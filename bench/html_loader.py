"""HTML loading: parse speed and what the loader makes of a corpus of real pages.

Parses every .html/.htm file under a directory (default ../shared/corpora/git-docs)
with the HTML loader a few times, then chunks each page as ingestion does, and prints
pages/s, MB/s, blocks, chunks and how many chunks still carry navigation words
("Prev", "Next", "Home", "Table of Contents", "Last updated"). Figures, not a test.

    python bench/html_loader.py [CORPUS_DIR] [--rounds N]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "git-docs"
_NAVIGATION = re.compile(r"\b(Prev|Next|Home|Table of Contents|Last updated)\b")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rounds", type=int, default=3, help="parse the corpus N times")
    args = parser.parse_args()
    pages = [
        (p.name, p.read_bytes())
        for p in sorted(args.corpus.rglob("*"))
        if p.is_file() and p.suffix in (".html", ".htm")
    ]
    if not pages:
        print(f"no .html files under {args.corpus}", file=sys.stderr)
        return 2

    from ragline.config import Settings
    from ragline.documents import chunk_document, parse_document

    size = sum(len(data) for _, data in pages)
    best = float("inf")
    for _ in range(args.rounds):
        # CPU time, not wall time: the machine is shared, and parsing is CPU-bound.
        started = time.process_time()
        parsed = [parse_document(name, data) for name, data in pages]
        best = min(best, time.process_time() - started)

    settings = Settings.from_env()
    chunks = [
        chunk
        for document in parsed
        for chunk in chunk_document(
            document, max_tokens=settings.chunk_tokens, overlap=settings.chunk_overlap
        )
    ]
    navigation = sum(bool(_NAVIGATION.search(chunk.text)) for chunk in chunks)
    print(
        f"{len(pages)} pages, {size / 1e6:.1f} MB: parsed in {best:.2f} CPU s (best of "
        f"{args.rounds}): {len(pages) / best:.0f} pages/s, {size / 1e6 / best:.1f} MB/s"
    )
    print(
        f"{sum(len(d.blocks) for d in parsed)} blocks, {len(chunks)} chunks "
        f"({settings.chunk_tokens} tokens, overlap {settings.chunk_overlap}), "
        f"{sum(len(c.text) for c in chunks) / 1e6:.2f} M characters; "
        f"{navigation} chunks with a navigation word"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
