"""PDF: the text layer, page by page, through PDFium (pypdfium2), each block with its page.

Why PDFium: measured on twenty real manuals (``bench/pdf_parsers.py``) it reads about ten
times as many pages a second as pypdf and adds 10 MB to the layer against pdfplumber's
61 MB, at the same retrieval hit@5 (the table is in the README).

What the loader keeps and drops:

1. Headings come from the outline (bookmarks) when the file has one: an entry opens its
   section at the line that carries its title on its page (else at the top of the page),
   under its parent entries. Without an outline, short lines set in a font clearly larger
   than the body's (measured on the first pages) are headings, their level by size.
2. Lines are joined into paragraphs; a paragraph ends at a vertical gap wider than a line
   space, a change of font size, or a move up the page (the next column). A word
   hyphenated across lines is joined again.
3. Table rows (lines whose words are set apart by wide gaps, three or more such lines in
   a row) become one ``table`` block with one line per row and its cells joined by
   `` | ``, its header row (the first) included, as the HTML loader writes tables. A
   line without such a gap right under a row is that row's last cell wrapped. Chunking
   repeats the header row atop every chunk a long table is cut into.
4. Running headers and footers are dropped: a line in the top or bottom two of a page
   that repeats (digits ignored) on at least a fifth of the pages (and on three; found by
   a first, text-only pass), and bare page numbers there (``12``, ``Page 3 of 9``, ``xiv``).
5. A file without any text layer (scanned) fails with "no text layer; OCR is not
   enabled"; an encrypted file that needs a password, and a file PDFium cannot read,
   fail with the reason. Running headers are kept when dropping them would leave
   nothing (a file whose pages all print the same text).
6. Budgets (:mod:`ragline.documents.budgets`) are checked first: no stream may inflate
   past RAGLINE_MAX_INFLATED_BYTES (checked on the raw bytes, before PDFium renders a
   page), no more than RAGLINE_MAX_PAGES pages.

Pages are read one at a time and closed: only the blocks (the text once) outlive a page.
"""

from __future__ import annotations

import ctypes
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ragline.documents import budgets
from ragline.documents.loaders.base import Block, Loader, ParsedDocument, open_section
from ragline.errors import DocumentParseError

if TYPE_CHECKING:
    from collections.abc import Iterator

NO_TEXT_LAYER = "no text layer; OCR is not enabled"
# Lines at each end of a page where running headers, footers and page numbers sit.
EDGE_LINES = 2
# A running header repeats on at least this share of pages (and on MIN_REPEATS).
REPEAT_SHARE = 0.2
MIN_REPEATS = 3
# Pages sampled for the body font size when there is no outline.
SIZE_SAMPLE_PAGES = 12
# A heading by font size: this much larger than the body, and short.
HEADING_RATIO = 1.15
HEADING_MAX_CHARS = 120
# A gap between two words of a line this many times the font size separates table cells.
CELL_GAP = 1.6
MIN_TABLE_ROWS = 3

_PAGE_NUMBER = re.compile(
    r"(?:page\s+)?(?:\d{1,5}|[ivxlcdm]{1,7})(?:\s*(?:of|/)\s*\d{1,5})?", re.IGNORECASE
)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_SECTION_NUMBER = re.compile(r"^\d+(?:\.\d+)*\.?\s+")
# Control characters (a NUL cannot be stored in PostgreSQL text) and PDFium's marks for
# a word hyphenated at a line end (U+FFFE, U+0002): dropped, which joins the word again.
_UNPRINTED = dict.fromkeys([*range(0x20), 0x7F, 0xFFFE, 0xFEFF])
_HYPHENATED = re.compile(r"[A-Za-z]-$")
# Where a stream's data starts ("stream" then CRLF or LF, ISO 32000 7.3.8.1).
_STREAM_START = re.compile(rb"stream\r?\n")
_INFLATE_STEP = 1024 * 1024


@dataclass
class _Line:
    text: str
    size: float  # font size of its first character, in points
    baseline: float  # of its first character; PDF user space: larger is higher on the page
    cells: tuple[str, ...]  # the line cut at wide gaps: more than one when it is a table row


def parse_pdf(data: bytes) -> ParsedDocument:
    """Read a PDF's text layer into blocks under their headings, each with its page."""
    import pypdfium2 as pdfium  # the parser loads only when a PDF is met (cold start)

    budget = budgets.current()
    check_streams(data, budget.inflated_bytes)
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise DocumentParseError(_open_error(str(exc))) from exc
    try:
        if len(document) > budget.pages:
            raise budgets.BudgetExceededError(
                f"the PDF has {len(document):,} pages, over the limit of {budget.pages:,}"
                " (RAGLINE_MAX_PAGES)"
            )
        parsed = _read(document)
        if not parsed.blocks and _text_found(document):
            # Every line repeats on every page: the running-header rule would take it
            # all; read it again keeping them (page numbers still go).
            parsed = _read(document, drop_running=False)
        if not parsed.blocks:
            raise DocumentParseError(NO_TEXT_LAYER)
        return parsed
    except pdfium.PdfiumError as exc:  # a page that opened but cannot be read
        raise DocumentParseError(_open_error(str(exc))) from exc
    finally:
        document.close()


def check_streams(data: bytes, limit: int) -> None:
    """Raise BudgetExceededError when a Flate-compressed stream inflates past ``limit``.

    Every stream is inflated a megabyte at a time and the output thrown away, so the
    check costs CPU (about a second per GiB) but no memory; streams that are not zlib
    data (images in DCT, JPX, CCITT, raw) stop at their first bytes.
    """
    for match in _STREAM_START.finditer(data):
        inflater = zlib.decompressobj()
        position, inflated = match.end(), 0
        pending = b""
        try:
            while not inflater.eof:
                if not pending:
                    pending = data[position : position + _INFLATE_STEP]
                    position += len(pending)
                    if not pending:
                        break
                inflated += len(inflater.decompress(pending, _INFLATE_STEP))
                pending = inflater.unconsumed_tail
                if inflated > limit:
                    raise budgets.BudgetExceededError(
                        f"a PDF stream inflates past {budgets.size(limit)}"
                        " (RAGLINE_MAX_INFLATED_BYTES)"
                    )
        except zlib.error:
            continue


def _text_found(document: Any) -> bool:
    """Whether any page has a text layer at all."""
    for index in range(len(document)):
        page = document[index]
        textpage = page.get_textpage()
        try:
            if textpage.get_text_range().strip():
                return True
        finally:
            textpage.close()
            page.close()
    return False


def _open_error(message: str) -> str:
    if "password" in message.lower():
        return "encrypted PDF: it needs a password to open"
    return f"not a readable PDF ({message})"


def _read(document: Any, *, drop_running: bool = True) -> ParsedDocument:
    metadata = document.get_metadata_dict()
    outline = _outline(document)
    body_size = None if outline else _body_size(document)
    running = _running_lines(document) if drop_running else set()
    title = " ".join((metadata.get("Title") or "").split())
    parsed = ParsedDocument(title="" if _FILE_NAME_TITLE.fullmatch(title) else title, format="pdf")
    headings: list[tuple[int, str]] = []
    for index in range(len(document)):
        lines = _page_lines(document, index)
        if index == 0 and not parsed.title:
            parsed.title = _cover_title(lines)
        kept = [
            line
            for position, line in enumerate(lines)
            if not (_at_edge(position, len(lines)) and _furniture(line.text, running))
        ]
        parsed.blocks.extend(_blocks(kept, index + 1, headings, outline.get(index, []), body_size))
        if not parsed.title and headings:
            parsed.title = headings[0][1]
    parsed.blocks = [block for block in parsed.blocks if block.text.strip()]
    return parsed


# A Title entry that is only the name of the file it was made from ("guide.dvi",
# "Microsoft Word - guide.docx") names no document.
_FILE_NAME_TITLE = re.compile(
    r"(?i)(microsoft \w+ - .*|[\w .-]*\.(dvi|tex|pdf|ps|docx?|odt|rtf|txt|indd|qxd))"
)
# The cover's title: its largest type, at least this much larger than the page's smaller type
# (its lower quartile: a cover sets most of its lines large).
COVER_TITLE_RATIO = 1.25


def _cover_title(lines: list[_Line]) -> str:
    """The first page's title when the file names none: the run of lines set in the
    page's largest type (up to three), if that type stands out from the rest. Without it
    the first heading is the title, which on a manual with an outline is "Introduction"
    or "Acknowledgements" rather than the manual's name."""
    if not lines:
        return ""
    sizes = sorted(line.size for line in lines)
    largest = sizes[-1]
    if largest < COVER_TITLE_RATIO * sizes[len(sizes) // 4]:
        return ""
    first = next(i for i, line in enumerate(lines) if line.size >= largest - 0.5)
    run = [line.text for line in lines[first : first + 3] if line.size >= largest - 0.5]
    return " ".join(run)[:200]


def _at_edge(position: int, count: int) -> bool:
    return position < EDGE_LINES or position >= count - EDGE_LINES


def _furniture(text: str, running: set[str]) -> bool:
    """A page number, or a running header or footer."""
    return bool(_PAGE_NUMBER.fullmatch(text)) or _edge_key(text) in running


def _running_lines(document: Any) -> set[str]:
    """The lines at the top or bottom of a page that repeat on many pages (numbers aside):
    read from the text alone, a quick first pass before the pages are read in full."""
    counts: Counter[str] = Counter()
    for index in range(len(document)):
        page = document[index]
        textpage = page.get_textpage()
        try:
            lines = [
                " ".join(line.split()) for line in _LINE_BREAK.split(textpage.get_text_range())
            ]
        finally:
            textpage.close()
            page.close()
        lines = [line for line in lines if line]
        edges = lines[:EDGE_LINES] + lines[EDGE_LINES:][-EDGE_LINES:]
        counts.update({_edge_key(line) for line in edges})
    threshold = max(MIN_REPEATS, REPEAT_SHARE * len(document))
    return {key for key, count in counts.items() if count >= threshold}


def _outline(document: Any) -> dict[int, list[tuple[int, str]]]:
    """Outline entries by 0-based page index: (level from 1, title), in outline order."""
    entries: dict[int, list[tuple[int, str]]] = {}
    for item in document.get_toc():
        dest = item.get_dest()
        index = dest.get_index() if dest is not None else None
        title = " ".join(item.get_title().split())
        if index is None or not title:
            continue
        entries.setdefault(index, []).append((item.level + 1, title))
    return entries


def _body_size(document: Any) -> float:
    """The font size most characters of the first pages are set in."""
    sizes: Counter[float] = Counter()
    for index in range(min(len(document), SIZE_SAMPLE_PAGES)):
        for line in _page_lines(document, index):
            sizes[round(line.size, 1)] += len(line.text)
    return sizes.most_common(1)[0][0] if sizes else 0.0


def _page_lines(document: Any, index: int) -> list[_Line]:
    import pypdfium2.raw as pdfium_c

    page = document[index]
    textpage = page.get_textpage()
    try:
        text = textpage.get_text_range()
        lines = []
        for start, end in _spans(text):
            stripped = text[start:end].strip()
            if not stripped:
                continue
            first = start + (len(text[start:end]) - len(text[start:end].lstrip()))
            size = pdfium_c.FPDFText_GetFontSize(textpage.raw, first)
            x, y = ctypes.c_double(), ctypes.c_double()
            pdfium_c.FPDFText_GetCharOrigin(textpage.raw, first, ctypes.byref(x), ctypes.byref(y))
            cells = _cells(textpage, text, start, end, size)
            if stripped.endswith("\ufffe"):  # hyphenated at the line end
                stripped = stripped[:-1] + "-"
            clean = " ".join(stripped.translate(_UNPRINTED).split())
            if clean:
                lines.append(
                    _Line(clean, size, y.value, tuple(c.translate(_UNPRINTED) for c in cells))
                )
        return lines
    finally:
        textpage.close()
        page.close()


def _spans(text: str) -> Iterator[tuple[int, int]]:
    start = 0
    for match in _LINE_BREAK.finditer(text):
        yield start, match.start()
        start = match.end()
    yield start, len(text)


def _cells(textpage: Any, text: str, start: int, end: int, size: float) -> tuple[str, ...]:
    """The line cut where a space spans a gap wider than CELL_GAP font sizes."""
    cells: list[str] = []
    cut = start
    for offset, char in enumerate(text[start:end], start=start):
        if char != " " or offset in (start, end - 1) or text[offset - 1] == " ":
            continue
        before = textpage.get_charbox(offset - 1)[2]
        after = textpage.get_charbox(offset + 1)[0]
        if after - before > CELL_GAP * max(size, 1.0):
            cells.append(text[cut:offset].strip())
            cut = offset + 1
    if not cells:
        return ()
    cells.append(text[cut:end].strip())
    return tuple(c for c in cells if c)


def _edge_key(text: str) -> str:
    """A running header's identity: its text with the numbers (page, chapter) taken out."""
    return re.sub(r"\d+", "#", text.casefold())


def _blocks(
    lines: list[_Line],
    page: int,
    headings: list[tuple[int, str]],
    outline: list[tuple[int, str]],
    body_size: float | None,
) -> list[Block]:
    """One page's lines as blocks, opening sections at headings on the way."""
    blocks: list[Block] = []
    pending = list(outline)
    # Outline entries whose title is not printed as a line open at the top of the page.
    printed = {_title_key(line.text) for line in lines}
    for entry_level, title in [e for e in pending if _title_key(e[1]) not in printed]:
        open_section(headings, entry_level, title)
    pending = [e for e in pending if _title_key(e[1]) in printed]

    paragraph: list[str] = []
    table: list[tuple[str, ...]] = []
    previous: _Line | None = None

    def section() -> tuple[str, ...]:
        return tuple(title for _, title in headings)

    def flush() -> None:
        nonlocal paragraph, table
        if len(table) >= MIN_TABLE_ROWS:
            rows = "\n".join(" | ".join(cells) for cells in table)
            blocks.append(Block(rows, section(), "table", page))
        elif table:
            paragraph = [" ".join(cells) for cells in table] + paragraph
        if paragraph:
            blocks.append(Block(_join_lines(paragraph), section(), page=page))
        paragraph, table = [], []

    for line in lines:
        folded = _title_key(line.text)
        entry = next((e for e in pending if _title_key(e[1]) == folded), None)
        level = entry[0] if entry else _size_level(line, body_size)
        if level is not None:
            flush()
            if entry:
                pending.remove(entry)
            open_section(headings, level, line.text)
            previous = line
            continue
        broken = previous is not None and _breaks(previous, line)
        if line.cells:
            if paragraph or broken:  # a table starts (or a new one does)
                flush()
            table.append(line.cells)
        elif table and not broken:
            # A cell's text wrapped onto a line of its own: it belongs to the row above.
            table[-1] = (*table[-1][:-1], _join_lines([table[-1][-1], line.text]))
        else:
            if broken or table:
                flush()
            paragraph.append(line.text)
        previous = line
    flush()
    return blocks


def _title_key(text: str) -> str:
    """A heading as outline entries and printed lines are compared: without its section
    number (outlines often leave it out), casefolded."""
    return _SECTION_NUMBER.sub("", text).casefold()


def _size_level(line: _Line, body_size: float | None) -> int | None:
    """A heading's level by its font size (no outline): 1 for the largest sizes."""
    if not body_size or len(line.text) > HEADING_MAX_CHARS or line.text.endswith("."):
        return None
    ratio = line.size / body_size
    if ratio < HEADING_RATIO or not any(c.isalpha() for c in line.text):
        return None
    return 1 if ratio >= 1.6 else 2 if ratio >= 1.3 else 3


def _breaks(previous: _Line, line: _Line) -> bool:
    """Whether ``line`` starts a new paragraph after ``previous``."""
    if abs(line.size - previous.size) > 0.5:
        return True
    if line.baseline > previous.baseline:  # up the page: the next column
        return True
    # Lines of a paragraph are set about 1.2 font sizes apart; a wider step is a gap.
    return previous.baseline - line.baseline > 1.6 * max(line.size, previous.size, 1.0)


def _join_lines(lines: list[str]) -> str:
    text = lines[0]
    for line in lines[1:]:
        if _HYPHENATED.search(text) and line[:1].islower():
            text = text[:-1] + line
        else:
            text = f"{text} {line}"
    return text


LOADER = Loader("pdf", (".pdf",), parse_bytes=parse_pdf)
