"""The quality bar a model must meet, such as ``hit@5>=0.9,answer>=0.8,abstain>=1.0``.

Each term compares one metric with a threshold. Retrieval metrics are those of the
mode answers retrieve with (hybrid, as ``POST /query``), so they are the same for
every model: when retrieval misses the bar, no model meets it.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ragline.errors import ConfigurationError

# metric -> what it is, for the error message that lists them
METRICS: dict[str, str] = {
    "hit@1": "share of answerable questions with a gold document ranked first",
    "hit@5": "... with a gold document in the first 5",
    "mrr@10": "mean reciprocal rank of the first gold document within 10",
    "ndcg@10": "nDCG@10, each gold document counted once",
    "answer": "share of answerable questions answered with every must_contain phrase",
    "abstain": "share of unanswerable questions abstained on",
    "false_abstain": "share of answerable questions abstained on",
    "citation": "share of cited passages that come from a gold document",
    "cost": "USD per 1,000 questions",
    "p50": "median answer latency, ms",
    "p95": "95th percentile answer latency, ms",
}
RETRIEVAL_METRICS = ("hit@1", "hit@5", "mrr@10", "ndcg@10")
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_TERM = re.compile(r"^\s*([a-z_]+(?:@\d+)?)\s*(>=|<=|>|<)\s*([0-9]*\.?[0-9]+)\s*$")


@dataclass(frozen=True)
class Term:
    metric: str
    op: str
    threshold: float

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.threshold:g}"

    def met(self, value: float | None) -> bool:
        """Whether ``value`` meets the term; an unmeasured value never does."""
        return value is not None and _OPERATORS[self.op](value, self.threshold)


@dataclass(frozen=True)
class QualityBar:
    """The terms a model must meet for ``ragline eval`` to name it (``--bar``)."""

    terms: tuple[Term, ...]

    @classmethod
    def parse(cls, text: str) -> QualityBar:
        """``metric>=x,metric<=y,...``; ConfigurationError names a bad term and lists
        the metrics."""
        terms = []
        for part in (p for p in text.split(",") if p.strip()):
            match = _TERM.match(part.lower())
            if match is None:
                raise ConfigurationError(
                    f"bar term {part.strip()!r} is not metric>=number (or <=, >, <)"
                )
            metric, op, threshold = match.groups()
            if metric not in METRICS:
                raise ConfigurationError(
                    f"bar term {part.strip()!r}: unknown metric {metric!r}; "
                    f"known: {', '.join(METRICS)}"
                )
            terms.append(Term(metric, op, float(threshold)))
        return cls(tuple(terms))

    @property
    def uses_retrieval(self) -> bool:
        return any(t.metric in RETRIEVAL_METRICS for t in self.terms)

    def unmet(self, values: Mapping[str, float | None]) -> list[str]:
        """The terms ``values`` does not meet, each with the value measured."""
        missed = []
        for term in self.terms:
            value = values.get(term.metric)
            if not term.met(value):
                shown = "not measured" if value is None else f"{value:.4g}"
                missed.append(f"{term} ({shown})")
        return missed

    def __str__(self) -> str:
        return ",".join(str(t) for t in self.terms) or "(none)"
