"""What every loader returns (blocks under their heading path) and the helpers they share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ragline.errors import DocumentParseError


@dataclass(frozen=True)
class Block:
    """A paragraph (or code block, or table) of text under its section heading path, and
    the page it is printed on, for formats that have pages (1-based; None otherwise)."""

    text: str
    section: tuple[str, ...] = ()
    kind: str = "text"
    page: int | None = None


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
    """A format: its name, the file suffixes read as it, and the function that reads it.

    Text formats read the decoded text (``parse``: UTF-8 checked, newlines normalised, by
    the registry); binary formats (PDF, Office files) read the object's bytes
    (``parse_bytes``) and import their parser inside it, so a cold start pays only for
    the formats it meets. A loader sets exactly one of the two.
    """

    format: str
    suffixes: tuple[str, ...]
    parse: Callable[[str], ParsedDocument] | None = None
    parse_bytes: Callable[[bytes], ParsedDocument] | None = None

    def __post_init__(self) -> None:
        if (self.parse is None) == (self.parse_bytes is None):
            raise ValueError(f"loader {self.format!r} must set exactly one of parse, parse_bytes")

    def read(self, data: bytes) -> ParsedDocument:
        """Parse an object's bytes as this format."""
        if self.parse_bytes is not None:
            return self.parse_bytes(data)
        assert self.parse is not None  # __post_init__: one of the two is set
        return self.parse(decode_text(data))


def decode_text(data: bytes) -> str:
    """A text document's bytes as text: UTF-8 (a BOM allowed), newlines as ``\\n``.

    Raises DocumentParseError for binary content or invalid UTF-8.
    """
    if b"\x00" in data[:8192]:
        raise DocumentParseError("binary content (NUL bytes) in a text document")
    try:
        decoded = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentParseError(
            f"not valid UTF-8 text (invalid byte at offset {exc.start})"
        ) from exc
    return decoded.replace("\r\n", "\n").replace("\r", "\n")


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
