"""Text PostgreSQL can store: no NUL characters, no lone UTF-16 surrogates.

A loader may read either from a valid file (JSON's ``"\\u0000"`` and ``"\\ud800"`` are
valid escapes; a PDF's text layer can hold anything), and PostgreSQL refuses both: a NUL
in ``text`` or ``jsonb``, a lone surrogate when the text is encoded to UTF-8. A document
holding one would fail at the write, after the parse, and its new version never land.
So every parsed text is cleaned on its way out of the loaders: NUL removed (it prints
nothing), a lone surrogate replaced by U+FFFD, the replacement character.
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` without NUL, each lone surrogate as U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if _SURROGATE.search(text):
        text = _SURROGATE.sub(REPLACEMENT, text)
    return text


def clean_value(value: Any) -> Any:
    """A JSON-like value (dicts, lists, strings, numbers) with every string cleaned."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_value(key): clean_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [clean_value(item) for item in value]
    return value


def storable(text: str) -> bool:
    """Whether PostgreSQL can store ``text`` as it is."""
    return "\x00" not in text and not _SURROGATE.search(text)
