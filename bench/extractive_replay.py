"""The extractive model offline: save the passages each question is answered from, then
replay any version of the model over them.

`ragline eval --llm extractive` retrieves, then answers. To calibrate the extractive
model, ``dump`` runs that eval once (hybrid mode, the set's collection in a data dir
`ragline eval --corpus` already ingested) and saves every question's generation request:
the question and its numbered passages with their sections and similarities. ``score``
then answers them again with whatever ``ragline`` is importable, in milliseconds, and
scores as the eval does: must-contain accuracy over the answerable questions, correct
and false abstentions. Put another checkout's code first on ``PYTHONPATH`` to score its
model on the same passages.

    python bench/extractive_replay.py dump SET.jsonl --data-dir D --corpus C \
        --embeddings minilm-onnx --out P.json
    python bench/extractive_replay.py score P.json [P2.json ...] [--show]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def dump(args: argparse.Namespace) -> int:
    from ragline.dev.cli import main as ragline
    from ragline.llm.extractive import ExtractiveModel

    saved: list[dict[str, Any]] = []
    original = ExtractiveModel.generate

    def recording(self: ExtractiveModel, request: Any) -> Any:
        saved.append(
            {
                "question": request.question,
                "abstain_text": request.abstain_text,
                "passages": [
                    {
                        "n": p.n,
                        "text": p.text,
                        "title": p.title,
                        "source": p.source,
                        "section": p.section,
                        "similarity": p.similarity,
                    }
                    for p in request.passages
                ],
            }
        )
        return original(self, request)

    ExtractiveModel.generate = recording  # type: ignore[method-assign]
    argv = [
        "eval", str(args.set), "--corpus", str(args.corpus), "--data-dir", str(args.data_dir),
        "--embeddings", args.embeddings, "--modes", "hybrid", "--llm", "extractive", "--quiet",
    ]  # fmt: skip
    sys.argv = ["ragline", *argv]
    try:
        ragline()
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            return int(exit_.code) if isinstance(exit_.code, int) else 1
    questions = [json.loads(line) for line in args.set.read_text().splitlines() if line.strip()]
    by_question = {row["question"]: row for row in saved}
    rows = [
        {
            "id": q["id"],
            "gold": q["gold"],
            "must_contain": q["must_contain"],
            **by_question.get(q["question"], {"question": q["question"], "passages": []}),
        }
        for q in questions
    ]
    args.out.write_text(json.dumps(rows, indent=1))
    print(f"{len(saved)} requests saved to {args.out}", file=sys.stderr)
    return 0


def score_file(path: Path, show: bool) -> dict[str, Any]:
    from ragline.llm.base import GenerationRequest, Passage
    from ragline.llm.extractive import ExtractiveModel

    model = ExtractiveModel()
    right = answerable = refused = unanswerable = false = 0
    for row in json.loads(path.read_text()):
        abstain_text = row.get("abstain_text", "")
        if row["passages"]:
            request = GenerationRequest(
                system="",
                user="",
                question=row["question"],
                passages=tuple(Passage(**p) for p in row["passages"]),
                abstain_text=abstain_text,
            )
            text = model.generate(request).text
        else:
            text = abstain_text
        abstained = not text.strip() or text.strip() == abstain_text.strip()
        if row["gold"]:
            answerable += 1
            good = not abstained and all(m.lower() in text.lower() for m in row["must_contain"])
            right += good
            false += abstained
            mark = "ok" if good else ("ABSTAIN" if abstained else "wrong")
        else:
            unanswerable += 1
            refused += abstained
            mark = "refused" if abstained else "ANSWERED"
        if show:
            print(f"  {row['id']:8s} {mark:8s} {text[:150]!r}")
    return {
        "answer": round(right / answerable, 3) if answerable else None,
        "right": f"{right}/{answerable}",
        "abstain": f"{refused}/{unanswerable}",
        "false": f"{false}/{answerable}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    dumping = commands.add_parser("dump")
    dumping.add_argument("set", type=Path)
    dumping.add_argument("--data-dir", type=Path, required=True)
    dumping.add_argument("--corpus", type=Path, required=True)
    dumping.add_argument("--embeddings", default="minilm-onnx")
    dumping.add_argument("--out", type=Path, required=True)
    scoring = commands.add_parser("score")
    scoring.add_argument("passages", type=Path, nargs="+")
    scoring.add_argument("--show", action="store_true", help="each question's answer")
    args = parser.parse_args()
    if args.command == "dump":
        return dump(args)
    for path in args.passages:
        print(path.stem, score_file(path, args.show))
    return 0


if __name__ == "__main__":
    sys.exit(main())
