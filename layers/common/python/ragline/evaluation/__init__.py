"""The evaluation use case: an evaluation set run through the API's own code path.

``dataset`` reads sets and corpora, ``metrics`` scores rankings and answers,
``quality_bar`` parses the bar a model must meet (``--bar``), and ``runner`` ingests the
corpus (cached by content hash), measures each search mode and each model, and names the
cheapest model that meets the bar. ``ragline eval`` and ``bench/retrieval.py`` call
:func:`evaluate`.

It composes the answer and ingest use cases like a handler does, but no Lambda runs
it: the layer leaves it out, as it leaves out ``dev/``.
"""

from __future__ import annotations

from ragline.evaluation.dataset import Question, corpus_files, load_questions, select_questions
from ragline.evaluation.quality_bar import METRICS, QualityBar
from ragline.evaluation.runner import (
    EvalOptions,
    Evaluator,
    ModelReport,
    ModeReport,
    Report,
    cheapest,
    evaluate,
    with_reranker,
)

__all__ = [
    "METRICS",
    "EvalOptions",
    "Evaluator",
    "ModeReport",
    "ModelReport",
    "QualityBar",
    "Question",
    "Report",
    "cheapest",
    "corpus_files",
    "evaluate",
    "load_questions",
    "select_questions",
    "with_reranker",
]
