"""Peak memory and wall time of parsing each hostile file of issue 18, each in a fresh
process, with this tree's loaders (budgets checked) and, with ``--before``, another
tree's (a checkout of the code before the budgets, read only).

The files (tests/support/hostile.py writes them):
  - a ~1 MB PDF whose one page inflates to 1 GiB (FlateDecode);
  - a DOCX declaring 400 MiB of XML;
  - a ~41 KB XLSX with cells in columns A and XFD on 5,000 rows;
  - a 125 MB CSV of one line; a 10 MB HTML table bomb;
  - JSON holding a NUL, a lone surrogate, a 100,000-digit number.

Each parse runs in a child process (``--parse``) whose peak resident set (VmHWM) the
parent samples while it runs, so a parse killed at ``--timeout`` still has its peak. The
child parses in-process (no isolation) under the default budgets, so the peak is the
parse's own. Then the cost of isolating a parse in a forked child is measured on a
small document, with the parser libraries loaded as in the ingest function.

    python bench/hostile_files.py [--before /work/main] [--timeout 30]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MIB = 1024 * 1024


def _files() -> dict[str, tuple[str, bytes]]:
    from tests.support import hostile

    return {
        "PDF, a page inflating to 1 GiB": ("bomb.pdf", hostile.flate_bomb_pdf(1024 * MIB)),
        "DOCX declaring 400 MiB": ("bomb.docx", hostile.docx_declaring(400 * MIB)),
        "XLSX, cells in A and XFD x 5,000 rows": ("wide.xlsx", hostile.xlsx_wide(5000)),
        "CSV, one line of 125 MB": ("line.csv", hostile.csv_one_line(125 * 1000 * 1000)),
        "HTML table bomb, 10 MB": ("tables.html", hostile.html_table_bomb(10 * 1000 * 1000)),
        "JSON with NUL": ("nul.json", hostile.json_with("Kayak tariff is 99 euros.\u0000")),
        "JSON with a lone surrogate": ("surrogate.json", hostile.json_with("Kayak \ud800")),
        "JSON, 100,000-digit number": ("number.json", hostile.json_big_number(100_000)),
    }


def _vmhwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _run(path: Path, tree: Path, timeout: float) -> dict[str, object]:
    """Parse ``path`` with ``tree``'s loaders in a fresh process; its outcome and peak."""
    command = [sys.executable, __file__, "--parse", str(path), "--tree", str(tree)]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    peak = 0.0
    while child.poll() is None:
        peak = max(peak, _vmhwm_mb(child.pid) or 0.0)
        if time.perf_counter() - started > timeout:
            child.kill()
            child.wait()
            return {"outcome": f"still running at {timeout:.0f} s (killed)",
                    "seconds": timeout, "peak_mb": peak}  # fmt: skip
        time.sleep(0.02)
    assert child.stdout is not None
    output = child.stdout.read().decode().strip().splitlines()
    if child.returncode != 0 or not output:
        return {"outcome": f"died (exit {child.returncode})",
                "seconds": time.perf_counter() - started, "peak_mb": peak}  # fmt: skip
    result: dict[str, object] = json.loads(output[-1])
    result["peak_mb"] = max(peak, float(result["peak_mb"]))  # type: ignore[arg-type]
    return result


def _parse_here(path: Path, tree: Path) -> None:
    """The child: import the loaders of ``tree``, parse, print outcome, time and peak."""
    sys.path.insert(0, str(tree / "layers" / "common" / "python"))
    from ragline.documents import parse_document

    _load_parsers()
    data = path.read_bytes()
    started = time.perf_counter()
    try:
        parsed = parse_document(path.name, data)
        outcome = f"parsed: {len(parsed.text):,} chars"
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {str(exc)[:90]}"
    seconds = time.perf_counter() - started
    print(json.dumps({"outcome": outcome, "seconds": seconds, "peak_mb": _vmhwm_mb_self()}))


def _load_parsers() -> None:
    """Import what the ingest function has loaded once it met every format."""
    import docx  # noqa: F401
    import openpyxl  # noqa: F401
    import pptx  # noqa: F401
    import pypdfium2  # noqa: F401


def _vmhwm_mb_self() -> float:
    import os

    return _vmhwm_mb(os.getpid()) or 0.0


def _isolation_cost(runs: int) -> dict[str, float]:
    """Milliseconds per small document, parsed here and in a forked child."""
    sys.path.insert(0, str(ROOT / "layers" / "common" / "python"))
    from ragline.documents.budgets import Budgets
    from ragline.documents.isolation import parse_within_budgets

    _load_parsers()
    data = b"# Tariffs\n\n" + b"Kayak tariff is 40 euros per day. " * 200
    costs = {}
    for label, isolate in (("in process", False), ("forked child", True)):
        budgets = Budgets(isolate=isolate)
        parse_within_budgets("doc.md", data, budgets)
        started = time.perf_counter()
        for _ in range(runs):
            parse_within_budgets("doc.md", data, budgets)
        costs[label] = (time.perf_counter() - started) * 1000 / runs
    costs["resident MB"] = _vmhwm_mb_self()
    return costs


def _row(title: str, size: str, tree: str, result: dict[str, object]) -> None:
    peak, seconds = float(result["peak_mb"]), float(result["seconds"])  # type: ignore[arg-type]
    print(f"{title:40} {size:>9}  {tree:6} {peak:8.0f} {seconds:8.2f}  {result['outcome']}",
          flush=True)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="a tree with the code before the budgets")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per parse")
    parser.add_argument("--runs", type=int, default=50, help="parses for the isolation cost")
    parser.add_argument("--parse", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tree", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--isolation", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.parse:
        _parse_here(args.parse, args.tree)
        return 0
    if args.isolation:
        print(json.dumps(_isolation_cost(args.runs)))
        return 0

    trees = [("after", ROOT)] + ([("before", args.before)] if args.before else [])
    print(f"{'file':40} {'size':>9}  {'tree':6} {'peak MB':>8} {'seconds':>8}  outcome")
    with tempfile.TemporaryDirectory() as folder:
        baseline = Path(folder) / "empty.txt"
        baseline.write_bytes(b"Kayak.")
        for label, tree in trees:
            _row("(baseline: parsers loaded)", "6 B", label, _run(baseline, tree, args.timeout))
        for title, (name, data) in _files().items():
            path = Path(folder) / name
            path.write_bytes(data)
            size = f"{len(data) / MIB:.1f} MiB" if len(data) > MIB else f"{len(data) >> 10} KiB"
            for label, tree in trees:
                _row(title, size, label, _run(path, tree, args.timeout))
            path.unlink()
    isolation = subprocess.run(
        [sys.executable, __file__, "--isolation", "--runs", str(args.runs)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    costs = json.loads(isolation.stdout.strip().splitlines()[-1])
    print(
        f"\nisolation, small markdown document (process at {costs['resident MB']:.0f} MB): "
        f"{costs['in process']:.2f} ms in process, {costs['forked child']:.2f} ms in a "
        f"forked child: {costs['forked child'] - costs['in process']:.2f} ms a document"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
