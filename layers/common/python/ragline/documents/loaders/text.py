"""Plain text: paragraphs at blank lines; a short first paragraph is the title."""

from __future__ import annotations

from ragline.documents.loaders.base import Block, Loader, ParsedDocument, split_paragraphs


def parse_text(text: str) -> ParsedDocument:
    """Paragraphs at blank lines; the first is the title when it is short."""
    paragraphs = split_paragraphs(text.split("\n"))
    title = paragraphs[0] if paragraphs and len(paragraphs[0]) <= 100 else ""
    return ParsedDocument(title=title, format="text", blocks=[Block(p) for p in paragraphs])


LOADER = Loader("text", (".txt", ".text"), parse=parse_text)
