"""Markdown: ATX and setext headings, front matter title, fenced code, lists."""

from __future__ import annotations

import re

from ragline.documents.loaders.base import (
    Block,
    Loader,
    ParsedDocument,
    open_section,
    split_paragraphs,
)

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
    """Blocks under their heading path; the front matter title, else the first heading."""
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
        for paragraph in split_paragraphs(pending):
            blocks.append(Block(_clean_markdown_inline(paragraph), section()))
        pending.clear()

    def open_heading(level: int, heading: str) -> None:
        nonlocal title
        flush()
        heading = _clean_markdown_inline(heading).strip()
        open_section(headings, level, heading)
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


LOADER = Loader("markdown", (".md", ".markdown"), parse=parse_markdown)
