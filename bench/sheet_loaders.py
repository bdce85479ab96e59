"""Spreadsheet and Office loading: rows/s, peak memory and the parsers' import cost.

Writes an Excel workbook and the same rows as CSV (an order log of ROWS rows and six
columns), then, each in a fresh interpreter so the figures are its own: parses and
chunks it as ingestion does and prints the time, rows/s, chunks and peak resident
memory; and times the first import of python-docx, python-pptx and openpyxl (what the
first file of each format adds to a cold start). Figures, not a test.

    python bench/sheet_loaders.py [--rows N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from ragline.documents.loaders.tabular import MAX_TABLE_ROWS

HEADER = ["order", "customer", "total", "status", "region", "date"]
MEASURE = """
import json, resource, sys, time
from ragline.documents import chunk_document, parse_document
path = sys.argv[1]
data = open(path, "rb").read()
started = time.perf_counter()
document = parse_document(path, data)
parsed = time.perf_counter() - started
chunks = chunk_document(document)
total = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"parse_s": parsed, "total_s": total, "chunks": len(chunks), "peak_mb": peak}))
"""
IMPORT = "import time; t = time.perf_counter(); import {0}; print(time.perf_counter() - t)"


def _write(directory: Path, rows: int) -> list[Path]:
    import openpyxl

    values = [
        [f"O-{n:06d}", f"customer {n % 997}", n * 1.25, "shipped", "north", "2024-05-01"]
        for n in range(rows)
    ]
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("Orders")
    for row in [HEADER, *values]:
        sheet.append(row)
    xlsx = directory / "orders.xlsx"
    workbook.save(xlsx)
    csv = directory / "orders.csv"
    csv.write_text("\n".join(",".join(map(str, row)) for row in [HEADER, *values]))
    return [xlsx, csv]


def _import_seconds(module: str) -> float:
    command = [sys.executable, "-c", IMPORT.format(module)]
    return float(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=MAX_TABLE_ROWS - 1, help="data rows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        for path in _write(Path(scratch), args.rows):
            run = subprocess.run(
                [sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True,
                check=True,
            )  # fmt: skip
            figures = json.loads(run.stdout)
            print(
                f"{path.suffix[1:]:5} {path.stat().st_size / 1e6:5.1f} MB  {args.rows} rows  "
                f"parse {figures['parse_s']:5.1f} s ({args.rows / figures['parse_s']:8,.0f} "
                f"rows/s)  parse+chunk {figures['total_s']:5.1f} s  {figures['chunks']} chunks  "
                f"peak {figures['peak_mb']:.0f} MB"
            )
    for module in ("docx", "pptx", "openpyxl"):
        best = min(_import_seconds(module) for _ in range(3))
        print(f"import {module:9} {best * 1000:4.0f} ms (best of 3, bare interpreter)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
