"""Loaders: each format yields the reader's text under its heading path."""

from __future__ import annotations

import pytest
from ragline.documents import format_for, parse_document
from ragline.errors import DocumentParseError, UnsupportedDocumentError


def test_markdown_keeps_heading_path_and_drops_markup() -> None:
    # GIVEN a Markdown document with nested headings, emphasis, a link, a list and code
    source = b"""# Travel policy

Intro with **bold** and a [link](https://example.com).

## Flights

- Economy for trips under *six* hours.
- Business above that.

```python
book(cabin="economy")
```

### Refunds
Refunds take `14` days.
"""
    # WHEN it is parsed
    doc = parse_document("policy.md", source)

    # THEN the title is the first heading, and each block sits under its full path
    assert doc.title == "Travel policy"
    texts = {(b.section, b.text) for b in doc.blocks}
    assert (("Travel policy",), "Intro with bold and a link.") in texts
    assert (("Travel policy", "Flights"), "Economy for trips under six hours.") in texts
    assert (("Travel policy", "Flights"), "Business above that.") in texts
    assert (("Travel policy", "Flights", "Refunds"), "Refunds take 14 days.") in texts
    code = [b for b in doc.blocks if b.kind == "code"]
    assert code and code[0].text == 'book(cabin="economy")'


def test_markdown_front_matter_title_wins() -> None:
    doc = parse_document("a.md", b"---\ntitle: Handbook\n---\n# Welcome\n\nHello there.\n")
    assert doc.title == "Handbook"
    assert doc.blocks[0].section == ("Welcome",)


def test_rst_sections_directives_and_roles() -> None:
    # GIVEN reStructuredText with over- and underlined titles, a directive and roles
    source = b""":mod:`!secrets` --- Secrets
===========================

.. module:: secrets
   :synopsis: Generate secure random numbers.

Use :func:`token_hex` for ``hex`` tokens.

Recipes
-------

.. function:: token_urlsafe([nbytes=None])

   Return a URL-safe text string.

.. toctree::
   hidden.rst

.. a comment that is not shown
   continued
"""
    # WHEN it is parsed (a .rst.txt name is read as reStructuredText)
    doc = parse_document("secrets.rst.txt", source)

    # THEN roles become plain text, directive signatures are kept, comments dropped
    assert doc.format == "rst"
    assert doc.title == "secrets --- Secrets"
    by_text = {b.text: b.section for b in doc.blocks}
    assert by_text["Generate secure random numbers."] == ("secrets --- Secrets",)
    assert by_text["Use token_hex for hex tokens."] == ("secrets --- Secrets",)
    assert by_text["token_urlsafe([nbytes=None])"] == ("secrets --- Secrets", "Recipes")
    assert by_text["Return a URL-safe text string."] == ("secrets --- Secrets", "Recipes")
    assert not any("hidden.rst" in t or "comment" in t for t in by_text)


def test_html_skips_scripts_and_tracks_headings() -> None:
    source = b"""<html><head><title>Benefits</title><style>p{}</style></head>
<body><nav>Home | About</nav><h1>Benefits</h1><p>Dental &amp; vision.</p>
<h2>Leave</h2><ul><li>25 days of vacation</li><li>10 sick days</li></ul>
<script>track()</script></body></html>"""
    doc = parse_document("benefits.html", source)
    assert doc.title == "Benefits"
    assert [(b.section, b.text) for b in doc.blocks] == [
        (("Benefits",), "Dental & vision."),
        (("Benefits", "Leave"), "25 days of vacation"),
        (("Benefits", "Leave"), "10 sick days"),
    ]


def test_plain_text_paragraphs() -> None:
    doc = parse_document("notes.txt", b"Office hours\n\nWe open at 9\nand close at 5.\n")
    assert doc.title == "Office hours"
    assert [b.text for b in doc.blocks] == ["Office hours", "We open at 9 and close at 5."]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("bad.md", b"\xff\xfe\x00garbage", "NUL"),
        ("bad.html", b"caf\xe9 au lait", "not valid UTF-8"),
        ("empty.txt", b"   \n\n  ", "no text"),
    ],
)
def test_unreadable_content_is_a_parse_error(name: str, data: bytes, message: str) -> None:
    with pytest.raises(DocumentParseError, match=message):
        parse_document(name, data)


def test_unsupported_types_are_named() -> None:
    with pytest.raises(UnsupportedDocumentError, match=r"'\.png'"):
        format_for("photo.png")
    assert format_for("guide.rst.txt") == "rst"
    assert format_for("README.MD") == "markdown"
