"""Fusion offline: dump each question's vector and keyword lists once, then score fusions.

`ragline eval` measures one fusion per run, and a run re-embeds every question. To
calibrate a fusion, this script reads the two lists of every question of a set from a
collection `ragline eval --corpus` already ingested (``dump``), then replays
:func:`ragline.retrieval.fuse` (or any fusion) over the saved lists in milliseconds
(``score``): hit@5 and MRR@10 at file level, and for sets with gold pages, page hit@5 and
page MRR@10 (a passage counts when it is from a gold file and its page range holds a gold
page) and cited-page MRR@10 (the page the passage cites, ``page``, is a gold page).

    python bench/fusion_lists.py dump SET.jsonl --data-dir D --collection eval-... --out L.json
    python bench/fusion_lists.py score L.json [L2.json ...] [--weight 0.6]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

DEPTH = (
    40  # deeper than hybrid's candidate depth (max(20, 4 top_k)) so every fusion can be replayed
)


def dump(args: argparse.Namespace) -> int:
    os.environ["RAGLINE_DATA_DIR"] = str(args.data_dir.resolve())
    os.environ.setdefault("RAGLINE_EMBEDDINGS", "minilm")
    from ragline.config import Settings
    from ragline.embeddings import get_embedder
    from ragline.evaluation import load_questions
    from ragline.store import get_store

    settings = Settings.from_env()
    store = get_store(settings)
    embedder = get_embedder(settings)
    known = store.collection_model(args.collection)
    if known is None:
        print(f"no collection {args.collection} in {args.data_dir}", file=sys.stderr)
        return 2
    selection = store.select(args.collection, known[1], None)
    rows: list[dict[str, Any]] = []
    for q in load_questions(args.set):
        vector = embedder.embed_query(q.question).vectors[0]
        lists = {
            "vector": store.vector_search(args.collection, vector, DEPTH, selection=selection),
            "keyword": store.keyword_search(
                args.collection, q.question, DEPTH, selection=selection
            ),
        }
        row = {"id": q.id, "question": q.question, "gold": list(q.gold), "pages": list(q.pages)}
        for name, found in lists.items():
            row[name] = [{**asdict(c), "document_id": str(c.document_id)} for c in found]
        rows.append(row)
        print(q.id, file=sys.stderr)
    Path(args.out).write_text(json.dumps({"collection": args.collection, "questions": rows}))
    return 0


def _chunks(items: list[dict[str, Any]]) -> list[Any]:
    from ragline.store import RetrievedChunk

    return [RetrievedChunk(**{**c, "document_id": uuid.UUID(c["document_id"])}) for c in items]


def score_file(path: Path, fuse: Any) -> dict[str, float]:
    """Each mode's metrics over the answerable questions of one dump."""
    from ragline.evaluation.dataset import document_of, matches_gold

    data = json.loads(path.read_text())
    collection = data["collection"]
    totals: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        totals.setdefault(key, []).append(value)

    for row in data["questions"]:
        gold = tuple(row["gold"])
        if not gold:
            continue
        vector, keyword = _chunks(row["vector"]), _chunks(row["keyword"])
        for mode, ranked in (
            ("vector", fuse.single(vector[:15], row["question"])),
            ("keyword", fuse.single(keyword[:15], row["question"])),
            ("hybrid", fuse(vector, keyword, row["question"])[:10]),
        ):
            files = [matches_gold(document_of(c.source, collection), gold) for c in ranked]
            first = next((i for i, f in enumerate(files) if f), None)
            add(f"{mode} hit@5", float(first is not None and first < 5))
            add(f"{mode} mrr", 0.0 if first is None else 1 / (first + 1))
            if row["pages"]:
                pages = set(row["pages"])
                span = [
                    bool(f) and c.page is not None
                    and any(c.page <= p <= (c.last_page or c.page) for p in pages)
                    for f, c in zip(files, ranked, strict=True)
                ]  # fmt: skip
                cited = [
                    bool(f) and (c.match_page or c.page) in pages
                    for f, c in zip(files, ranked, strict=True)
                ]
                for key, hits in (("page", span), ("cited", cited)):
                    rank = next((i for i, h in enumerate(hits) if h), None)
                    add(f"{mode} {key} hit@5", float(rank is not None and rank < 5))
                    add(f"{mode} {key} mrr", 0.0 if rank is None else 1 / (rank + 1))
    return {k: round(sum(v) / len(v), 4) for k, v in totals.items()}


def _fusion(args: argparse.Namespace, power: float, keep: int, sure: float) -> Any:
    from ragline import retrieval

    def fuse(vector: Any, keyword: Any, question: str) -> Any:
        if args.fusion == "relative":
            fused = retrieval.relative_score_fusion(vector, keyword, vector_weight=args.weight)
        else:
            fused = retrieval.adaptive_fusion(
                vector, keyword, vector_weight=args.weight, power=power, keep_within=keep,
                keep_confidence=sure,
            )  # fmt: skip
        if args.raw:
            return fused
        return retrieval._finished(question, fused, 10)

    def single(found: Any, question: str) -> Any:
        return found[:10] if args.raw else retrieval._finished(question, found, 10)

    fuse.single = single  # type: ignore[attr-defined]
    return fuse


def score(args: argparse.Namespace) -> int:
    grid = [
        (power, keep, sure)
        for power in args.power
        for keep in args.keep
        for sure in args.keep_confidence
    ]
    for power, keep, sure in grid:
        print(f"== {args.fusion} weight {args.weight} power {power} keep {keep} sure {sure}")
        for path in args.lists:
            result = score_file(path, _fusion(args, power, keep, sure))
            for mode in ("hybrid", "vector", "keyword") if len(grid) == 1 else ("hybrid",):
                cells = [
                    f"{k.split(' ', 1)[1]} {v:.3f}" for k, v in result.items() if k.startswith(mode)
                ]
                print(f"  {path.stem[:14]:14s} {mode:8s} " + "  ".join(cells))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    dumping = commands.add_parser("dump")
    dumping.add_argument("set", type=Path)
    dumping.add_argument("--data-dir", type=Path, required=True)
    dumping.add_argument("--collection", required=True)
    dumping.add_argument("--out", type=Path, required=True)
    scoring = commands.add_parser("score")
    scoring.add_argument("lists", type=Path, nargs="+")
    scoring.add_argument("--fusion", choices=("relative", "adaptive"), default="adaptive")
    scoring.add_argument("--weight", type=float, default=0.6)
    scoring.add_argument("--power", type=float, nargs="+", default=[1.0])
    scoring.add_argument("--keep", type=int, nargs="+", default=[3])
    scoring.add_argument("--keep-confidence", type=float, nargs="+", default=[0.5])
    scoring.add_argument("--raw", action="store_true", help="no duplicate collapse or pages")
    args = parser.parse_args()
    return dump(args) if args.command == "dump" else score(args)


if __name__ == "__main__":
    sys.exit(main())
