"""What every loader returns (blocks under their heading path) and the helpers they share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


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


@dataclass(frozen=True)
class Loader:
    """A format: its name, the file suffixes read as it, and the function that reads it."""

    format: str
    suffixes: tuple[str, ...]
    parse: Callable[[str], ParsedDocument]


def split_paragraphs(lines: list[str]) -> list[str]:
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


def open_section(headings: list[tuple[int, str]], level: int, heading: str) -> None:
    """Enter a section: close those at its level or deeper, then open it."""
    while headings and headings[-1][0] >= level:
        headings.pop()
    headings.append((level, heading))
