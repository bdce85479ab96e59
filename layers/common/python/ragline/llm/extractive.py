"""The extractive model: the embedded default, no model weights, no network.

It answers with the retrieved sentences that cover the most of the question's content
words, cites each as [n], and abstains when no passage covers enough of the question.
Names that look like identifiers (``max_workers``, ``os.path``, ``ThreadGate``) weigh
double: a question about a name the passages never mention is not answered by them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ragline.llm.base import ChatModel, Completion, GenerationRequest, Usage
from ragline.tokens import count_tokens

if TYPE_CHECKING:
    from ragline.config import Settings

_WORD = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n+")
_STOPWORD_TEXT = """
    a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers him his how i if in into is it its
    itself just me more most my no nor not of off on once only or other our out over own
    same she should so some such than that the their them then there these they this those
    through to too under until up very was we were what when where which while who whom why
    will with would you your yours get got use using used way want need there's what's it's
    i'm let lets tell show give please know much many also one ones thing things kind make
    makes
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def _stem(word: str) -> str:
    for suffix, replacement in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)] + replacement
    return word


def _is_identifier(word: str) -> bool:
    return (
        "_" in word
        or "." in word
        or any(ch.isdigit() for ch in word)
        or (word[0].islower() is False and any(ch.isupper() for ch in word[1:]))
    )


def content_terms(text: str) -> dict[str, float]:
    """Stemmed content words of ``text`` with their weights (identifiers weigh double)."""
    terms: dict[str, float] = {}
    for raw in _WORD.findall(text):
        word = raw.lower()
        if word in _STOPWORDS or (len(word) < 2 and not word.isdigit()):
            continue
        if not _is_identifier(raw):
            stemmed = _stem(word)
            terms[stemmed] = max(terms.get(stemmed, 0.0), 1.0)
            continue
        # Identifiers match exactly (no stemming); dotted names also by their parts.
        terms[word] = 2.0
        for part in word.split(".") if "." in word else ():
            terms.setdefault(part, 1.0)
    return terms


@dataclass(frozen=True)
class _Candidate:
    score: float
    rank: int
    position: int
    n: int
    sentence: str


class ExtractiveModel(ChatModel):
    """Answers with the best supporting sentences of the passages, cited as [n]."""

    provider = "extractive"
    model = "extractive"

    def __init__(self, *, min_coverage: float = 0.5, max_sentences: int = 3) -> None:
        self.min_coverage = min_coverage
        self.max_sentences = max_sentences

    @classmethod
    def from_settings(cls, model: str, settings: Settings) -> ExtractiveModel:
        """``extractive``: no weights, nothing to configure."""
        return cls()

    def generate(self, request: GenerationRequest) -> Completion:
        text = self._answer(request)
        read = request.question + "".join(p.text for p in request.passages)
        usage = Usage(count_tokens(read), count_tokens(text), 0, estimated=True)
        return Completion(text, usage, self.provider, self.model)

    def _answer(self, request: GenerationRequest) -> str:
        question = content_terms(request.question)
        total = sum(question.values())
        if not question or not request.passages:
            return request.abstain_text

        def coverage(text: str) -> float:
            found = content_terms(text)
            return sum(w for term, w in question.items() if term in found) / total

        best_passage = max(coverage(f"{p.section} {p.text}") for p in request.passages)
        if best_passage < self.min_coverage:
            return request.abstain_text

        candidates: list[_Candidate] = []
        for rank, passage in enumerate(request.passages):
            for position, sentence in enumerate(_SENTENCE_SPLIT.split(passage.text)):
                sentence = " ".join(sentence.split())
                if len(sentence) < 12:
                    continue
                # The section heading counts toward the sentence it introduces.
                score = 0.8 * coverage(sentence) + 0.2 * coverage(f"{passage.section} {sentence}")
                if score > 0:
                    candidates.append(_Candidate(score, rank, position, passage.n, sentence))
        if not candidates:
            return request.abstain_text
        candidates.sort(key=lambda c: (-c.score, c.rank, c.position))
        floor = max(0.2, candidates[0].score * 0.7)
        chosen: list[_Candidate] = []
        covered: set[str] = set()
        for candidate in candidates:
            if candidate.score < floor or len(chosen) == self.max_sentences:
                break
            # A further sentence must add a question word the answer lacks so far;
            # otherwise it repeats the first one or drifts to a neighbouring topic.
            terms = set(content_terms(candidate.sentence)) & question.keys()
            if chosen and not terms - covered:
                continue
            covered |= terms
            chosen.append(candidate)
        return " ".join(f"{_shorten(c.sentence)} [{c.n}]" for c in chosen)


def _shorten(sentence: str, limit: int = 60) -> str:
    words = sentence.split()
    return sentence if len(words) <= limit else " ".join(words[:limit]) + " …"
