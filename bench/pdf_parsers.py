"""PDF parsers compared: pages per second, megabytes added to the Lambda layer, and
retrieval hit@5 on gold files and gold pages through ragline.

The candidates are the permissively licensed parsers without model weights: pypdf
(BSD-3-Clause, pure Python), pypdfium2 (BSD-3-Clause / Apache-2.0, bundles PDFium) and
pdfplumber (MIT, on pdfminer.six). Each reads the corpus (default
../shared/corpora/pdf-manuals) the same plain way: a page's text as one block with its
page, so the parsers are compared, not the loaders. A last row is ragline's own PDF
loader (pypdfium2 with headings, tables and running headers handled).

Retrieval is ``ragline eval`` on the set (default ../shared/eval/pdf_manuals_eval.jsonl)
with each parser in turn as the PDF loader, each in a fresh data directory; the figures
are the hybrid mode's (the one POST /query uses). Layer size is what ``pip install
--platform manylinux2014_x86_64 --only-binary=:all:`` puts in a directory for the parser,
less the packages the layer already holds (layers/common/requirements.txt).

    python bench/pdf_parsers.py [--parsers pypdf,pypdfium2,pdfplumber,ragline]
        [--embeddings hash] [--no-size] [--no-retrieval]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REQUIREMENTS = ROOT / "layers" / "common" / "requirements.txt"
MODE = "hybrid"
# What each parser's row installs into the layer (ragline's loader is pypdfium2's).
DISTRIBUTIONS = {"pypdf": "pypdf", "pypdfium2": "pypdfium2", "pdfplumber": "pdfplumber"}

Pages = list[tuple[int, str]]


def pypdf_pages(data: bytes) -> Pages:
    import io

    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(data))
    return [(n, page.extract_text() or "") for n, page in enumerate(reader.pages, start=1)]


def pypdfium2_pages(data: bytes) -> Pages:
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(data)
    pages = []
    try:
        for index in range(len(document)):
            page = document[index]
            textpage = page.get_textpage()
            pages.append((index + 1, textpage.get_text_range()))
            textpage.close()
            page.close()
    finally:
        document.close()
    return pages


def pdfplumber_pages(data: bytes) -> Pages:
    import io

    import pdfplumber

    with pdfplumber.open(io.BytesIO(data)) as document:
        pages = []
        for n, page in enumerate(document.pages, start=1):
            pages.append((n, page.extract_text() or ""))
            page.close()
        return pages


def ragline_pages(data: bytes) -> Pages:
    from ragline.documents.loaders.pdf import parse_pdf

    return [(block.page or 0, block.text) for block in parse_pdf(data).blocks]


EXTRACTORS: dict[str, Callable[[bytes], Pages]] = {
    "pypdf": pypdf_pages,
    "pypdfium2": pypdfium2_pages,
    "pdfplumber": pdfplumber_pages,
    "ragline": ragline_pages,
}


def plain_loader(extract: Callable[[bytes], Pages]) -> Callable[[bytes], object]:
    """A PDF loader that keeps a page's text as one block: the parser alone."""
    from ragline.documents.loaders.base import Block, ParsedDocument

    def parse(data: bytes) -> ParsedDocument:
        # Control characters (pypdf can return NUL) cannot be stored: dropped, as the loader does.
        unprinted = dict.fromkeys([*range(0x20), 0x7F, 0xFFFE, 0xFEFF], " ")
        blocks = [
            Block(" ".join(text.translate(unprinted).split()), page=n) for n, text in extract(data)
        ]
        return ParsedDocument(title="", format="pdf", blocks=blocks)

    return parse


def speed(extract: Callable[[bytes], Pages], files: list[Path]) -> tuple[int, float]:
    """Pages read and seconds taken over the files."""
    pages: set[tuple[Path, int]] = set()
    started = time.perf_counter()
    for path in files:
        pages.update((path, n) for n, _ in extract(path.read_bytes()))
    return len(pages), time.perf_counter() - started


def _installed(target: Path, *requirements: str) -> dict[str, int]:
    """Bytes per top-level entry that pip installs for the Lambda platform."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_26_x86_64",
         "--python-version", "3.11", "--implementation", "cp", "--only-binary=:all:",
         "--target", str(target), *requirements],
        check=True, capture_output=True,
    )  # fmt: skip
    return {
        entry.name: sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
        if entry.is_dir()
        else entry.stat().st_size
        for entry in target.iterdir()
    }


def layer_megabytes(parsers: list[str]) -> dict[str, float]:
    """MB each parser adds to the layer, beyond what the layer already installs."""
    lines = [
        line.strip()
        for line in REQUIREMENTS.read_text().splitlines()
        if line.strip() and not line.startswith("#") and not line.startswith("pypdfium2")
    ]
    with tempfile.TemporaryDirectory() as scratch:
        base = _installed(Path(scratch) / "base", *lines)
        sizes = {}
        for parser in parsers:
            added = _installed(Path(scratch) / parser, DISTRIBUTIONS.get(parser, "pypdfium2"))
            sizes[parser] = sum(size for name, size in added.items() if name not in base) / 1e6
    return sizes


def retrieval(
    parser: str, corpus: Path, questions: Path, embeddings: str
) -> tuple[float, float | None]:
    """hit@5 on gold files and on gold pages with this parser as the PDF loader."""
    from ragline.dev.cli import main as ragline
    from ragline.documents.loaders import registry
    from ragline.documents.loaders.base import Loader

    parse = plain_loader(EXTRACTORS[parser]) if parser != "ragline" else None
    original = registry._LOADERS["pdf"]
    if parse is not None:
        registry._LOADERS["pdf"] = Loader("pdf", (".pdf",), parse_bytes=parse)  # type: ignore[arg-type]
    try:
        with tempfile.TemporaryDirectory(prefix=f"pdf-{parser}-") as scratch:
            report = Path(scratch) / "report.json"
            data = Path(scratch) / "data"
            with contextlib.redirect_stdout(sys.stderr):  # its own report: only the figures here
                ragline(["eval", str(questions), "--corpus", str(corpus),
                         "--embeddings", embeddings, "--modes", MODE, "--llm", "extractive",
                         "--data-dir", str(data),
                         "--json", str(report), "--quiet"])  # fmt: skip
            figures = json.loads(report.read_text())["retrieval"][MODE]
    finally:
        registry._LOADERS["pdf"] = original
    return figures["hit_at_5"], figures.get("page_hit_at_5")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpora" / "pdf-manuals")
    parser.add_argument("--eval", type=Path, default=SHARED / "eval" / "pdf_manuals_eval.jsonl")
    parser.add_argument("--parsers", default="pypdf,pypdfium2,pdfplumber,ragline")
    parser.add_argument("--embeddings", default="hash")
    parser.add_argument("--no-size", action="store_true", help="skip the layer sizes (pip)")
    parser.add_argument("--no-retrieval", action="store_true", help="skip ragline eval")
    args = parser.parse_args()
    from ragline.evaluation import corpus_files

    files = [p for p in corpus_files(args.corpus) if p.suffix.lower() == ".pdf"]
    names = [p.strip() for p in args.parsers.split(",") if p.strip()]
    sizes = {} if args.no_size else layer_megabytes(names)
    print(f"layer MB: {sizes}", file=sys.stderr, flush=True)
    rows = []
    for name in names:
        pages, seconds = speed(EXTRACTORS[name], files)
        hits: tuple[float | None, float | None] = (None, None)
        if not args.no_retrieval:
            hits = retrieval(name, args.corpus, args.eval, args.embeddings)
        rows.append((name, pages, seconds, sizes.get(name), *hits))
        print(f"{name}: {pages} pages in {seconds:.1f} s", file=sys.stderr, flush=True)

    def figure(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    print(f"\n{len(files)} PDFs in {args.corpus}, {args.eval.name}, embeddings {args.embeddings}")
    print(f"{'parser':<11} {'pages':>6} {'pages/s':>8} {'layer MB':>9} {'hit@5':>6} {'page@5':>7}")
    for name, pages, seconds, size, hit, page_hit in rows:
        print(
            f"{name:<11} {pages:>6} {pages / seconds:>8.1f} {figure(size, '.1f'):>9}"
            f" {figure(hit, '.3f'):>6} {figure(page_hit, '.3f'):>7}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
