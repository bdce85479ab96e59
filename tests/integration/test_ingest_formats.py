"""Office and data files through the ingest Lambda (moto S3, embedded PostgreSQL), then
found by retrieval: a table row comes back in a chunk that still has its header."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from ragline.retrieval import Retriever

from tests.support.s3 import BUCKET

HEADER = ("Part", "Code", "Location")
TARGET = ("torque wrench", "TW-300", "aisle 7b")
# 150 parts, the one asked about far down the table, so its chunk is not the first
PARTS = [(f"spare part {n}", f"SP-{n:04d}", f"aisle {n % 20}") for n in range(150)]
PARTS.insert(120, TARGET)


def _docx() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Parts catalog", level=1)
    document.add_paragraph("Where each part is kept.")
    table = document.add_table(rows=len(PARTS) + 1, cols=3)
    for row, values in enumerate([HEADER, *PARTS]):
        for column, value in enumerate(values):
            table.cell(row, column).text = value
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _pptx() -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])  # title only
    slide.shapes.title.text = "Parts catalog"
    shape = slide.shapes.add_table(len(PARTS) + 1, 3, Inches(0), Inches(1), Inches(9), Inches(6))
    for row, values in enumerate([HEADER, *PARTS]):
        for column, value in enumerate(values):
            shape.table.cell(row, column).text = value
    slide.notes_slide.notes_text_frame.text = "Tools are checked out at the desk."
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


def _xlsx() -> bytes:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Parts"
    for values in [HEADER, *PARTS]:
        sheet.append(list(values))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _delimited(delimiter: str) -> bytes:
    return "\n".join(delimiter.join(values) for values in [HEADER, *PARTS]).encode()


def _records() -> list[dict[str, Any]]:
    return [
        {"name": name, "code": code, "stock": {"location": location}}
        for name, code, location in PARTS
    ]


FILES: dict[str, Callable[[], bytes]] = {
    "docx": _docx,
    "pptx": _pptx,
    "xlsx": _xlsx,
    "csv": lambda: _delimited(","),
    "tsv": lambda: _delimited("\t"),
    "json": lambda: json.dumps(_records()).encode(),
    "jsonl": lambda: "\n".join(json.dumps(r) for r in _records()).encode(),
}
HEADER_LINE = " | ".join(HEADER)
TARGET_LINE = " | ".join(TARGET)


def _created(template: dict[str, Any], key: str) -> dict[str, Any]:
    record = copy.deepcopy(template["Records"][0])
    body = json.loads(record["body"])
    body["Records"][0]["s3"]["object"]["key"] = key
    record["body"] = json.dumps(body)
    return {"Records": [record]}


@pytest.mark.parametrize("fmt", list(FILES))
def test_a_file_is_ingested_and_its_table_row_retrieved_with_the_header(
    fmt: str,
    ingest: ModuleType,
    s3: Any,
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
) -> None:
    # GIVEN a parts catalog of this format in the bucket, in a collection of its own
    key = f"catalog/parts.{fmt}"
    s3.put_object(Bucket=BUCKET, Key=key, Body=FILES[fmt](), Metadata={"collection": fmt})

    # WHEN the ingest Lambda gets the notification
    response = ingest.lambda_handler(_created(event("sqs_s3_object_created"), key), lambda_context)

    # THEN the document is stored, read as its format, in several chunks
    assert response == {"batchItemFailures": []}
    docs, _ = ingest.ingestor.store.list_documents(limit=100)
    (doc,) = [d for d in docs if d.source == f"s3://{BUCKET}/{key}"]
    assert (doc.status, doc.format, doc.collection) == ("ingested", fmt, fmt)
    assert doc.chunk_count > 3

    # AND a search for the part finds its row first, in a chunk that starts with the
    # header (tables) or under the record's own section (data files)
    retriever = Retriever(ingest.ingestor.store, ingest.ingestor.embedder)
    found = retriever.search("where is the torque wrench kept", collection=fmt, top_k=3)
    best = found.chunks[0]
    if fmt in ("json", "jsonl"):
        assert best.section == "torque wrench"
        assert "code: TW-300\nstock.location: aisle 7b" in best.text
    else:
        assert best.text.startswith(HEADER_LINE + "\n")
        assert TARGET_LINE in best.text.split("\n")


def test_a_corrupt_office_file_is_failed_with_the_reason(
    ingest: ModuleType, s3: Any, event: Callable[[str], dict[str, Any]], lambda_context: Any
) -> None:
    # GIVEN a text file saved under a .xlsx name
    key = "catalog/renamed.xlsx"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"Part,Code\nwrench,TW-300\n")
    # WHEN it is ingested
    response = ingest.lambda_handler(_created(event("sqs_s3_object_created"), key), lambda_context)
    # THEN its message is reported for redelivery and the document is failed with the reason
    assert len(response["batchItemFailures"]) == 1
    docs, _ = ingest.ingestor.store.list_documents(limit=100)
    (doc,) = [d for d in docs if d.source == f"s3://{BUCKET}/{key}"]
    assert doc.status == "failed"
    assert "not a valid Excel (.xlsx) file (not a ZIP package" in (doc.error or "")
