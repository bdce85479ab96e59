"""Retrieval and abstention quality on an evaluation set, per embedder and search mode.

Ingests a corpus (default ../shared/corpora/python-docs) into a fresh embedded
PostgreSQL once per embedder, then for every question of the evaluation set
(default ../shared/eval/python_docs_eval.jsonl: question, gold files, or none when the
answer must be an abstention) prints hit@1/hit@5 and MRR per search mode, and how the
extractive model's abstentions match the set. Figures, not a test.

    python bench/retrieval.py [--embedders hash,minilm]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpora" / "python-docs")
    parser.add_argument("--eval", type=Path, default=SHARED / "eval" / "python_docs_eval.jsonl")
    parser.add_argument("--embedders", default="hash,minilm")
    parser.add_argument("--top-k", type=int, default=5)
    args = parser.parse_args()
    questions = [json.loads(line) for line in args.eval.read_text().splitlines() if line.strip()]
    files = sorted(p for p in args.corpus.rglob("*") if p.is_file() and _readable(p))
    os.environ["RAGLINE_DATA_DIR"] = tempfile.mkdtemp(prefix="ragline-eval-")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # figures, not EMF lines

    from ragline.answer import Answerer
    from ragline.config import Settings

    answerable = [q for q in questions if q["gold"]]
    print(
        f"{len(files)} documents; {len(answerable)} answerable questions, "
        f"{len(questions) - len(answerable)} to abstain on; top_k={args.top_k}"
    )
    for embedder in args.embedders.split(","):
        settings = Settings.from_env().with_overrides(
            embeddings=embedder, default_collection=f"eval-{embedder.replace(':', '-')}"
        )
        from ragline.ingest import Ingestor

        ingestor = Ingestor.from_settings(settings)
        started = time.perf_counter()
        for path in files:
            ingestor.ingest_bytes(
                f"file://{path.relative_to(args.corpus)}#{embedder}",
                path.read_bytes(),
                name=path.name,
            )
        ingest_seconds = time.perf_counter() - started
        answerer = Answerer.from_settings(settings)
        print(f"\n{embedder}: ingested in {ingest_seconds:.1f} s")
        for mode in ("vector", "keyword", "hybrid"):
            hits1 = hits_k = 0
            reciprocal = 0.0
            for q in answerable:
                results = answerer.retrieve(q["question"], mode=mode, top_k=args.top_k).results
                ranks = [
                    i
                    for i, r in enumerate(results, 1)
                    if any(r.source.split("#")[0].endswith(g) for g in q["gold"])
                ]
                hits1 += bool(ranks and ranks[0] == 1)
                hits_k += bool(ranks)
                reciprocal += 1 / ranks[0] if ranks else 0.0
            n = len(answerable)
            print(
                f"  {mode:8} hit@1 {hits1 / n:5.0%}   hit@{args.top_k} {hits_k / n:5.0%}"
                f"   MRR {reciprocal / n:.2f}"
            )
        correct_abstain = wrong_abstain = cited_gold = 0
        for q in questions:
            response = answerer.answer(q["question"], top_k=args.top_k)
            if not q["gold"]:
                correct_abstain += response.abstained
            elif response.abstained:
                wrong_abstain += 1
            elif any(
                c.source.split("#")[0].endswith(g) for c in response.citations for g in q["gold"]
            ):
                cited_gold += 1
        unanswerable = len(questions) - len(answerable)
        print(
            f"  extractive: abstained on {correct_abstain}/{unanswerable} unanswerable, "
            f"on {wrong_abstain}/{len(answerable)} answerable; "
            f"cited a gold file in {cited_gold}/{len(answerable)}"
        )
    return 0


def _readable(path: Path) -> bool:
    """Whether a loader reads the file (by suffix), so HTML or Markdown corpora work too."""
    from ragline.documents.loaders.registry import format_for
    from ragline.errors import UnsupportedDocumentError

    try:
        format_for(path.name)
    except UnsupportedDocumentError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
