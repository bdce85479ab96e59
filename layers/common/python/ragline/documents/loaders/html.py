"""HTML: text by block element under h1-h6, without scripts, styles and navigation."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from ragline.documents.loaders.base import Block, Loader, ParsedDocument, open_section

_HTML_BLOCK_TAGS = {
    "p", "div", "li", "tr", "br", "section", "article", "blockquote", "dd", "dt", "table",
    "ul", "ol", "pre", "main", "header", "footer", "figcaption", "td", "th",
}  # fmt: skip
_HTML_SKIPPED_TAGS = {"script", "style", "nav", "noscript", "template", "svg", "head"}


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.title = ""
        self._headings: list[tuple[int, str]] = []
        self._buffer: list[str] = []
        self._heading_level: int | None = None
        self._heading_buffer: list[str] = []
        self._skip_depth = 0
        self._in_title = False
        self._in_pre = 0

    def _section(self) -> tuple[str, ...]:
        return tuple(h for _, h in self._headings)

    def _flush(self) -> None:
        raw = "".join(self._buffer)
        text = raw.strip("\n") if self._in_pre else " ".join(raw.split())
        if text.strip():
            self.blocks.append(Block(text, self._section(), "code" if self._in_pre else "text"))
        self._buffer = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HTML_SKIPPED_TAGS:
            self._skip_depth += 1
        elif tag == "title":
            self._in_title = True
        elif re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self._heading_level = int(tag[1])
            self._heading_buffer = []
        elif tag in _HTML_BLOCK_TAGS:
            self._flush()
            if tag == "pre":
                self._in_pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _HTML_SKIPPED_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag == "title":
            self._in_title = False
        elif re.fullmatch(r"h[1-6]", tag) and self._heading_level is not None:
            heading = " ".join("".join(self._heading_buffer).split())
            level = self._heading_level
            self._heading_level = None
            if heading:
                open_section(self._headings, level, heading)
                if level == 1 and not self.title:
                    self.title = heading
        elif tag in _HTML_BLOCK_TAGS:
            self._flush()
            if tag == "pre":
                self._in_pre = max(0, self._in_pre - 1)

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title = self.title or " ".join(data.split())
        elif self._skip_depth:
            return
        elif self._heading_level is not None:
            self._heading_buffer.append(data)
        else:
            self._buffer.append(data)


def parse_html(text: str) -> ParsedDocument:
    """Blocks under their h1-h6 path; the <title>, else the first heading, is the title."""
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    parser._flush()
    title = parser.title or (parser._headings[0][1] if parser._headings else "")
    return ParsedDocument(title=title, format="html", blocks=parser.blocks)


LOADER = Loader("html", (".html", ".htm"), parse_html)
