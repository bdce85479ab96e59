"""Excel workbooks: a table per sheet, values not formulas, on files openpyxl writes."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime

import openpyxl
import pytest
from ragline.documents import Block, budgets, chunk_document, parse_document
from ragline.documents.budgets import Budgets
from ragline.errors import DocumentParseError


def _saved(workbook: openpyxl.Workbook) -> bytes:
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _with_part_edited(data: bytes, part: str, old: bytes, new: bytes) -> bytes:
    edited = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(edited, "w") as target:
        for item in source.infolist():
            content = source.read(item)
            if item.filename == part:
                assert old in content
                content = content.replace(old, new)
            target.writestr(item, content)
    return edited.getvalue()


def test_a_table_per_sheet_under_the_sheet_name() -> None:
    # GIVEN a workbook: a stock sheet with a blank row, an unused formatted column and a
    # formula, an empty sheet, and a sheet of dates and booleans
    workbook = openpyxl.Workbook()
    workbook.properties.title = "Inventory"
    stock = workbook.active
    stock.title = "Stock"
    stock.append(["sku", "name", "price", None])
    stock.append(["A-12", "Widget", 3.0])
    stock.append([])
    stock.append(["B-7", "Gadget\nlarge", 0.25, None])
    stock["E1"].number_format = "0.00"  # formatted, never filled
    stock["C6"] = "=SUM(C2:C4)"  # no value saved: openpyxl computes nothing
    workbook.create_sheet("Empty")
    log = workbook.create_sheet("Log")
    log.append(["when", "checked"])
    log.append([datetime(2024, 5, 1), True])
    log.append([datetime(2024, 5, 2, 14, 30), False])

    # AND a computed price saved in full binary precision, as Excel saves it (openpyxl
    # writes fewer digits, so the saved part is edited)
    data = _with_part_edited(
        _saved(workbook), "xl/worksheets/sheet1.xml", b"<v>0.25</v>", b"<v>0.30000000000000004</v>"
    )

    # WHEN it is parsed
    parsed = parse_document("inventory.xlsx", data)

    # THEN each sheet with rows is one table under its name, header first, values as
    # shown, empty rows and columns and the unsaved formula left out
    assert (parsed.title, parsed.format) == ("Inventory", "xlsx")
    assert parsed.blocks == [
        Block(
            "sku | name | price\nA-12 | Widget | 3\nB-7 | Gadget large | 0.3", ("Stock",), "table"
        ),
        Block("when | checked\n2024-05-01 | TRUE\n2024-05-02 14:30:00 | FALSE", ("Log",), "table"),
    ]


def test_every_chunk_of_a_long_sheet_repeats_the_header() -> None:
    # GIVEN a sheet of 500 orders
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Orders"
    sheet.append(["order", "customer", "total", "status"])
    for number in range(500):
        sheet.append([f"O-{number:05d}", f"customer {number % 37}", number * 1.25, "shipped"])
    # WHEN it is parsed and chunked
    chunks = chunk_document(parse_document("orders.xlsx", _saved(workbook)))
    # THEN every chunk is of the sheet, starts with the header, and all orders are there
    assert len(chunks) > 10
    assert all(c.section == ("Orders",) for c in chunks)
    assert all(c.text.startswith("order | customer | total | status\n") for c in chunks)
    text = "\n".join(c.text for c in chunks)
    assert all(f"O-{number:05d} |" in text for number in range(500))


def test_a_workbook_over_the_row_cap_fails_with_the_reason() -> None:
    workbook = openpyxl.Workbook()
    for number in range(30):
        workbook.active.append([number, "x"])
    with (
        budgets.applied(Budgets(table_rows=25)),
        pytest.raises(DocumentParseError, match=r"more than 25 table rows \(at sheet 'Sheet'\)"),
    ):
        parse_document("big.xlsx", _saved(workbook))


def test_a_file_that_is_not_a_workbook_fails_with_the_reason() -> None:
    with pytest.raises(DocumentParseError, match=r"not a valid Excel \(\.xlsx\) file"):
        parse_document("sheet.xlsx", b"a,b\n1,2\n")
