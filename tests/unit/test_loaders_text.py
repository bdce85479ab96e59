"""The plain-text loader: paragraphs, and a short first one as the title."""

from __future__ import annotations

from ragline.documents import parse_document


def test_plain_text_paragraphs() -> None:
    doc = parse_document("notes.txt", b"Office hours\n\nWe open at 9\nand close at 5.\n")
    assert doc.title == "Office hours"
    assert [b.text for b in doc.blocks] == ["Office hours", "We open at 9 and close at 5."]
