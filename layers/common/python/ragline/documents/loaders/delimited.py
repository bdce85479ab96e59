"""CSV and TSV: the rows as one table under their header row.

A ``.tsv`` is split at tabs. A ``.csv`` may be split at commas, semicolons (spreadsheets
in locales with a decimal comma write those), tabs or pipes: each is tried on the first
64 KB and the one that gives the most rows of one same width, wider than one column, wins,
commas on a tie and for a single column (where ``csv.Sniffer`` gives up with an error;
it also weighs any character, where this weighs only the four a spreadsheet writes).
Quoted fields keep their delimiters and line breaks. The first row with text is the
header.
A file whose longest line is over RAGLINE_MAX_LINE_CHARS fails before it is split (one
125 MB line would become one row of millions of cells).
"""

from __future__ import annotations

import csv
import io
from collections import Counter

from ragline.documents import budgets
from ragline.documents.loaders.base import Loader, ParsedDocument
from ragline.documents.loaders.tabular import RowCounter, table_block
from ragline.errors import DocumentParseError

_DELIMITERS = (",", ";", "\t", "|")
_SAMPLE_CHARS = 65_536


def _agreement(sample: str, delimiter: str) -> float:
    """The share of the sample's rows of its most common width, 0 when that width is 1."""
    try:
        widths = Counter(len(row) for row in csv.reader(io.StringIO(sample), delimiter=delimiter))
    except csv.Error:
        return 0.0
    widths.pop(0, None)  # blank lines
    if not widths:
        return 0.0
    width, rows = widths.most_common(1)[0]
    return rows / widths.total() if width > 1 else 0.0


def sniff_delimiter(text: str) -> str:
    """The delimiter a CSV text is written with (see the module docstring)."""
    sample = text[:_SAMPLE_CHARS]
    if len(text) > _SAMPLE_CHARS and "\n" in sample:
        sample = sample[: sample.rindex("\n")]  # whole lines only
    best, best_agreement = ",", 0.0
    for delimiter in _DELIMITERS:
        agreement = _agreement(sample, delimiter)
        if agreement > best_agreement:
            best, best_agreement = delimiter, agreement
    return best


def check_lines(text: str) -> None:
    """Raise BudgetExceededError when a line of ``text`` is longer than its budget."""
    limit = budgets.current().line_chars
    if budgets.longest_line(text, limit) > limit:
        raise budgets.BudgetExceededError(
            f"a line is longer than {limit:,} characters (RAGLINE_MAX_LINE_CHARS)"
        )


def _parse(text: str, delimiter: str, fmt: str) -> ParsedDocument:
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    counter = RowCounter()
    rows: list[list[str]] = []
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                counter.count(f"line {reader.line_num}")
                rows.append(row)
    except csv.Error as exc:
        raise DocumentParseError(
            f"unreadable {fmt.upper()} at line {reader.line_num}: {exc}"
        ) from exc
    block = table_block(rows)
    return ParsedDocument(title="", format=fmt, blocks=[block] if block else [])


def parse_csv(text: str) -> ParsedDocument:
    """The rows of a CSV file as one table, its delimiter sniffed; no title of its own."""
    check_lines(text)
    return _parse(text, sniff_delimiter(text), "csv")


def parse_tsv(text: str) -> ParsedDocument:
    """The rows of a tab-separated file as one table; no title of its own."""
    check_lines(text)
    return _parse(text, "\t", "tsv")


CSV_LOADER = Loader("csv", (".csv",), parse=parse_csv)
TSV_LOADER = Loader("tsv", (".tsv", ".tab"), parse=parse_tsv)
