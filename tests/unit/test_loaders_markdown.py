"""The Markdown loader: heading paths, front matter, lists and code."""

from __future__ import annotations

from ragline.documents import parse_document


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
