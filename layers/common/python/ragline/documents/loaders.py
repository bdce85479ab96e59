"""Loaders: bytes of one object -> a title and blocks of text, each under its heading path.

Every loader is pure Python (no parser dependencies in the Lambda layer). A loader keeps
what a reader of the rendered document would read and drops markup that only shapes it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import PurePosixPath

from ragline.errors import DocumentParseError, UnsupportedDocumentError


@dataclass(frozen=True)
class Block:
    """A paragraph (or code block) of text under its section heading path."""

    text: str
    section: tuple[str, ...] = ()
    kind: str = "text"


@dataclass
class ParsedDocument:
    """What a loader returns: the title, the format it was read as, and the blocks."""

    title: str
    format: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n\n".join(block.text for block in self.blocks)


def format_for(name: str) -> str:
    """The format of an object from its key or file name; raises UnsupportedDocumentError.

    ``guide.rst.txt`` is read as reStructuredText (a common way to publish rst sources).
    """
    path = PurePosixPath(name.lower())
    suffixes = path.suffixes
    for suffix in (suffixes[-2:-1] if len(suffixes) > 1 and suffixes[-1] == ".txt" else []) + [
        path.suffix
    ]:
        if suffix in _FORMATS_BY_SUFFIX:
            return _FORMATS_BY_SUFFIX[suffix]
    raise UnsupportedDocumentError(
        f"unsupported document type {path.suffix or '(no extension)'!r}; "
        f"supported: {', '.join(sorted(_FORMATS_BY_SUFFIX))}"
    )


def parse_document(name: str, data: bytes) -> ParsedDocument:
    """Parse an object's bytes by its name's extension.

    Raises UnsupportedDocumentError for types without a loader and DocumentParseError
    for content that cannot be read as a document of its type.
    """
    fmt = format_for(name)
    text = _decode(data)
    parsed = _LOADERS[fmt](text)
    parsed.blocks = [b for b in parsed.blocks if b.text.strip()]
    if not parsed.blocks:
        raise DocumentParseError("the document contains no text")
    if not parsed.title:
        parsed.title = PurePosixPath(name).name.split(".")[0].replace("_", " ").replace("-", " ")
    return parsed


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise DocumentParseError("binary content (NUL bytes) in a text document")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentParseError(
            f"not valid UTF-8 text (invalid byte at offset {exc.start})"
        ) from exc
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _paragraphs(lines: list[str]) -> list[str]:
    """Split lines into paragraphs at blank lines, joining wrapped lines with spaces."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in lines:
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return paragraphs


def _open_section(headings: list[tuple[int, str]], level: int, heading: str) -> None:
    """Enter a section: close those at its level or deeper, then open it."""
    while headings and headings[-1][0] >= level:
        headings.pop()
    headings.append((level, heading))


# --- plain text ---------------------------------------------------------------------------


def parse_text(text: str) -> ParsedDocument:
    paragraphs = _paragraphs(text.split("\n"))
    title = paragraphs[0] if paragraphs and len(paragraphs[0]) <= 100 else ""
    return ParsedDocument(title=title, format="text", blocks=[Block(p) for p in paragraphs])


# --- Markdown -----------------------------------------------------------------------------

_MD_ATX = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_MD_FENCE = re.compile(r"^(```|~~~)")
_MD_SETEXT = re.compile(r"^(=+|-+)\s*$")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|`)")
_MD_LIST_ITEM = re.compile(r"^\s*([-*+]|\d+[.)])\s+")


def _clean_markdown_inline(text: str) -> str:
    text = _MD_LINK.sub(r"\1", text)
    return _MD_EMPHASIS.sub("", text)


def parse_markdown(text: str) -> ParsedDocument:
    lines = text.split("\n")
    title = ""
    if lines and lines[0].strip() == "---":  # front matter
        for index in range(1, len(lines)):
            if lines[index].strip() == "---":
                for meta in lines[1:index]:
                    key, _, value = meta.partition(":")
                    if key.strip().lower() == "title":
                        title = value.strip().strip("\"'")
                lines = lines[index + 1 :]
                break

    blocks: list[Block] = []
    headings: list[tuple[int, str]] = []
    pending: list[str] = []

    def section() -> tuple[str, ...]:
        return tuple(h for _, h in headings)

    def flush() -> None:
        for paragraph in _paragraphs(pending):
            blocks.append(Block(_clean_markdown_inline(paragraph), section()))
        pending.clear()

    def open_heading(level: int, heading: str) -> None:
        nonlocal title
        flush()
        heading = _clean_markdown_inline(heading).strip()
        _open_section(headings, level, heading)
        title = title or heading

    index = 0
    while index < len(lines):
        line = lines[index]
        if _MD_FENCE.match(line.strip()):
            flush()
            fence = line.strip()[:3]
            code: list[str] = []
            index += 1
            while index < len(lines) and not lines[index].strip().startswith(fence):
                code.append(lines[index])
                index += 1
            if any(c.strip() for c in code):
                blocks.append(Block("\n".join(code).strip("\n"), section(), kind="code"))
        elif match := _MD_ATX.match(line):
            open_heading(len(match.group(1)), match.group(2))
        elif (
            line.strip()
            and index + 1 < len(lines)
            and _MD_SETEXT.match(lines[index + 1])
            and not pending
        ):
            open_heading(1 if lines[index + 1].lstrip().startswith("=") else 2, line)
            index += 1
        else:
            if _MD_LIST_ITEM.match(line):
                pending.append("")  # each list item is a paragraph of its own
            pending.append(_MD_LIST_ITEM.sub("", line))
        index += 1
    flush()
    return ParsedDocument(title=title, format="markdown", blocks=blocks)


# --- reStructuredText ---------------------------------------------------------------------

_RST_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+<>:._])\1{2,}\s*$")
_RST_DIRECTIVE = re.compile(r"^\s*\.\.\s+([\w:-]+)::\s*(.*)$")
_RST_COMMENT_OR_TARGET = re.compile(r"^\s*\.\.(\s+_[^:]*:.*|\s*$|\s+[^\w\s].*|\s+\w[^:]*$)")
_RST_FIELD = re.compile(r"^\s+:(\w[\w ]*):\s*(.*)$")
_RST_ROLE = re.compile(r":[\w:+-]+:`([^`<]*?)(?:\s*<[^>]*>)?`")
_RST_LITERAL = re.compile(r"``([^`]*)``")
_RST_REF = re.compile(r"`([^`<]+?)(?:\s*<[^>]*>)?`_{1,2}")
_RST_EMPHASIS = re.compile(r"(\*\*|\*)")
# Directives whose arguments name an API object: their argument line is kept as text.
_RST_SIGNATURE_DIRECTIVES = {
    "module",
    "function",
    "class",
    "method",
    "attribute",
    "data",
    "exception",
    "decorator",
    "classmethod",
    "staticmethod",
    "opcode",
    "cmdoption",
    "option",
    "envvar",
    "describe",
    "index",
}
_RST_SKIPPED_DIRECTIVES = {
    "toctree", "image", "figure", "raw", "include", "testsetup", "moduleauthor", "sectionauthor",
    "highlight", "only",
}  # fmt: skip
_RST_KEPT_FIELDS = {"synopsis"}


def _clean_rst_inline(text: str) -> str:
    text = _RST_ROLE.sub(lambda m: m.group(1).lstrip("~!"), text)
    text = _RST_LITERAL.sub(r"\1", text)
    text = _RST_REF.sub(r"\1", text)
    return _RST_EMPHASIS.sub("", text)


def parse_rst(text: str) -> ParsedDocument:
    lines = text.split("\n")
    blocks: list[Block] = []
    styles: list[tuple[str, bool]] = []  # adornment styles in order of first appearance
    headings: list[tuple[int, str]] = []
    pending: list[str] = []
    title = ""
    skip_indent: int | None = None

    def section() -> tuple[str, ...]:
        return tuple(h for _, h in headings)

    def flush() -> None:
        for paragraph in _paragraphs(pending):
            cleaned = _clean_rst_inline(paragraph).strip()
            if cleaned and cleaned != "::":
                blocks.append(Block(cleaned.removesuffix("::").rstrip() or cleaned, section()))
        pending.clear()

    index = 0
    while index < len(lines):
        line = lines[index]
        indent = len(line) - len(line.lstrip())
        if skip_indent is not None:
            if line.strip() and indent <= skip_indent:
                skip_indent = None
            else:
                index += 1
                continue

        # Section titles: optional overline, title, underline at least as long as the title.
        overline = bool(_RST_ADORNMENT.match(line)) and index + 2 < len(lines)
        if (
            overline
            and lines[index + 1].strip()
            and _RST_ADORNMENT.match(lines[index + 2])
            and lines[index + 2].strip()[0] == line.strip()[0]
        ):
            heading, char, consumed = lines[index + 1].strip(), line.strip()[0], 3
        elif (
            line.strip()
            and indent == 0
            and index + 1 < len(lines)
            and _RST_ADORNMENT.match(lines[index + 1])
            and len(lines[index + 1].strip()) >= len(line.strip())
            and (index == 0 or not lines[index - 1].strip())
        ):
            heading, char, consumed, overline = line.strip(), lines[index + 1].strip()[0], 2, False
        else:
            heading = ""
        if heading:
            flush()
            style = (char, overline)
            if style not in styles:
                styles.append(style)
            level = styles.index(style)
            _open_section(headings, level, _clean_rst_inline(heading))
            title = title or _clean_rst_inline(heading)
            index += consumed
            continue

        if directive := _RST_DIRECTIVE.match(line):
            flush()
            name, argument = directive.group(1).lower(), directive.group(2).strip()
            if name in _RST_SKIPPED_DIRECTIVES:
                skip_indent = indent
            elif argument and (name.split(":")[-1] in _RST_SIGNATURE_DIRECTIVES):
                pending.append(argument)
                pending.append("")
            elif argument:
                pending.append(argument)
        elif _RST_COMMENT_OR_TARGET.match(line):
            flush()
            if not line.strip().startswith(".. _"):
                skip_indent = indent  # a comment swallows its indented body
        elif field_match := _RST_FIELD.match(line):
            if field_match.group(1).lower() in _RST_KEPT_FIELDS and field_match.group(2):
                flush()
                pending.append(field_match.group(2))
                pending.append("")
        else:
            pending.append(line)
        index += 1
    flush()
    return ParsedDocument(title=title, format="rst", blocks=blocks)


# --- HTML ---------------------------------------------------------------------------------

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
                _open_section(self._headings, level, heading)
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
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    parser._flush()
    title = parser.title or (parser._headings[0][1] if parser._headings else "")
    return ParsedDocument(title=title, format="html", blocks=parser.blocks)


_LOADERS: dict[str, Callable[[str], ParsedDocument]] = {
    "text": parse_text,
    "markdown": parse_markdown,
    "rst": parse_rst,
    "html": parse_html,
}
_FORMATS_BY_SUFFIX = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".rst": "rst",
    ".html": "html",
    ".htm": "html",
}
