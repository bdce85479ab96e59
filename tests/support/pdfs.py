"""Small PDFs written byte by byte for the loader's edge cases (and the memory bench):
text in the standard Helvetica font at given sizes and heights, an optional outline,
pages without text, and filler that makes a page heavy without adding text."""

from __future__ import annotations

from dataclasses import dataclass, field

PAGE_WIDTH, PAGE_HEIGHT = 612, 792


@dataclass
class Page:
    """A page's lines: (font size, height from the bottom in points, text), top first."""

    lines: list[tuple[float, float, str]] = field(default_factory=list)
    # Bytes of drawing operators added to the content stream (no text): a heavy page.
    filler: int = 0


def _escape(text: str) -> bytes:
    raw = text.encode("cp1252")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _content(page: Page) -> bytes:
    parts = []
    for size, height, text in page.lines:
        parts.append(b"BT /F1 %.1f Tf 72 %.1f Td (%s) Tj ET\n" % (size, height, _escape(text)))
    if page.filler:
        stroke = b"10 10 m 20 20 l S\n"
        parts.append(stroke * (page.filler // len(stroke) + 1))
    return b"".join(parts)


def text_page(paragraphs: list[str], *, size: float = 11, top: float = 720) -> Page:
    """A page of body lines, a blank line's gap between paragraphs."""
    page = Page()
    height = top
    for paragraph in paragraphs:
        for line in paragraph.split("\n"):
            page.lines.append((size, height, line))
            height -= size * 1.2
        height -= size * 1.2
    return page


def build_pdf(
    pages: list[Page], *, outline: list[tuple[str, int]] | None = None, title: str = ""
) -> bytes:
    """A PDF of these pages; ``outline`` lists (title, 0-based page index) bookmarks."""
    objects: list[bytes] = []  # object n is objects[n - 1]

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in last
    pages_id = add(b"")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    page_ids = []
    for page in pages:
        content = _content(page)
        stream = add(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
        page_ids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] /Contents %d 0 R"
                b" /Resources << /Font << /F1 %d 0 R >> >> >>"
                % (pages_id, PAGE_WIDTH, PAGE_HEIGHT, stream, font)
            )
        )
    kids = b" ".join(b"%d 0 R" % n for n in page_ids)
    objects[pages_id - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids))
    outline_ref = b""
    if outline:
        root = add(b"")
        items = [len(objects) + 1 + i for i in range(len(outline))]
        for i, (entry, index) in enumerate(outline):
            links = b""
            if i > 0:
                links += b" /Prev %d 0 R" % items[i - 1]
            if i < len(outline) - 1:
                links += b" /Next %d 0 R" % items[i + 1]
            add(
                b"<< /Title (%s) /Parent %d 0 R /Dest [%d 0 R /XYZ 0 792 0]%s >>"
                % (_escape(entry), root, page_ids[index], links)
            )
        objects[root - 1] = b"<< /Type /Outlines /First %d 0 R /Last %d 0 R /Count %d >>" % (
            items[0],
            items[-1],
            len(items),
        )
        outline_ref = b" /Outlines %d 0 R /PageMode /UseOutlines" % root
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R%s >>" % (pages_id, outline_ref)
    info = add(b"<< /Title (%s) >>" % _escape(title)) if title else None

    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    trailer = b"trailer\n<< /Size %d /Root %d 0 R" % (len(objects) + 1, catalog)
    if info is not None:
        trailer += b" /Info %d 0 R" % info
    out += trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)
