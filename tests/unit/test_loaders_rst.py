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


def test_an_indented_line_that_starts_with_a_role_is_text_not_a_field() -> None:
    # GIVEN a warning whose wrapped second line starts with a role (as in subprocess.rst)
    source = b"""Popen
=====

.. warning::

   Use :meth:`~Popen.communicate` rather than :attr:`.stdin.write <Popen.stdin>`,
   :attr:`.stdout.read <Popen.stdout>` or :attr:`.stderr.read <Popen.stderr>` to avoid
   deadlocks.

.. function:: run(args)
   :noindex:
"""
    # WHEN it is parsed
    doc = parse_document("subprocess.rst.txt", source)
    texts = [b.text for b in doc.blocks]
    # THEN the line is kept with its roles as text, while a real field is still dropped
    assert any(
        ".stdin.write, .stdout.read or .stderr.read to avoid deadlocks" in " ".join(t.split())
        for t in texts
    ), texts
    assert not any("noindex" in t for t in texts)
