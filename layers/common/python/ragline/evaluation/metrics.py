"""Ranking and answer metrics, as plain functions of ranked relevance.

A ranking is the list of documents (relative paths) the retrieved chunks came from, best
first; several chunks of one document appear as repeats. Relevance is binary and counted
per document: the first chunk of a gold document is a hit, its later chunks add nothing,
so a page split into many chunks cannot outweigh a second gold page.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence


def first_hit(ranking: Sequence[str], gold: Collection[str]) -> int | None:
    """The 1-based rank of the first document in ``gold``, or None."""
    for rank, document in enumerate(ranking, start=1):
        if document in gold:
            return rank
    return None


def hit_at(ranking: Sequence[str], gold: Collection[str], k: int) -> bool:
    """Whether a gold document is among the first ``k``."""
    rank = first_hit(ranking, gold)
    return rank is not None and rank <= k


def page_hit_at(spans: Sequence[tuple[int, int] | None], pages: Collection[int], k: int) -> bool:
    """Whether one of the first ``k`` passages is printed on a gold page: ``spans`` are the
    first and last page of each passage from a gold document, None for the others."""
    return any(
        span is not None and any(span[0] <= page <= span[1] for page in pages) for span in spans[:k]
    )


def reciprocal_rank(ranking: Sequence[str], gold: Collection[str], k: int = 10) -> float:
    """1 / rank of the first gold document within the first ``k``; 0 when there is none
    (the per-question term of MRR@k)."""
    rank = first_hit(ranking[:k], gold)
    return 0.0 if rank is None else 1.0 / rank


def ndcg(ranking: Sequence[str], gold: Collection[str], k: int = 10) -> float:
    """nDCG@k with binary gains, each gold document counted once, at its first rank.

    DCG sums 1 / log2(rank + 1) over those ranks; the ideal ranking puts
    min(|gold|, k) gold documents first.
    """
    if not gold:
        return 0.0
    seen: set[str] = set()
    dcg = 0.0
    for rank, document in enumerate(ranking[:k], start=1):
        if document in gold and document not in seen:
            seen.add(document)
            dcg += 1.0 / math.log2(rank + 1)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(gold), k) + 1))
    return dcg / ideal


def contains_all(answer: str, phrases: Sequence[str]) -> bool:
    """Whether every phrase occurs in the answer, case-insensitively (casefolded)."""
    text = answer.casefold()
    return all(phrase.casefold() in text for phrase in phrases)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by linear interpolation between closest ranks, as
    PostgreSQL's percentile_cont and ``ragline stats`` compute it; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def mean(values: Sequence[float]) -> float | None:
    """The arithmetic mean; None when there is nothing to average."""
    return sum(values) / len(values) if values else None
