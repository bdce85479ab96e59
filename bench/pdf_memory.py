"""Peak memory of the PDF loader on a large file: a generated PDF of about 1,000 pages and
100 MB (text on every page, plus drawing operators that make each page heavy, as scans
and figures do), parsed as the ingest Lambda parses an object's bytes.

Prints the file's size, the text kept, the time taken, the Python heap's peak during the
parse (tracemalloc: the blocks and lines ragline holds) and the process's peak resident
set (VmHWM: PDFium's own allocations too) before and after. Pages are read and
closed one at a time, so the peak grows with the text kept, not with the file.

    python bench/pdf_memory.py [--pages 1000] [--page-kb 100]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.pdfs import build_pdf, text_page  # noqa: E402

PARAGRAPH = (
    "Section {word} {i}: the harbour master assigns berths by draught and length; a vessel "
    "over 200 metres needs two tugs and a pilot, booked a day ahead through the port "
    "portal. Fuel barges run from six in the morning to ten at night."
)


def _rss_mb() -> float:
    """Peak resident set of this process image: VmHWM (ru_maxrss would carry the
    generating parent's peak across fork and exec)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _word(n: int) -> str:
    """A word of its own per page (letters: the running-header check ignores digits)."""
    return "".join(chr(ord("a") + int(digit)) for digit in str(n))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--page-kb", type=int, default=100, help="drawing bytes per page")
    parser.add_argument("--parse", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.parse is None:
        pages = []
        for n in range(1, args.pages + 1):
            page = text_page([PARAGRAPH.format(word=_word(n), i=i) for i in range(1, 9)])
            page.filler = args.page_kb * 1024
            pages.append(page)
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "large.pdf"
            path.write_bytes(build_pdf(pages, title="Large harbour manual"))
            del pages
            # A fresh process, so its peak RSS is the parse's, not the generator's.
            command = [sys.executable, __file__, "--pages", str(args.pages), "--parse", str(path)]
            return subprocess.run(command, check=False).returncode

    data = args.parse.read_bytes()  # as the ingest Lambda holds the object's bytes
    rss_before = _rss_mb()

    from ragline.documents.loaders.pdf import parse_pdf

    tracemalloc.start()
    started = time.perf_counter()
    parsed = parse_pdf(data)
    seconds = time.perf_counter() - started
    _, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    text_mb = sum(len(b.text.encode()) for b in parsed.blocks) / 1e6
    print(f"file        {len(data) / 1e6:.1f} MB, {args.pages} pages")
    print(f"kept        {len(parsed.blocks)} blocks, {text_mb:.2f} MB of text")
    print(f"time        {seconds:.1f} s ({args.pages / seconds:.0f} pages/s)")
    print(f"heap peak   {heap_peak / 1e6:.1f} MB during the parse (tracemalloc)")
    print(f"RSS peak    {rss_before:.0f} MB before the parse (the file in memory), "
          f"{_rss_mb():.0f} MB after (VmHWM)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
