"""Excel workbooks (``.xlsx``, ``.xlsm``): each worksheet's rows as one table, a section per
sheet named after it.

openpyxl reads the workbook in read-only mode, streaming each sheet's rows from its XML
instead of building the cell grid, and the sheet's recorded dimensions are ignored (some
writers record ``A1`` for a full sheet). Values, not formulas: a formula cell reads as
the value the spreadsheet program last computed and saved with the file; a file written
by a program that computes nothing (openpyxl itself) has no such value and the cell reads
as empty. Numbers read to the 15 significant digits a spreadsheet shows, whole ones
without ``.0`` (number formats such as percentages and currencies are not applied); dates
as ISO dates, booleans as TRUE and FALSE. Chart sheets hold no rows and are left out;
hidden sheets are read. Documents of more than RAGLINE_MAX_TABLE_ROWS rows fail, and so
do sheets spanning more than RAGLINE_MAX_SHEET_COLUMNS columns or workbooks of more than
RAGLINE_MAX_SHEET_CELLS cells, as the sheet declares them (its ``<dimension>``) and as
read (a row's cells run from A to its last one, so cells in A and XFD span 16,384).
"""

from __future__ import annotations

import io
from datetime import date, datetime, time
from typing import Any

from ragline.documents import budgets
from ragline.documents.loaders.base import Block, Loader, ParsedDocument
from ragline.documents.loaders.ooxml import check_package, parser_errors
from ragline.documents.loaders.tabular import RowCounter, table_block

_NAME = "Excel (.xlsx)"


def cell_value(value: object) -> str:
    """A cell's value as a reader of the sheet sees it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        # 15 significant digits, as the spreadsheet shows them: 0.1 + 0.2 is saved as
        # 0.30000000000000004 and read as 0.3; whole numbers without ".0"
        return f"{value:.15g}"
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    return str(value)


def parse_xlsx(data: bytes) -> ParsedDocument:
    """A table per worksheet, under the sheet's name; the workbook's title property."""
    check_package(data, _NAME, "xl/workbook.xml")
    with parser_errors(_NAME):
        from openpyxl import load_workbook

        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            counter = RowCounter()
            cells_read = 0
            blocks: list[Block] = []
            for sheet in workbook.worksheets:
                _check_declared(sheet)
                sheet.reset_dimensions()
                rows: list[list[str]] = []
                where = f"sheet {sheet.title!r}"
                for row in sheet.iter_rows(values_only=True):
                    cells_read += len(row)
                    _check_read(sheet.title, len(row), cells_read)
                    cells = [cell_value(value) for value in row]
                    if any(cell.strip() for cell in cells):
                        counter.count(where)
                        rows.append(cells)
                block = table_block(rows, (sheet.title,))
                if block is not None:
                    blocks.append(block)
            title = workbook.properties.title or ""
        finally:
            workbook.close()
    return ParsedDocument(title=title, format="xlsx", blocks=blocks)


def _check_declared(sheet: Any) -> None:
    """The sheet's recorded dimensions against the budgets (absent or ``A1``: nothing)."""
    columns, rows = sheet.max_column or 0, sheet.max_row or 0
    _check_read(sheet.title, columns, 0)
    budget = budgets.current()
    if columns * rows > budget.sheet_cells:
        raise budgets.BudgetExceededError(
            f"sheet {sheet.title!r} spans {rows:,} rows by {columns:,} columns, over the "
            f"limit of {budget.sheet_cells:,} cells (RAGLINE_MAX_SHEET_CELLS)"
        )


def _check_read(title: str, columns: int, cells: int) -> None:
    budget = budgets.current()
    if columns > budget.sheet_columns:
        raise budgets.BudgetExceededError(
            f"sheet {title!r} spans {columns:,} columns, over the limit of "
            f"{budget.sheet_columns:,} (RAGLINE_MAX_SHEET_COLUMNS)"
        )
    if cells > budget.sheet_cells:
        raise budgets.BudgetExceededError(
            f"the workbook holds more than {budget.sheet_cells:,} cells, at sheet {title!r}"
            " (RAGLINE_MAX_SHEET_CELLS)"
        )


LOADER = Loader("xlsx", (".xlsx", ".xlsm"), parse_bytes=parse_xlsx)
