"""reStructuredText: adornment-styled sections, directives, roles, comments."""

from __future__ import annotations

import re

from ragline.documents.loaders.base import (
    Block,
    Loader,
    ParsedDocument,
    open_section,
    split_paragraphs,
)

_RST_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+<>:._])\1{2,}\s*$")
_RST_DIRECTIVE = re.compile(r"^\s*\.\.\s+([\w:-]+)::\s*(.*)$")
_RST_COMMENT_OR_TARGET = re.compile(r"^\s*\.\.(\s+_[^:]*:.*|\s*$|\s+[^\w\s].*|\s+\w[^:]*$)")
_RST_FIELD = re.compile(r"^\s+:(\w[\w ]*):(?!`)\s*(.*)$")  # not a role (":attr:`x`")
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
    """Blocks under their section path; the first section title is the title."""
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
        for paragraph in split_paragraphs(pending):
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
            open_section(headings, level, _clean_rst_inline(heading))
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


LOADER = Loader("rst", (".rst",), parse=parse_rst)
