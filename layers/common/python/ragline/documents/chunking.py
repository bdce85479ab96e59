"""Token-aware chunking with overlap that keeps each chunk's section heading path.

Sizes are in estimated tokens (:func:`ragline.tokens.count_tokens`), the same estimate
the embedders budget their requests with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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


def _split_block(block: Block, paragraph: int, max_tokens: int) -> list[_Unit]:
    """Break a block into units no longer than ``max_tokens``: sentences, then words."""
    tokens = count_tokens(block.text)
    if tokens <= max_tokens:
        return [_Unit(block.text, tokens, paragraph)]
    by_line = block.kind in _LINE_KINDS
    pieces = block.text.split("\n") if by_line else _SENTENCE_END.split(block.text)
    units: list[_Unit] = []
    header: _Unit | None = None
    for piece in pieces:
        piece_tokens = count_tokens(piece)
        if piece_tokens <= max_tokens:
            if piece.strip():
                units.append(_Unit(piece, piece_tokens, paragraph, by_line, header))
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
                units.append(_Unit(text, count_tokens(text), paragraph, new_line))
                words, words_tokens, new_line = [], 0, False
            words.append(word)
            words_tokens += word_tokens
        if words:
            text = " ".join(words)
            units.append(_Unit(text, count_tokens(text), paragraph, new_line))
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
    at a boundary is still whole in one of them.
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
            if window and window_tokens + unit.tokens > max_tokens:
                text = _join(window)
                chunks.append(Chunk(len(chunks), text, section, count_tokens(text)))
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
            text = _join(window)
            chunks.append(Chunk(len(chunks), text, section, count_tokens(text)))
    return chunks
