"""The PDF loader: pages on every block, headings from the outline or font size, tables as
rows, running headers and page numbers dropped, and the reasons a PDF cannot be read.

Edge cases run on PDFs the tests write (tests/support/pdfs.py); the real manuals of
../shared/corpora/pdf-manuals are read when that corpus is present."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from ragline.documents import chunk_document, parse_document
from ragline.documents.loaders.pdf import NO_TEXT_LAYER
from ragline.errors import DocumentParseError

from tests.support.pdfs import Page, build_pdf, text_page

MANUALS = Path(__file__).resolve().parents[2].parent / "shared" / "corpora" / "pdf-manuals"
needs_manuals = pytest.mark.skipif(not MANUALS.is_dir(), reason=f"{MANUALS} is not present")


def _page_with_furniture(number: int, paragraphs: list[str]) -> Page:
    page = text_page(paragraphs, top=700)
    page.lines.insert(0, (9, 760, "Harbour Operations Manual - Chapter 2"))
    page.lines.append((9, 40, str(number)))
    return page


def test_every_block_carries_its_page_and_outline_entries_open_sections() -> None:
    # GIVEN three pages and an outline whose entries point at pages 1 and 3
    pdf = build_pdf(
        [
            text_page(["Mooring", "Ships moor at the north quay."], top=720),
            text_page(["Tugs are booked a day ahead."]),
            text_page(["Pilotage", "A pilot boards at the outer buoy."]),
        ],
        outline=[("Mooring", 0), ("Pilotage", 2)],
        title="Harbour guide",
    )
    # WHEN it is parsed
    doc = parse_document("guide.pdf", pdf)
    # THEN the title is the file's, each block has its page, and outline titles are
    # sections (the printed heading lines are not repeated as text)
    assert doc.title == "Harbour guide" and doc.format == "pdf"
    assert [(b.page, b.section, b.text) for b in doc.blocks] == [
        (1, ("Mooring",), "Ships moor at the north quay."),
        (2, ("Mooring",), "Tugs are booked a day ahead."),
        (3, ("Pilotage",), "A pilot boards at the outer buoy."),
    ]


def test_without_an_outline_larger_type_is_a_heading() -> None:
    # GIVEN a PDF without an outline: an 18 pt title, a 14 pt heading, 11 pt body
    page = Page(
        [
            (18, 720, "Cargo Handling"),
            (11, 690, "Containers are stacked five high."),
            (14, 650, "Hazardous goods"),
            (11, 620, "Class 1 goods need a permit."),
        ]
    )
    doc = parse_document("cargo.pdf", build_pdf([page]))
    # THEN the larger lines open sections by size, and the first is the title
    assert doc.title == "Cargo Handling"
    assert [(b.section, b.text) for b in doc.blocks] == [
        (("Cargo Handling",), "Containers are stacked five high."),
        (("Cargo Handling", "Hazardous goods"), "Class 1 goods need a permit."),
    ]


def test_without_a_title_entry_the_covers_large_type_is_the_title_not_the_first_heading() -> None:
    # GIVEN a manual whose file names no title (none, or only the file it was made from),
    # with a cover set in large type and an outline that opens at "Acknowledgements"
    cover = Page(
        [
            (24, 720, "Harbour Handbook"),
            (24, 690, "for Pilots"),
            (12, 640, "Second edition"),
            (11, 600, "Port Authority"),
        ]
    )
    body = text_page(["Acknowledgements", "Thanks to the pilots of the outer buoy."])
    outline = [("Acknowledgements", 1)]
    for title in ("", "handbook.dvi", "Microsoft Word - handbook.docx"):
        # WHEN it is parsed
        doc = parse_document("handbook.pdf", build_pdf([cover, body], outline=outline, title=title))
        # THEN its title is the cover's, the lines in its largest type together
        assert doc.title == "Harbour Handbook for Pilots", title
    # AND a real title entry still wins over the cover
    named = build_pdf([cover, body], outline=outline, title="Pilot's Handbook")
    assert parse_document("handbook.pdf", named).title == "Pilot's Handbook"


def test_a_first_page_in_one_type_size_leaves_the_title_to_the_first_heading() -> None:
    # GIVEN a PDF without a title entry whose first page is all body text, then a heading
    first = text_page(["Ships moor at the north quay.", "Tugs are booked a day ahead."])
    second = Page([(16, 720, "Pilotage"), (11, 690, "A pilot boards at the outer buoy.")])
    # WHEN it is parsed
    doc = parse_document("notes.pdf", build_pdf([first, second]))
    # THEN no body line is taken for a title: the first heading is
    assert doc.title == "Pilotage"


def test_wrapped_lines_join_into_paragraphs_and_gaps_split_them() -> None:
    doc = parse_document(
        "p.pdf",
        build_pdf(
            [text_page(["The quay is open from six\nin the morning to ten at night.", "Next."])]
        ),
    )
    assert [b.text for b in doc.blocks] == [
        "The quay is open from six in the morning to ten at night.",
        "Next.",
    ]


def test_running_headers_footers_and_page_numbers_are_dropped() -> None:
    # GIVEN five pages with the same header line at the top and a page number at the foot
    bodies = ["Berths", "Tugs", "Pilots", "Cranes", "Tides"]
    pages = [
        _page_with_furniture(n, [f"{topic} come first.", f"{topic} come last."])
        for n, topic in enumerate(bodies, start=1)
    ]
    doc = parse_document("manual.pdf", build_pdf(pages))
    # THEN only the body text is left, each on its page
    assert [(b.page, b.text) for b in doc.blocks] == [
        (n, f"{topic} come {end}.")
        for n, topic in enumerate(bodies, start=1)
        for end in ("first", "last")
    ]


def test_a_line_repeated_on_few_pages_is_kept() -> None:
    # GIVEN a top line on only two of ten pages: not a running header
    pages = [text_page([f"Page {n} body."]) for n in range(1, 11)]
    for page in pages[:2]:
        page.lines.insert(0, (11, 760, "Note on tides"))
    texts = [b.text for b in parse_document("m.pdf", build_pdf(pages)).blocks]
    assert texts.count("Note on tides") == 2


def test_a_table_becomes_rows_with_its_header() -> None:
    # GIVEN three lines whose cells are set far apart: a table with a header row
    rows = [("Berth", "Depth", "Length"), ("North", "12 m", "300 m"), ("South", "9 m", "180 m")]
    page = Page([(11, 720, "Berths of the port:")])
    for i, cells in enumerate(rows):
        page.lines.append((11, 690 - i * 14, "                ".join(cells)))
    doc = parse_document("berths.pdf", build_pdf([page]))
    # THEN the rows are one table block, cells joined by |, header first
    table = [b for b in doc.blocks if b.kind == "table"]
    assert [b.text for b in table] == [
        "Berth | Depth | Length\nNorth | 12 m | 300 m\nSouth | 9 m | 180 m"
    ]
    assert table[0].page == 1


def test_every_chunk_of_a_long_table_starts_with_its_header_row() -> None:
    # GIVEN a table of 60 rows under a header
    page = Page([(8, 760, "Tide table:")])
    page.lines.append((8, 740, "                    ".join(("Day", "High water", "Low water"))))
    for day in range(1, 61):
        cells = (f"Day {day}", f"{day % 12 + 1}:15 am", f"{day % 12 + 1}:40 pm")
        page.lines.append((8, 740 - day * 11, "                    ".join(cells)))
    doc = parse_document("tides.pdf", build_pdf([page]))
    # WHEN it is chunked
    chunks = chunk_document(doc, max_tokens=256, overlap=40)
    # THEN it is one table block of all the rows, and every chunk of it reads under the
    # header row, on its page
    (table,) = [b for b in doc.blocks if b.kind == "table"]
    rows = table.text.split("\n")
    assert rows[0] == "Day | High water | Low water" and len(rows) == 61
    table_chunks = [c for c in chunks if "|" in c.text]
    assert len(table_chunks) > 1
    assert all("Day | High water | Low water\nDay " in c.text for c in table_chunks)
    assert {c.pages for c in table_chunks} == {(1, 1)}


def test_a_pdf_without_a_text_layer_fails_with_the_reason() -> None:
    # GIVEN a scanned-like PDF: pages with drawing but no text
    pdf = build_pdf([Page(filler=2000), Page(filler=2000)])
    with pytest.raises(DocumentParseError, match=r"^no text layer; OCR is not enabled$"):
        parse_document("scan.pdf", pdf)
    assert NO_TEXT_LAYER == "no text layer; OCR is not enabled"


def test_an_encrypted_pdf_fails_with_the_reason() -> None:
    pypdf = pytest.importorskip("pypdf")
    reader = pypdf.PdfReader(io.BytesIO(build_pdf([text_page(["Secret berth plan."])])))
    writer = pypdf.PdfWriter(clone_from=reader)
    writer.encrypt(user_password="harbour", owner_password="master", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(DocumentParseError, match="encrypted PDF: it needs a password"):
        parse_document("locked.pdf", buffer.getvalue())


@pytest.mark.parametrize(
    "data",
    [b"not a pdf at all", b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog", b""],
    ids=["text", "truncated", "empty"],
)
def test_a_corrupt_pdf_fails_with_the_reason(data: bytes) -> None:
    with pytest.raises(DocumentParseError, match="not a readable PDF"):
        parse_document("broken.pdf", data)


def test_a_pdf_with_a_page_that_cannot_be_loaded_fails_with_the_reason() -> None:
    # GIVEN a PDF that opens, but whose page tree names a page object that does not exist
    pdf = build_pdf([text_page(["One."]), text_page(["Two."])])
    broken = pdf.replace(b"/Kids [", b"/Kids [99 0 R ", 1)
    # THEN reading it fails as a parse error (the document's failed status), not a crash
    with pytest.raises(DocumentParseError, match=r"not a readable PDF \(Failed to load page"):
        parse_document("broken.pdf", broken)


def test_chunks_keep_the_pages_of_a_pdf() -> None:
    # GIVEN a section that runs over two pages
    pdf = build_pdf(
        [text_page(["Ships moor at the north quay."]), text_page(["Tugs are booked ahead."])],
        outline=[("Mooring", 0)],
    )
    chunks = chunk_document(parse_document("g.pdf", pdf), max_tokens=200, overlap=20)
    # THEN its chunk spans both pages, and its metadata says so
    assert [(c.pages, c.metadata) for c in chunks] == [((1, 2), {"page": 1, "last_page": 2})]


@needs_manuals
def test_a_real_manual_reads_with_pages_headings_and_no_running_headers() -> None:
    # GIVEN booktabs' manual (no outline) and xcolor's (an outline)
    booktabs = parse_document("booktabs.pdf", (MANUALS / "booktabs.pdf").read_bytes())
    xcolor = parse_document("xcolor.pdf", (MANUALS / "xcolor.pdf").read_bytes())
    # THEN the two rules of the booktabs guide are on page 3, under their heading by size
    rules = [b for b in booktabs.blocks if b.text == "1. Never, ever use vertical rules."]
    assert [(b.page, b.section[-1]) for b in rules] == [(3, "2 The layout of formal tables")]
    # AND xcolor's sections come from its outline, and its table of package options is
    # a table of rows under its header, a wrapped description joined to its row
    options = next(b for b in xcolor.blocks if "hideerrors | Display only a warning" in b.text)
    assert (options.page, options.kind) == (9, "table")
    assert options.text.split("\n")[:2] == [
        "Option | Description",
        "natural | (Default.) Keep all colors in their model, except RGB (converted to rgb),"
        " HSB (converted to hsb), and Gray (converted to gray).",
    ]
    assert options.section[:2] == ("2 The User Interface", "2.2 Color models")
    # AND every block has a page, and the numbers printed at the foot of each page are
    # gone (numbers in tables and figures stay; the title page's footnote mark too)
    for doc, pages in ((booktabs, 18), (xcolor, 66)):
        assert all(b.page is not None and 1 <= b.page <= pages for b in doc.blocks)
        assert not [b for b in doc.blocks if b.page and b.page > 1 and b.text == str(b.page)]


@needs_manuals
def test_every_corpus_manual_parses_with_pages() -> None:
    for path in sorted(MANUALS.glob("*.pdf")):
        doc = parse_document(path.name, path.read_bytes())
        assert doc.blocks and all(b.page for b in doc.blocks), path.name


def test_pdfium_loads_only_when_a_pdf_is_read() -> None:
    import subprocess
    import sys

    # GIVEN a fresh interpreter that imports the loaders and reads a Markdown file, then a PDF
    probe = """
import sys
from ragline.documents import parse_document
from tests.support.pdfs import build_pdf, text_page
parse_document("a.md", b"# A\\n\\nText.")
print("pypdfium2" in sys.modules)
parse_document("a.pdf", build_pdf([text_page(["Text."])]))
print("pypdfium2" in sys.modules)
"""
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split()
    # THEN PDFium was not loaded for the Markdown file (cold start), only for the PDF
    assert out == ["False", "True"]
