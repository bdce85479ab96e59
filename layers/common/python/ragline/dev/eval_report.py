"""``ragline eval`` for people: the report as terminal tables, and quality against cost
as a PNG (matplotlib, imported only for ``--plot``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from ragline.evaluation import ModelReport, Report


def _figure(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _cost(model: ModelReport) -> str:
    return "unpriced" if model.cost_per_1000 is None else f"{model.cost_per_1000:.4f}"


def _count(part: int, whole: int) -> str:
    return f"{part}/{whole}" if whole else "-"


def _fallbacks(count: int, searches: int) -> str:
    """The searches whose reranker failed (the search's own order was used)."""
    return f"  (reranker fell back on {count}/{searches})" if count else ""


def render_report(report: Report) -> str:
    """The report as text: the run, one row per search mode, one row per model, the choice."""
    selected = f", {report.selection}" if report.selection else ""
    lines = [
        f"ragline eval · {report.set} · {report.questions} questions{selected} "
        f"({report.answerable} answerable, {report.unanswerable} to abstain on)"
    ]
    corpus = report.corpus
    if corpus is not None and corpus.reused:
        lines.append(
            f"corpus      {corpus.directory}: {corpus.files} files -> {corpus.collection} "
            f"(reused {corpus.reused}: {corpus.chunks:,} chunks, nothing parsed or embedded; "
            f"{corpus.seconds:.1f} s)"
        )
    elif corpus is not None:
        rate = (
            f", {corpus.embedded:,} chunks embedded at {corpus.embedded / corpus.seconds:.1f}/s"
            if corpus.embedded and corpus.seconds
            else ", nothing embedded"
        )
        lines.append(
            f"corpus      {corpus.directory}: {corpus.files} files -> {corpus.collection} "
            f"(ingested {corpus.ingested}, unchanged {corpus.unchanged}, skipped "
            f"{corpus.skipped}, failed {corpus.failed}{rate}; {corpus.seconds:.1f} s)"
        )
        lines += [f"  failed: {failure}" for failure in corpus.failures[:5]]
    else:
        lines.append(f"collection  {report.collection}")
    lines.append(
        f"embeddings  {report.embeddings} · reranker {report.reranker or 'none'} · "
        f"top_k {report.top_k} · bar {report.bar}"
    )
    if report.retrieval:
        # A page column only for sets that give gold pages: others print as they did.
        paged = any(m.page_hit_at_5 is not None for m in report.retrieval.values())
        lines += [
            "",
            f"retrieval ({report.answerable} answerable questions, POST /retrieve)",
            f"  {'mode':<9} {'hit@1':>6} {'hit@5':>6}"
            + (f" {'page@5':>6}" if paged else "")
            + f" {'MRR@10':>7} {'nDCG@10':>8} {'p50 ms':>8} {'p95 ms':>8}",
        ]
        for mode in report.retrieval.values():
            errors = f"  ({mode.errors} errors)" if mode.errors else ""
            errors += _fallbacks(mode.rerank_fallbacks, mode.questions)
            page = f" {_figure(mode.page_hit_at_5, '.3f'):>6}" if paged else ""
            lines.append(
                f"  {mode.mode:<9} {mode.hit_at_1:>6.3f} {mode.hit_at_5:>6.3f}{page}"
                f" {mode.mrr_at_10:>7.3f} {mode.ndcg_at_10:>8.3f}"
                f" {_figure(mode.p50_ms, '.1f'):>8} {_figure(mode.p95_ms, '.1f'):>8}{errors}"
            )
    if report.conversation:
        raw = report.conversation["raw"]
        lines += [
            "",
            f"follow-ups ({raw.questions} multi-turn cases, hybrid): searched for as",
            f"  {'query':<9} {'hit@1':>6} {'hit@5':>6} {'MRR@10':>7} {'nDCG@10':>8}",
        ]
        for label, mode in report.conversation.items():
            lines.append(
                f"  {label:<9} {mode.hit_at_1:>6.3f} {mode.hit_at_5:>6.3f}"
                f" {mode.mrr_at_10:>7.3f} {mode.ndcg_at_10:>8.3f}"
            )
    lines += [
        "",
        "answers (POST /query)",
        f"  {'model':<28} {'answer':>6} {'abstain':>7} {'false':>6} {'cite':>5}"
        f" {'tokens in/out':>15} {'$/1k q':>9} {'p50 ms':>8} {'p95 ms':>8}  bar",
    ]
    barred = report.bar not in ("", "(none)")
    for model in report.models.values():
        tokens = f"{model.input_tokens:,}/{model.output_tokens:,}"
        verdict = "yes" if model.meets_bar else "no: " + ", ".join(model.unmet)
        verdict = verdict if barred else "-"
        errors = f"  ({model.errors} errors)" if model.errors else ""
        errors += _fallbacks(model.rerank_fallbacks, model.questions)
        lines.append(
            f"  {model.model:<28} {_figure(model.answer_accuracy):>6}"
            f" {_count(model.correct_abstentions, model.unanswerable):>7}"
            f" {_count(model.false_abstentions, model.answerable):>6}"
            f" {_figure(model.citation_precision, '.2f'):>5} {tokens:>15} {_cost(model):>9}"
            f" {_figure(model.p50_ms, '.1f'):>8} {_figure(model.p95_ms, '.1f'):>8}"
            f"  {verdict}{errors}"
        )
    lines.append(
        "  answer: right answers / answerable · abstain: abstained / unanswerable · "
        "false: abstained / answerable · cite: cited passages from a gold document"
    )
    lines.append("")
    if len(report.ranking) > 1:
        lines.append("ranked (answer, then abstain, false, cost): " + " > ".join(report.ranking))
    if not barred:
        lines.append("no bar given (--bar): no model named")
    elif report.choice is None:
        lines.append(f"no model meets the bar ({report.bar})")
    else:
        chosen = report.models[report.choice]
        lines.append(
            f"cheapest model meeting the bar ({report.bar}): {chosen.model}, "
            f"${_cost(chosen)} per 1,000 questions"
        )
    return "\n".join(lines)


def plot_report(report: Report, path: Path) -> None:
    """Answer accuracy and correct abstentions against cost per 1,000 questions, one
    point per model, the chosen one circled, as a PNG. Unpriced models sit at the left
    edge, marked as such."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(report.models.values())
    priced = [m.cost_per_1000 for m in models if m.cost_per_1000 is not None]
    figure, axis = plt.subplots(figsize=(8, 5.5), constrained_layout=True)
    for model in models:
        cost = model.cost_per_1000 if model.cost_per_1000 is not None else 0.0
        accuracy = model.answer_accuracy or 0.0
        axis.scatter([cost], [accuracy], s=60, color="#2b7bba", zorder=3)
        abstain = model.values()["abstain"]
        if abstain is not None:
            axis.scatter([cost], [abstain], s=60, marker="^", color="#d95f02", zorder=3)
        if model.model == report.choice:
            axis.scatter(
                [cost], [accuracy], s=260, facecolors="none", edgecolors="#1b9e77", linewidths=2
            )
        label = model.model + (" (unpriced)" if model.cost_per_1000 is None else "")
        axis.annotate(
            label, (cost, accuracy), textcoords="offset points", xytext=(6, 6), fontsize=9
        )
    axis.scatter([], [], color="#2b7bba", label="answer accuracy")
    axis.scatter([], [], marker="^", color="#d95f02", label="correct abstentions")
    if report.choice is not None:
        axis.scatter(
            [], [], s=120, facecolors="none", edgecolors="#1b9e77", label="cheapest meeting bar"
        )
    axis.set_xlabel("cost per 1,000 questions (USD)")
    axis.set_ylabel("share of questions")
    axis.set_ylim(-0.05, 1.05)
    widest = max([*priced, 0.001])
    axis.set_xlim(-0.05 * widest, 1.25 * widest)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right")
    axis.set_title(
        f"ragline eval · {report.set} · {report.questions} questions · bar {report.bar}",
        fontsize=10,
    )
    figure.savefig(path, dpi=110)
    plt.close(figure)
