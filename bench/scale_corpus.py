"""A scale corpus for the search benches: distinct ragline chunks of text found on this
machine, their MiniLM vectors, and queries (issue 23).

Three steps, each resumable, writing under --out (default ~/.cache/ragline/scale, outside
git; nothing here is committed but this script):

``assemble``
    Reads the text on the machine: the shared corpora, Python sources and docs (the
    project's .venv and the interpreter's library), /usr/share/doc, the man pages (roff
    stripped to text), /usr/share/info and the C headers under /usr/include. Each file is
    parsed by ragline's loaders by its suffix (a source file is read as plain text), cut
    by ragline's chunker at the minilm-onnx ingest's size (200 tokens, 40 overlap), and a
    chunk is kept only if its normalized text (lower case, whitespace collapsed) was not
    seen before. Writes chunks.jsonl (one chunk a line: id, source, path, title,
    section, text, tokens) and manifest.json (counts and bytes by source).
``embed``
    Embeds chunks with ``minilm-onnx`` into vectors.npy, a float16 memmap of (chunks, 384)
    beside chunks.jsonl (row i is chunk i), in a seeded random order (order.npy, a
    permutation of the chunk ids written by the first run), so the chunks embedded so
    far are always a uniform sample of every source, not the first sources read. It
    checkpoints progress.json every --checkpoint chunks: stop it at any time, run it
    again and it goes on where it stopped. --limit bounds the chunks embedded by one run.
    Prints chunks/s and the projected hours for the whole corpus. Benches take the
    embedded chunks through :func:`embedded` (the first n of the order).
``queries``
    queries.jsonl: every question of the three dev sets, and --sampled passage-derived
    queries (a span of 6-12 words from a chunk drawn at random, seeded; its chunk id is
    the passage it came from).

    python bench/scale_corpus.py assemble [--max-chunks N]
    python bench/scale_corpus.py embed [--limit 20000] [--checkpoint 2048]
    python bench/scale_corpus.py queries [--sampled 2000]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEFAULT_OUT = Path.home() / ".cache" / "ragline" / "scale"
EVAL_SETS = [
    SHARED / "eval" / "python_docs_eval.jsonl",
    SHARED / "eval" / "git_docs_eval.jsonl",
    SHARED / "eval" / "pdf_manuals_eval.jsonl",
]
# The minilm-onnx ingest's chunk size: the model reads 200 estimated tokens (with room for
# the heading path), and the default overlap.
CHUNK_TOKENS = 200
CHUNK_OVERLAP = 40
DIMENSIONS = 384
# Files larger than this are generated data or logs more than text.
MAX_FILE_BYTES = 4_000_000
TEXT_SUFFIXES = {".txt", ".text", ".md", ".rst", ".html", ".htm"}
SOURCE_SUFFIXES = {".py", ".pyi", ".h", ".hpp", ".c", ".pl", ".pm", ".sh", ".js", ".ts"}
_ROFF_ESCAPE = re.compile(r"\\(f[BIRP]|f\(..|\(..|\*.|s[-+]?\d|[-&|^e ])")
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_'-]+")


def sources() -> list[tuple[str, Path, set[str]]]:
    """(name, root, suffixes) in the order they are read: earlier sources win duplicates."""
    library = (
        Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    )
    venv = ROOT / ".venv" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    return [
        ("shared-corpora", SHARED / "corpora", TEXT_SUFFIXES | {".pdf"}),
        ("venv-python", venv / "site-packages", TEXT_SUFFIXES | SOURCE_SUFFIXES),
        ("python-library", library, TEXT_SUFFIXES | SOURCE_SUFFIXES),
        ("usr-lib-python3", Path("/usr/lib/python3"), TEXT_SUFFIXES | SOURCE_SUFFIXES),
        ("usr-share-doc", Path("/usr/share/doc"), TEXT_SUFFIXES | {".gz", ""}),
        ("man-pages", Path("/usr/share/man"), {".gz"}),
        ("info-manuals", Path("/usr/share/info"), {".gz"}),
        ("usr-include", Path("/usr/include"), SOURCE_SUFFIXES),
    ]


def normalized_digest(text: str) -> bytes:
    return hashlib.blake2b(_SPACE.sub(" ", text).strip().lower().encode(), digest_size=16).digest()


def roff_to_text(text: str) -> str:
    """A man page's words without its macros: cheap, and good enough to search."""
    lines = []
    for line in text.splitlines():
        if line.startswith(('.\\"', "'\\\"")):
            continue
        if line.startswith("."):
            # .SH NAME, .B word: keep a macro's arguments, drop the macro.
            _, _, rest = line.partition(" ")
            line = rest.replace('"', "")
        lines.append(_ROFF_ESCAPE.sub("", line).replace("\\", ""))
    return "\n".join(lines)


def files(root: Path, suffixes: set[str]) -> Iterator[Path]:
    if not root.exists():
        return
    for directory, dirnames, names in os.walk(root):
        dirnames.sort()
        dirnames[:] = [d for d in dirnames if d not in {"__pycache__", ".git", "tests-data"}]
        for name in sorted(names):
            path = Path(directory) / name
            if path.suffix.lower() in suffixes and path.is_file() and not path.is_symlink():
                yield path


def document(source: str, path: Path) -> tuple[str, bytes] | None:
    """The name to parse ``path`` by (its suffix picks the loader) and its bytes."""
    try:
        size = path.stat().st_size
        if size == 0 or size > MAX_FILE_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    name = path.name
    if name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError):
            return None
        name = name[:-3]
        if source == "man-pages":
            text = roff_to_text(data.decode("utf-8", "replace"))
            return f"{name}.txt", text.encode()
    if b"\0" in data[:4096]:
        return None  # binary
    suffix = Path(name).suffix.lower()
    if suffix not in TEXT_SUFFIXES and suffix != ".pdf":
        name = f"{name}.txt"  # sources, changelogs, manuals: plain text
    return name, data


def assemble(out: Path, max_chunks: int | None) -> None:
    from ragline.documents.chunking import chunk_document
    from ragline.documents.loaders.registry import parse_document
    from ragline.errors import RaglineError

    out.mkdir(parents=True, exist_ok=True)
    seen: set[bytes] = set()
    counts: dict[str, dict[str, int]] = {}
    started = time.perf_counter()
    written = 0
    temporary = out / "chunks.jsonl.partial"
    with temporary.open("w", encoding="utf-8") as sink:
        for source, root, suffixes in sources():
            tally = counts.setdefault(
                source, {"files": 0, "skipped": 0, "chunks": 0, "duplicates": 0, "bytes": 0}
            )
            for path in files(root, suffixes):
                if max_chunks is not None and written >= max_chunks:
                    break
                found = document(source, path)
                if found is None:
                    tally["skipped"] += 1
                    continue
                try:
                    parsed = parse_document(*found)
                    chunks = chunk_document(parsed, max_tokens=CHUNK_TOKENS, overlap=CHUNK_OVERLAP)
                except (RaglineError, ValueError, UnicodeError, RecursionError):
                    tally["skipped"] += 1
                    continue
                tally["files"] += 1
                for chunk in chunks:
                    digest = normalized_digest(chunk.text)
                    if digest in seen or len(chunk.text.strip()) < 20:  # counted as duplicates
                        tally["duplicates"] += 1
                        continue
                    seen.add(digest)
                    line = json.dumps(
                        {
                            "id": written,
                            "source": source,
                            "path": str(path),
                            "title": parsed.title,
                            "section": list(chunk.section),
                            "text": chunk.text,
                            "tokens": chunk.token_count,
                        },
                        ensure_ascii=False,
                    )
                    sink.write(line + "\n")
                    tally["chunks"] += 1
                    tally["bytes"] += len(chunk.text.encode())
                    written += 1
                    if max_chunks is not None and written >= max_chunks:
                        break
            print(f"{source:18} {tally}  total {written:,} chunks", file=sys.stderr)
    temporary.replace(out / "chunks.jsonl")
    manifest = {
        "chunks": written,
        "chunk_tokens": CHUNK_TOKENS,
        "chunk_overlap": CHUNK_OVERLAP,
        "text_bytes": sum(t["bytes"] for t in counts.values()),
        "file_bytes": (out / "chunks.jsonl").stat().st_size,
        "seconds": round(time.perf_counter() - started, 1),
        "sources": counts,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    # The vectors belong to the chunks they were made from: a new corpus starts them over.
    for stale in ("vectors.npy", "progress.json", "order.npy", "offsets.npy"):
        (out / stale).unlink(missing_ok=True)
    print(json.dumps(manifest, indent=2))


ORDER_SEED = 23


def _offsets(out: Path) -> Any:
    """Byte offset of each line of chunks.jsonl (offsets.npy, made once)."""
    import numpy as np

    path = out / "offsets.npy"
    if path.exists() and path.stat().st_mtime >= (out / "chunks.jsonl").stat().st_mtime:
        return np.load(path)
    offsets, position = [], 0
    with (out / "chunks.jsonl").open("rb") as lines:
        for line in lines:
            offsets.append(position)
            position += len(line)
    array = np.asarray(offsets, dtype=np.int64)
    np.save(path, array)
    return array


def _order(out: Path, total: int) -> Any:
    """The seeded permutation of chunk ids the embed step follows (order.npy)."""
    import numpy as np

    path = out / "order.npy"
    if path.exists():
        order = np.load(path)
        if len(order) == total:
            return order
    order = np.random.default_rng(ORDER_SEED).permutation(total).astype(np.int64)
    np.save(path, order)
    return order


def read_chunks(out: Path, ids: Any) -> list[dict[str, Any]]:
    """The chunks of these ids, in the order given (random access into chunks.jsonl)."""
    offsets = _offsets(out)
    rows = []
    with (out / "chunks.jsonl").open("rb") as lines:
        for chunk_id in ids:
            lines.seek(int(offsets[int(chunk_id)]))
            rows.append(json.loads(lines.readline()))
    return rows


def embedded(out: Path = DEFAULT_OUT, count: int | None = None) -> tuple[Any, Any]:
    """(chunk ids, float16 vectors) of the first ``count`` chunks embedded (all so far by
    default): a uniform sample of the corpus at any count."""
    import numpy as np

    done = json.loads((out / "progress.json").read_text())["done"]
    if count is not None and count > done:
        raise SystemExit(f"{count:,} chunks asked for, {done:,} embedded: run the embed step")
    ids = np.load(out / "order.npy")[: done if count is None else count]
    vectors = np.load(out / "vectors.npy", mmap_mode="r")
    return ids, vectors[np.sort(ids)][np.argsort(np.argsort(ids))]


def embed(out: Path, limit: int, checkpoint: int, threads: int | None) -> None:
    import numpy as np
    from ragline.documents.chunking import SECTION_SEPARATOR
    from ragline.embeddings.export_onnx import EXPORT_FORMAT
    from ragline.embeddings.minilm_onnx import MiniLMOnnxEmbedder

    manifest = json.loads((out / "manifest.json").read_text())
    total = int(manifest["chunks"])
    vectors_path, progress_path = out / "vectors.npy", out / "progress.json"
    progress = json.loads(progress_path.read_text()) if progress_path.exists() else {}
    if progress and (progress.get("order_seed"), progress.get("export")) != (
        ORDER_SEED,
        EXPORT_FORMAT,
    ):
        # vectors from another order or another export of the model: start again
        print(
            f"progress {progress} is from another order or export: starting over", file=sys.stderr
        )
        progress = {}
        vectors_path.unlink(missing_ok=True)
    if vectors_path.exists():
        vectors = np.lib.format.open_memmap(vectors_path, mode="r+")
        if vectors.shape != (total, DIMENSIONS):
            raise SystemExit(f"{vectors_path} is {vectors.shape}, not ({total}, {DIMENSIONS})")
    else:
        vectors = np.lib.format.open_memmap(
            vectors_path, mode="w+", dtype=np.float16, shape=(total, DIMENSIONS)
        )
    done = int(progress.get("done", 0))
    order = _order(out, total)
    embedder = MiniLMOnnxEmbedder(threads=threads)
    stop = min(total, done + limit)
    print(f"embedding chunks {done:,}..{stop:,} of {total:,}", file=sys.stderr)
    started, first = time.perf_counter(), done
    while done < stop:
        ids = order[done : min(stop, done + checkpoint)]
        texts = []
        for chunk in read_chunks(out, ids):
            path = SECTION_SEPARATOR.join(p for p in (chunk["title"], *chunk["section"]) if p)
            texts.append(f"{path}\n{chunk['text']}" if path else chunk["text"])
        result = embedder.embed_documents(texts)  # normalized, as the ingest embeds
        vectors[ids] = np.asarray(result.vectors, dtype=np.float16)
        vectors.flush()
        done += len(ids)
        # written after the vectors are on disk
        record = {"done": done, "order_seed": ORDER_SEED, "export": EXPORT_FORMAT}
        progress_path.write_text(json.dumps(record) + "\n")
        rate = (done - first) / (time.perf_counter() - started)
        print(f"  {done:,} done, {rate:.1f} chunks/s", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - started
    rate = (done - first) / seconds if seconds else 0.0
    left = total - done
    print(
        json.dumps(
            {
                "embedded_this_run": done - first,
                "seconds": round(seconds, 1),
                "chunks_per_second": round(rate, 1),
                "done": done,
                "total": total,
                "hours_left_at_this_rate": round(left / rate / 3600, 2) if rate else None,
                "hours_for_1m_at_this_rate": round(1_000_000 / rate / 3600, 2) if rate else None,
            },
            indent=2,
        )
    )


def queries(out: Path, sampled: int, seed: int) -> None:
    manifest = json.loads((out / "manifest.json").read_text())
    total = int(manifest["chunks"])
    rows: list[dict[str, Any]] = []
    for path in EVAL_SETS:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                rows.append({"kind": "dev", "set": path.stem, "id": item["id"],
                             "question": item["question"]})  # fmt: skip
    rng = random.Random(seed)
    wanted = set(rng.sample(range(total), min(sampled, total)))
    with (out / "chunks.jsonl").open(encoding="utf-8") as lines:
        drawn = [json.loads(line) for n, line in enumerate(lines) if n in wanted]
    for chunk in drawn:
        words = _WORD.findall(chunk["text"])
        if len(words) < 6:
            continue
        length = rng.randint(6, min(12, len(words)))
        start = rng.randint(0, len(words) - length)
        rows.append({"kind": "passage", "chunk_id": chunk["id"], "source": chunk["source"],
                     "question": " ".join(words[start : start + length])})  # fmt: skip
    with (out / "queries.jsonl").open("w", encoding="utf-8") as sink:
        for row in rows:
            sink.write(json.dumps(row, ensure_ascii=False) + "\n")
    dev = sum(1 for r in rows if r["kind"] == "dev")
    print(f"{len(rows)} queries: {dev} dev-set questions, {len(rows) - dev} passage-derived")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    steps = parser.add_subparsers(dest="step", required=True)
    step = steps.add_parser("assemble")
    step.add_argument("--max-chunks", type=int)
    step = steps.add_parser("embed")
    step.add_argument("--limit", type=int, default=20_000)
    step.add_argument("--checkpoint", type=int, default=2048)
    step.add_argument("--threads", type=int)
    step = steps.add_parser("queries")
    step.add_argument("--sampled", type=int, default=2000)
    step.add_argument("--seed", type=int, default=23)
    args = parser.parse_args()
    if args.step == "assemble":
        assemble(args.out, args.max_chunks)
    elif args.step == "embed":
        if args.limit <= 0 or args.checkpoint <= 0:
            parser.error("--limit and --checkpoint must be positive")
        embed(args.out, args.limit, args.checkpoint, args.threads)
    else:
        queries(args.out, args.sampled, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
