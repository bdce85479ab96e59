"""``ragline eval``: an evaluation set through the API's code path, per mode and model."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragline.dev.commands.common import (
    acting_identity,
    add_tenant_argument,
    local_embeddings,
    use_data_dir,
    without_emf,
)

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterable, Sequence

    from ragline.dev.commands.common import Subcommands
    from ragline.evaluation.runner import Meter

# No bar unless one is given: the report ranks the models. A default bar would have to
# suit every model; the extractive one (no LLM) answers few questions in its own words,
# so a bar on answers it could meet would say nothing about an LLM's.
DEFAULT_BAR = ""


def register(commands: Subcommands) -> None:
    """``ragline eval SET.jsonl`` and its options."""
    evaluation = commands.add_parser(
        "eval",
        help="score retrieval per search mode and answers per model on an evaluation set",
        description="Run an evaluation set (JSON lines: id, question, gold, answer, "
        "must_contain; a multi-turn case gives turns instead of question, and is searched "
        "for as rewritten) through POST /retrieve per search mode and POST /query per "
        "model, in-process; rank the models, and with --bar name the cheapest that meets it "
        "(exit 1 when none does).",
    )
    evaluation.add_argument("set", type=Path, metavar="SET.jsonl", help="the evaluation set")
    evaluation.add_argument(
        "--corpus",
        type=Path,
        metavar="DIR",
        help="ingest this directory first, into a collection named by its content hash "
        "(COPYRIGHT and LICENSES/ left out; a second run re-embeds nothing)",
    )
    evaluation.add_argument(
        "--collection", help="without --corpus: the collection to evaluate (default: settings)"
    )
    evaluation.add_argument(
        "--modes", default="hybrid,vector,keyword", help="search modes to score, comma-separated"
    )
    evaluation.add_argument(
        "--llm", metavar="A,B,...", help="provider:model specs to compare (default: RAGLINE_LLM)"
    )
    evaluation.add_argument("--reranker", metavar="SPEC", help="RAGLINE_RERANKER for this run")
    evaluation.add_argument("--embeddings", metavar="SPEC", help="RAGLINE_EMBEDDINGS for this run")
    evaluation.add_argument(
        "--bar",
        help="what a model must meet, e.g. hit@5>=0.9,abstain>=1,answer>=0.8; with it the "
        "command names the cheapest model meeting it and exits 1 when none does "
        "(default: no bar, the models are ranked)",
    )
    chosen = evaluation.add_mutually_exclusive_group()
    chosen.add_argument("--limit", type=int, metavar="N", help="only the set's first N questions")
    chosen.add_argument(
        "--sample", type=int, metavar="N", help="N questions of the set drawn at random"
    )
    evaluation.add_argument(
        "--seed", type=int, default=0, help="the --sample draw's seed (default: 0)"
    )
    evaluation.add_argument("--top-k", type=int, help="passages per answer (default: settings)")
    evaluation.add_argument("--json", type=Path, metavar="FILE", help="also write the report")
    evaluation.add_argument("--plot", type=Path, metavar="FILE.png", help="quality against cost")
    evaluation.add_argument("--data-dir", type=Path, help="data directory of the embedded database")
    add_tenant_argument(evaluation, "ingest the corpus and ask")
    evaluation.add_argument("--quiet", action="store_true", help="no progress bars")
    evaluation.set_defaults(run=cmd_eval)


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
    from ragline.dev.eval_report import plot_report, render_report
    from ragline.errors import RaglineError
    from ragline.evaluation import (
        EvalOptions,
        QualityBar,
        evaluate,
        load_questions,
        select_questions,
        with_reranker,
    )

    def progress(items: Sequence[Any], label: str) -> Iterable[Any]:
        unit = "file" if label == "reading" else "q"
        return tqdm(items, desc=label, unit=unit, leave=False, disable=args.quiet, file=sys.stderr)

    def meter(total: int, label: str) -> Meter:
        # tqdm shows the count, the rate in chunks/s and the time left
        return tqdm(
            total=total, desc=label, unit="chunk", disable=args.quiet or not total,
            file=sys.stderr, smoothing=0.1, mininterval=1.0,
        )  # fmt: skip

    try:
        questions, selection = select_questions(
            load_questions(args.set), limit=args.limit, sample=args.sample, seed=args.seed
        )
        bar = QualityBar.parse(args.bar or DEFAULT_BAR)
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
            selection=selection,
            identity=acting_identity(args.tenant),
        )
        report = evaluate(
            settings, questions, options, name=args.set.name, progress=progress, meters=meter
        )
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
