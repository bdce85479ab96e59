"""Fences around retrieved passages, so document text cannot pass for the prompt's own
structure.

Each passage of a prompt sits between ``<passage n="1" fence="…">`` and
``</passage fence="…">``, where the fence id is random per request: a document cannot
know it, so it cannot close its passage early and write a passage or a question of its
own after it. Inside a passage, text that looks like a fence (``<passage``) or like a
passage heading (``[7]`` opening a line) is neutralised as well, so even a model that
reads loosely sees one passage per fence.
"""

from __future__ import annotations

import re
import secrets

# What a document could write to look like a fence: the tag opening or closing.
_FENCE_LIKE = re.compile(r"<(\s*/?\s*passage)", re.IGNORECASE)
# A passage heading opening a line ("[7] Rental policy"); a citation inside a line stays.
_HEADING_LIKE = re.compile(r"^(\s*)\[(\d+)\]", re.MULTILINE)


def new_fence() -> str:
    """A fence id for one prompt: random, so no stored document can contain it."""
    return secrets.token_hex(6)  # 48 bits: no document guesses it; few tokens a fence


def neutralise(text: str) -> str:
    """Document text with fence-like tags and line-opening passage numbers defused
    (``<passage`` becomes ``‹passage``, ``[7]`` opening a line becomes ``(7)``)."""
    text = _FENCE_LIKE.sub(r"‹\1", text)
    return _HEADING_LIKE.sub(r"\1(\2)", text)


def fence(n: int, heading: str, text: str, fence_id: str) -> str:
    """Passage ``n`` as the model reads it: fenced, numbered, then the document's text."""
    body = f"[{n}] {neutralise(heading)}\n{neutralise(text)}".strip()
    return f'<passage n="{n}" fence="{fence_id}">\n{body}\n</passage fence="{fence_id}">'
