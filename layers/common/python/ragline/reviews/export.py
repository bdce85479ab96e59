"""Reviewed answers as evaluation cases: what production asked, judged by a person.

One JSON line per decided item, in the format ``ragline eval`` reads
(:mod:`ragline.evaluation.dataset`):

* approved: the question, ``gold`` the documents its answer cites (``pages`` too when
  every cited passage has pages), ``answer`` the approved text, ``must_contain`` the
  reviewer's phrases, else the numbers the answer states;
* corrected: the same from the correction: the passages the reviewer chose are the gold,
  and ``must_contain`` the reviewer's phrases, else the words the correction added;
* rejected because the documents do not answer (``not_in_documents``): ``gold`` ``[]``,
  a case the model must abstain on. Other rejections say what is wrong, not what is
  right: they are counted and left out.

A gold path is the source without its scheme and host (``s3://bucket/hr/leave.pdf#page=3``
is ``hr/leave.pdf``; an evaluation corpus's ``eval://<collection>/a.md`` is ``a.md``), which
``ragline eval`` matches against the end of each cited source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ragline.reviews.models import ReviewItem
    from ragline.schemas import Citation

_MAX_PHRASES = 3
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}|\d+(?:[.,]\d+)*")
_MARKER = re.compile(r"\[\d+\]")
# Words too common to say what a correction changed.
_COMMON = frozenset(
    [
        "about",
        "after",
        "also",
        "been",
        "before",
        "could",
        "each",
        "every",
        "from",
        "have",
        "into",
        "only",
        "should",
        "since",
        "than",
        "that",
        "their",
        "them",
        "then",
        "there",
        "they",
        "this",
        "were",
        "what",
        "when",
        "which",
        "will",
        "with",
        "would",
        "your",
    ]
)


def gold_path(source: str) -> str:
    """A citation's source as a gold path: no ``#page=``, no scheme and host."""
    source = source.split("#", 1)[0]
    _, sep, rest = source.partition("://")
    if not sep:
        return source
    return rest.partition("/")[2] or rest


def _gold(citations: list[Citation]) -> tuple[list[str], list[int]]:
    paths = list(dict.fromkeys(gold_path(c.source) for c in citations))
    pages = [c.page for c in citations if c.page is not None]
    return paths, (list(dict.fromkeys(pages)) if len(pages) == len(citations) else [])


def added_words(original: str, corrected: str) -> list[str]:
    """Words and numbers of ``corrected`` that ``original`` lacks (case-insensitive), in
    order, at most three: what the correction says that the answer did not."""
    before = {w.lower() for w in _WORD.findall(_MARKER.sub(" ", original))}
    found: list[str] = []
    for word in _WORD.findall(_MARKER.sub(" ", corrected)):
        if word.lower() not in before | _COMMON and word not in found:
            found.append(word)
    return found[:_MAX_PHRASES]


def stated_numbers(answer: str) -> list[str]:
    """The numbers an answer states (not its [n] markers), at most three."""
    return list(dict.fromkeys(_NUMBER.findall(_MARKER.sub(" ", answer))))[:_MAX_PHRASES]


@dataclass
class Export:
    """The cases, and how many decided items were left out and why."""

    cases: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1


def case(item: ReviewItem, must_contain: list[str] | None) -> dict[str, Any] | None:
    """One decided item as an evaluation case; None when it makes none."""
    base = {
        "id": f"review-{item.id}",
        "question": item.question,
        "review": {
            "id": item.id,
            "state": item.state,
            "model": item.model,
            "prompt": item.prompt,
            "decided_by": item.decided_by,
            "decided_at": None if item.decided_at is None else item.decided_at.isoformat(),
        },
    }
    if item.state == "rejected":
        if item.decision_category != "not_in_documents":
            return None
        return {**base, "gold": [], "answer": "", "must_contain": []}
    final = item.final_answer or ""
    gold, pages = _gold(item.final_citations or [])
    if not gold:  # approved or corrected on no passage: nothing to retrieve or cite
        return None
    if must_contain is None:
        must_contain = (
            added_words(item.answer, final) if item.state == "corrected" else stated_numbers(final)
        )
    found = {"gold": gold, "answer": final, "must_contain": must_contain}
    return {**base, **found, **({"pages": pages} if pages else {})}


def export_cases(items: Iterable[tuple[ReviewItem, list[str] | None]]) -> Export:
    """The decided items (each with the reviewer's must-contain phrases, or None) as
    evaluation cases, newest decision last."""
    export = Export()
    for item, must_contain in items:
        if item.state not in ("approved", "corrected", "rejected"):
            export.skip("not decided")
            continue
        made = case(item, must_contain)
        if made is None:
            why = "rejected, not for want of documents" if item.state == "rejected" else "no source"
            export.skip(why)
            continue
        export.cases.append(made)
    return export
