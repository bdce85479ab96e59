"""The reStructuredText loader: sections, directives, roles and comments."""

from __future__ import annotations

from ragline.documents import parse_document


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
