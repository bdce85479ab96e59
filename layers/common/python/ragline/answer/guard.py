"""The grounding and citation guard: what an answer may rest on, and what it may say.

Before generation, passages less similar to the question than the profile's
``min_score`` are dropped. After it, an answer is either the template's abstention
sentence or text grounded in the numbered passages it cites as ``[n]``; a profile that
requires citations turns an answer citing none of them into an abstention.

Passages are untrusted: a document may carry instructions aimed at the model ("ignore
previous instructions ..."). The prompt fences passages and says to ignore them; after
generation, an answer that repeats an instruction-like sentence of a passage is flagged
for review (:func:`instruction_echo`), since the model most likely obeyed it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ragline.store import RetrievedChunk

_CITATION = re.compile(r"\[(\d+)\]")
# Phrases that address the model rather than inform a reader. An answer repeating one of
# them word for word from a passage is the mark of an injection that worked.
_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+|the\s+)?"
    r"(?:previous|prior|above|earlier|preceding|your|these|those|other|system|all|any)\b"
    r"[^.!?\n]{0,30}?\b(?:instructions?|rules|prompts?|directions|guidelines|messages?)\b"
    r"|\bdisregard (?:all |everything |the )?(?:above|previous|prior)\b"
    r"|\byou are now\b"
    r"|\bsystem prompt\b"
    r"|\bnew instructions?\s*:"
    r"|\bdeveloper mode\b",
    re.IGNORECASE,
)
# An echo shorter than this many words could be a coincidence of ordinary prose.
_MIN_ECHO_WORDS = 3


def similar_enough(chunks: list[RetrievedChunk], min_score: float | None) -> list[RetrievedChunk]:
    """The chunks at least ``min_score`` similar to the question (all when no bar is set);
    a chunk of unknown similarity does not clear a bar."""
    if min_score is None:
        return chunks
    return [c for c in chunks if c.similarity is not None and c.similarity >= min_score]


def is_abstention(text: str, abstain_text: str) -> bool:
    """Whether ``text`` is the abstention sentence (case and punctuation aside)."""

    def normalize(value: str) -> str:
        return re.sub(r"[^a-z ]", "", value.lower()).strip()

    return normalize(text).startswith(normalize(abstain_text))


@dataclass(frozen=True)
class Verdict:
    """The answer as it may be returned, and the numbered passages it rests on."""

    text: str
    abstained: bool
    sources: list[tuple[int, RetrievedChunk]]
    # The model answered but cited no passage, under a profile requiring citations.
    withheld: bool = False
    # Why a person should look at this answer (an instruction from a passage repeated).
    review_reason: str | None = None


def _words(text: str) -> str:
    """Lowercase words separated by single spaces: punctuation and citations aside."""
    return " ".join(re.findall(r"[a-z0-9]+", _CITATION.sub(" ", text).lower()))


def instruction_echo(text: str, chunks: list[RetrievedChunk]) -> str | None:
    """Why the answer needs review when it repeats an instruction-like sentence of a
    passage (from the instruction to the end of its sentence, word for word), else None."""
    passages = [(n, _words(c.text)) for n, c in enumerate(chunks, start=1)]
    for match in _INSTRUCTION.finditer(text):
        tail = re.split(r"[.!?\n]", text[match.start() :], maxsplit=1)[0]
        echo = _words(tail)
        if len(echo.split()) < _MIN_ECHO_WORDS:
            continue
        for n, words in passages:
            if f" {echo} " in f" {words} ":
                return f"the answer repeats an instruction found in passage [{n}]: {tail.strip()!r}"
    return None


def check_answer(
    text: str, chunks: list[RetrievedChunk], *, abstain_text: str, require_citations: bool
) -> Verdict:
    """Judge a model's answer against the passages it was given (numbered from 1).

    The answer's sources are the passages it cites, or all of them when it cites none;
    an abstention has no sources, and an empty answer is an abstention. An answer echoing
    a passage's instruction carries a ``review_reason``.
    """
    text = text.strip()
    if not text:
        # A model that wrote nothing answered nothing: an abstention, not an empty answer
        # beside every passage as its "sources".
        return Verdict(abstain_text, True, [], withheld=True)
    abstained = is_abstention(text, abstain_text)
    cited = {int(n) for n in _CITATION.findall(text)}
    if require_citations and not abstained and not cited & set(range(1, len(chunks) + 1)):
        # An answer that cites nothing cannot be checked against the sources: withhold it.
        return Verdict(abstain_text, True, [], withheld=True)
    if abstained:
        return Verdict(text, True, [])
    numbered = enumerate(chunks, start=1)
    sources = [(n, c) for n, c in numbered if not cited or n in cited]
    return Verdict(text, False, sources, review_reason=instruction_echo(text, chunks))
