"""The grounding and citation guard: what an answer may rest on, and what it may say.

Before generation, passages less similar to the question than the profile's
``min_score`` are dropped. After it, an answer is either the template's abstention
sentence or text grounded in the numbered passages it cites as ``[n]``; a profile that
requires citations turns an answer citing none of them into an abstention.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ragline.store import RetrievedChunk

_CITATION = re.compile(r"\[(\d+)\]")


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


def check_answer(
    text: str, chunks: list[RetrievedChunk], *, abstain_text: str, require_citations: bool
) -> Verdict:
    """Judge a model's answer against the passages it was given (numbered from 1).

    The answer's sources are the passages it cites, or all of them when it cites none;
    an abstention has no sources.
    """
    text = text.strip()
    abstained = is_abstention(text, abstain_text)
    cited = {int(n) for n in _CITATION.findall(text)}
    if require_citations and not abstained and not cited & set(range(1, len(chunks) + 1)):
        # An answer that cites nothing cannot be checked against the sources: withhold it.
        return Verdict(abstain_text, True, [], withheld=True)
    if abstained:
        return Verdict(text, True, [])
    numbered = enumerate(chunks, start=1)
    return Verdict(text, False, [(n, c) for n, c in numbered if not cited or n in cited])
