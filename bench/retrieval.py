"""Retrieval and answers on an evaluation set, per embedder: `ragline eval` once for each.

The evaluation itself is `ragline eval` (ragline.evaluation); this script only runs it
for several embedders over the same corpus and set (default ../shared/corpora/python-docs
and ../shared/eval/python_docs_eval.jsonl) so they can be compared. Every other option
goes to `ragline eval` as is. The data directory defaults to a fresh temporary one; give
--data-dir to keep the ingested collections (named by content hash) between runs.

    python bench/retrieval.py [--embedders hash,minilm] [--llm extractive] [--json-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpora" / "python-docs")
    parser.add_argument("--eval", type=Path, default=SHARED / "eval" / "python_docs_eval.jsonl")
    parser.add_argument("--embedders", default="hash,minilm")
    parser.add_argument("--data-dir", type=Path, help="default: a fresh temporary directory")
    parser.add_argument("--json-dir", type=Path, help="write <embedder>.json reports here")
    args, passed_on = parser.parse_known_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="ragline-bench-"))

    from ragline.dev.cli import main as ragline

    worst = 0
    for embedder in (e.strip() for e in args.embedders.split(",") if e.strip()):
        print(f"\n=== embeddings {embedder}", flush=True)
        command = ["eval", str(args.eval), "--corpus", str(args.corpus), "--embeddings",
                   embedder, "--data-dir", str(data_dir), *passed_on]  # fmt: skip
        if args.json_dir is not None:
            args.json_dir.mkdir(parents=True, exist_ok=True)
            command += ["--json", str(args.json_dir / f"{embedder.replace(':', '-')}.json")]
        worst = max(worst, ragline(command))
    return worst


if __name__ == "__main__":
    sys.exit(main())
