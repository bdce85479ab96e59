"""Printing answers and ingestion summaries for people, shared by ``ask``, ``ingest`` and ``demo``.

Everything works on the JSON shapes of the REST API, so an answer printed from
``POST /query`` and one computed in-process look the same.
"""

from __future__ import annotations

import shutil
import textwrap
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class _Result(Protocol):
    @property
    def source(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def chunks(self) -> int: ...
    @property
    def embedding_tokens(self) -> int: ...
    @property
    def error(self) -> str | None: ...


def _width() -> int:
    return max(60, min(100, shutil.get_terminal_size((100, 24)).columns))


def _cost(value: float | None) -> str:
    return "unknown (no price for this model)" if value is None else f"${value:.6f}"


def _citation_line(citation: Mapping[str, Any]) -> str:
    label = citation.get("title") or "untitled"
    section = citation.get("section") or ""
    if section:
        # Section paths usually start with the document's title; do not say it twice.
        label = section if section.startswith(label) else f"{label} › {section}"
    return f"[{citation['n']}] {citation['source']} — {label} (score {citation['score']:.3f})"


def format_answer(response: Mapping[str, Any], question: str | None = None) -> str:
    """The answer, its numbered citations, then model, usage, cost and latency."""
    width = _width()
    lines: list[str] = []
    if question:
        lines += textwrap.wrap(question, width, initial_indent="Q: ", subsequent_indent="   ")
    answer = response["answer"] + ("  (abstained)" if response.get("abstained") else "")
    lines += textwrap.wrap(answer, width, initial_indent="A: ", subsequent_indent="   ") or ["A:"]
    return "\n".join(lines + answer_details(response))


def answer_details(response: Mapping[str, Any]) -> list[str]:
    """What follows the answer's text: its citations, then model, usage, cost, latency."""
    lines: list[str] = []
    citations = response.get("citations") or []
    if citations:
        lines.append("   Sources:")
        lines += [f"     {_citation_line(c)}" for c in citations]
    model = response["model"]
    usage = response["usage"]
    latency = response["latency_ms"]
    estimated = " (estimated)" if usage.get("estimated") else ""
    lines += [
        f"   Model: {_model_name(model)} · prompt {model['prompt']}",
        f"   Usage: {usage['input_tokens']} in / {usage['output_tokens']} out tokens{estimated}"
        f" · {usage['embedding_tokens']} embedding tokens · cost {_cost(usage.get('cost_usd'))}",
        f"   Latency: {latency['total']:.0f} ms (retrieve {latency['retrieve']:.0f}"
        f" · generate {latency['generate']:.0f}) · request {response['request_id']}",
    ]
    return lines


# Status -> the words the summary uses, in the order it lists them.
STATUS_LABELS = {
    "ingested": "ingested",
    "unchanged": "unchanged (skipped)",
    "skipped": "unsupported",
    "failed": "failed",
}


def format_ingest_summary(results: Sequence[_Result]) -> str:
    """Counts per outcome, chunk and token totals, then every unsupported or failed file."""
    counts = Counter(result.status for result in results)
    labels = {
        **STATUS_LABELS,
        **{status: status for status in counts if status not in STATUS_LABELS},
    }
    parts = [f"{counts.get(status, 0)} {label}" for status, label in labels.items()]
    # Unchanged documents report the chunks they already had; only new ones were written.
    chunks = sum(result.chunks for result in results if result.status == "ingested")
    tokens = sum(result.embedding_tokens for result in results)
    lines = [
        f"{len(results)} files: " + ", ".join(parts),
        f"{chunks} chunks written, {tokens} embedding tokens",
    ]
    for status in ("skipped", "failed"):
        lines += [
            f"  {STATUS_LABELS[status]}: {result.source}: {result.error or 'no reason given'}"
            for result in results
            if result.status == status
        ]
    return "\n".join(lines)


def _model_name(model: dict[str, Any]) -> str:
    """``provider:name``, or the provider alone when the two are the same (extractive)."""
    same = model["provider"] == model["name"]
    return str(model["provider"]) if same else f"{model['provider']}:{model['name']}"
