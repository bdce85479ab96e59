"""``ragline eval``: an evaluation set through the API's code path, per mode and model."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from ragline.dev.commands.common import local_embeddings, use_data_dir, without_emf

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterable, Sequence

DEFAULT_BAR = "answer>=0.8,abstain>=1.0"


def _names(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate retrieval per search mode and answers per model; name the cheapest model
    that meets the bar."""
    use_data_dir(args.data_dir)
    local_embeddings()
    without_emf()
    from tqdm import tqdm

    from ragline.config import Settings
    from ragline.dev.evaluation import plot_report, render_report
    from ragline.errors import RaglineError
    from ragline.evaluation import Bar, EvalOptions, evaluate, load_questions, with_reranker

    def progress(items: Sequence[Any], label: str) -> Iterable[Any]:
        unit = "file" if label == "ingesting" else "q"
        return tqdm(items, desc=label, unit=unit, leave=False, disable=args.quiet, file=sys.stderr)

    try:
        questions = load_questions(args.set)
        bar = Bar.parse(args.bar or DEFAULT_BAR)
        settings = Settings.from_env()
        if args.embeddings:
            settings = settings.with_overrides(embeddings=args.embeddings)
        if args.reranker:
            settings = with_reranker(settings, args.reranker)
        options = EvalOptions(
            modes=_names(args.modes),
            models=_names(args.llm or ""),
            bar=bar,
            corpus=args.corpus,
            collection=args.collection,
            top_k=args.top_k,
        )
        report = evaluate(settings, questions, options, name=args.set.name, progress=progress)
    except (RaglineError, ValueError) as exc:  # ValueError: pydantic's, for a bad override
        print(f"ragline eval: {exc}", file=sys.stderr)
        return 2
    print(render_report(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
        print(f"JSON written to {args.json}")
    if args.plot is not None:
        plot_report(report, args.plot)
        print(f"plot written to {args.plot}")
    # An explicit bar is a gate (CI can fail on it); the default one only informs.
    return 1 if args.bar and report.choice is None else 0
