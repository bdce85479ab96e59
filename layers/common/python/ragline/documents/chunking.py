"""Token-aware chunking with overlap that keeps each chunk's section heading path, and
for paged formats (PDF) the pages it was printed on.

Sizes are in estimated tokens (:func:`ragline.tokens.count_tokens`), the same estimate
the embedders budget their requests with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ragline.documents.loaders import Block, ParsedDocument
from ragline.tokens import count_tokens

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
SECTION_SEPARATOR = " > "
# Blocks whose lines are their structure: an oversized one is cut between lines, and the
# lines of a chunk stay on their own lines. A table's first line is its header row: a chunk
# that starts inside the table repeats it, so every chunk of a sheet reads with its columns.
_LINE_KINDS = frozenset({"code", "table", "list", "record"})


@dataclass(frozen=True)
class Chunk:
    """A piece of a document sized for embedding, with its place in the document."""

    ordinal: int
    text: str
    section: tuple[str, ...]
    token_count: int
    # First and last page of the chunk's text, for formats with pages; None otherwise.
    pages: tuple[int, int] | None = None
    # Where a chunk printed on several pages turns a page: (offset in text, the page that
    # starts there), in order; empty for a chunk on one page or without pages. A search
    # result cites the page that holds its match.
    page_breaks: tuple[tuple[int, int], ...] = ()

    @property
    def metadata(self) -> dict[str, int]:
        """The chunk's place in a paged document: its first and last page, if any."""
        if self.pages is None:
            return {}
        return {"page": self.pages[0], "last_page": self.pages[1]}

    @property
    def row_metadata(self) -> dict[str, Any]:
        """What the chunk's row keeps beside its text: :attr:`metadata`, and where its
        pages turn when it is printed on several."""
        if not self.page_breaks:
            return self.metadata
        return {**self.metadata, "page_breaks": [list(turn) for turn in self.page_breaks]}

    @property
    def heading(self) -> str:
        return SECTION_SEPARATOR.join(self.section)

    def embedding_text(self, title: str) -> str:
        """The text to embed: the title and heading path give the chunk its context."""
        path = SECTION_SEPARATOR.join(p for p in (title, *self.section) if p)
        # Skip the title when the section path already starts with it.
        if self.section and self.section[0] == title:
            path = self.heading
        return f"{path}\n{self.text}" if path else self.text


@dataclass(frozen=True)
class _Unit:
    text: str
    tokens: int
    paragraph: int  # units of one paragraph are joined with a space, others with a blank line
    line: bool = False  # starts a line of a code block or table: a newline, not a space, before it
    header: _Unit | None = None  # a table row's header line, repeated atop a chunk it starts
    page: int | None = None


def _split_block(block: Block, paragraph: int, max_tokens: int) -> list[_Unit]:
    """Break a block into units no longer than ``max_tokens``: sentences, then words."""
    tokens = count_tokens(block.text)
    if tokens <= max_tokens:
        return [_Unit(block.text, tokens, paragraph, page=block.page)]
    by_line = block.kind in _LINE_KINDS
    pieces = block.text.split("\n") if by_line else _SENTENCE_END.split(block.text)
    units: list[_Unit] = []
    header: _Unit | None = None
    for piece in pieces:
        piece_tokens = count_tokens(piece)
        if piece_tokens <= max_tokens:
            if piece.strip():
                units.append(_Unit(piece, piece_tokens, paragraph, by_line, header, block.page))
                if block.kind == "table" and len(units) == 1:
                    header = units[0]
            continue
        words: list[str] = []
        words_tokens = 0
        new_line = by_line  # only a long line's first piece starts a line
        for word in piece.split(" "):
            word_tokens = count_tokens(word)
            if words and words_tokens + word_tokens > max_tokens:
                text = " ".join(words)
                units.append(_Unit(text, count_tokens(text), paragraph, new_line, page=block.page))
                words, words_tokens, new_line = [], 0, False
            words.append(word)
            words_tokens += word_tokens
        if words:
            text = " ".join(words)
            units.append(_Unit(text, count_tokens(text), paragraph, new_line, page=block.page))
    return units


def _join(units: list[_Unit]) -> str:
    parts: list[str] = []
    for index, unit in enumerate(units):
        if index:
            if unit.paragraph != units[index - 1].paragraph:
                parts.append("\n\n")
            else:
                parts.append("\n" if unit.line else " ")
        parts.append(unit.text)
    return "".join(parts)


def _page_breaks(units: list[_Unit]) -> tuple[tuple[int, int], ...]:
    """Where the text :func:`_join` makes of ``units`` turns a page: (offset, new page)."""
    breaks: list[tuple[int, int]] = []
    offset = 0
    page: int | None = None
    for index, unit in enumerate(units):
        if index:
            offset += 2 if unit.paragraph != units[index - 1].paragraph else 1
        if unit.page is not None:
            if page is not None and unit.page != page:
                breaks.append((offset, unit.page))
            page = unit.page
        offset += len(unit.text)
    return tuple(breaks)


def _chunk(ordinal: int, window: list[_Unit], section: tuple[str, ...]) -> Chunk:
    text = _join(window)
    return Chunk(ordinal, text, section, count_tokens(text), _pages(window), _page_breaks(window))


def _pages(units: list[_Unit]) -> tuple[int, int] | None:
    pages = [u.page for u in units if u.page is not None]
    return (min(pages), max(pages)) if pages else None


def _jumps(window: list[_Unit], unit: _Unit) -> bool:
    """Whether ``unit`` is printed more than a page away from the window's text: a
    section resumed after other pages, which one chunk must not present as contiguous."""
    pages = _pages(window)
    if pages is None or unit.page is None:
        return False
    return unit.page < pages[0] or unit.page > pages[1] + 1


def _with_header(window: list[_Unit], unit: _Unit, max_tokens: int) -> tuple[list[_Unit], int]:
    """A new window that starts inside a table, with the table's header line first.

    Carried rows give way to the header when they do not fit the budget together; a row
    too long to share a chunk with its header goes without it.
    """
    tokens = sum(u.tokens for u in window)
    header = (window[0] if window else unit).header
    if header is None:
        return window, tokens
    while window and header.tokens + tokens + unit.tokens > max_tokens:
        tokens -= window.pop(0).tokens
    header = (window[0] if window else unit).header
    if header is None or header.tokens + tokens + unit.tokens > max_tokens:
        return window, tokens
    return [header, *window], header.tokens + tokens


def chunk_document(
    document: ParsedDocument, *, max_tokens: int = 256, overlap: int = 40
) -> list[Chunk]:
    """Cut a parsed document into chunks of at most ``max_tokens`` estimated tokens.

    Chunks never span two sections, so each carries one heading path. Within a section
    consecutive chunks share up to ``overlap`` tokens of whole sentences, so a fact cut
    at a boundary is still whole in one of them. Blocks with pages give each chunk its
    first and last page; a chunk ends where its section skips pages (text resumed after
    a gap), and carries nothing over that gap.
    """
    if overlap >= max_tokens:
        raise ValueError("overlap must be smaller than max_tokens")
    sections: list[tuple[tuple[str, ...], list[_Unit]]] = []
    for paragraph, block in enumerate(document.blocks):
        if not sections or sections[-1][0] != block.section:
            sections.append((block.section, []))
        sections[-1][1].extend(_split_block(block, paragraph, max_tokens))

    chunks: list[Chunk] = []
    for section, units in sections:
        window: list[_Unit] = []
        window_tokens = 0
        fresh = 0  # units in the window not yet emitted in an earlier chunk
        for unit in units:
            if window and _jumps(window, unit):
                if fresh:
                    chunks.append(_chunk(len(chunks), window, section))
                window, window_tokens, fresh = [], 0, 0
            if window and window_tokens + unit.tokens > max_tokens:
                chunks.append(_chunk(len(chunks), window, section))
                # Carry whole trailing units up to the overlap budget into the next chunk.
                carried: list[_Unit] = []
                carried_tokens = 0
                for previous in reversed(window):
                    if carried_tokens + previous.tokens > overlap:
                        break
                    if carried_tokens + previous.tokens + unit.tokens > max_tokens:
                        break
                    carried.insert(0, previous)
                    carried_tokens += previous.tokens
                window, window_tokens, fresh = carried, carried_tokens, 0
                window, window_tokens = _with_header(window, unit, max_tokens)
            window.append(unit)
            window_tokens += unit.tokens
            fresh += 1
        if window and fresh:
            chunks.append(_chunk(len(chunks), window, section))
    return chunks
