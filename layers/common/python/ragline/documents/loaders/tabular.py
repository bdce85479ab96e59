"""Tables as text, shared by the spreadsheet, CSV, Word and PowerPoint loaders.

A table is one ``table`` block: one line per row, cells joined by `` | ``, the header row
first (chunking repeats that first line atop every chunk that starts inside the table).
Rows with no text are dropped, and so are columns empty in every row, which spreadsheets
leave behind after formatting a whole range.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ragline.documents import budgets
from ragline.documents.loaders.base import Block

CELL_SEPARATOR = " | "
# The most rows one document may hold across its sheets (RAGLINE_MAX_TABLE_ROWS, the
# budgets' table_rows): past it the document fails with the reason rather than being cut
# short. 100,000 rows of six short cells take openpyxl about 16 s and make about 12,000
# chunks of 256 tokens (3 M tokens to embed): minutes on a provider, within one Lambda
# run (bench/sheet_loaders.py).


def cell_text(value: str) -> str:
    """A cell's text on one line: runs of whitespace (line breaks too) as one space."""
    return " ".join(value.split())


class RowCounter:
    """Counts a document's rows as they are read, failing past the table_rows budget."""

    def __init__(self) -> None:
        self.limit = budgets.current().table_rows
        self.rows = 0

    def count(self, where: str) -> None:
        self.rows += 1
        if self.rows > self.limit:
            raise budgets.BudgetExceededError(
                f"more than {self.limit} table rows (at {where}); split the file into "
                f"smaller ones to index it"
            )


def table_block(
    rows: Iterable[Sequence[str]], section: tuple[str, ...] = (), page: int | None = None
) -> Block | None:
    """One ``table`` block of ``rows`` (cells already as text), or None when all are empty."""
    kept = [[cell_text(cell) for cell in row] for row in rows]
    kept = [row for row in kept if any(row)]
    if not kept:
        return None
    used = [False] * max(len(row) for row in kept)
    for row in kept:
        for index, cell in enumerate(row):
            used[index] = used[index] or bool(cell)
    lines = [
        CELL_SEPARATOR.join(cell for index, cell in enumerate(row) if used[index]).strip()
        for row in kept
    ]
    return Block("\n".join(lines), section, "table", page)
