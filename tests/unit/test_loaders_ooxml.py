"""Damaged Office files: every way a package can be broken fails as DocumentParseError."""

from __future__ import annotations

import contextlib
import io
import random
from collections.abc import Callable

import docx
import openpyxl
import pytest
from pptx import Presentation
from ragline.documents import parse_document
from ragline.errors import DocumentParseError


def _docx() -> bytes:
    document = docx.Document()
    document.add_heading("Title", 1)
    document.add_paragraph("Body text.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(1, 1).text = "a", "b"
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _pptx() -> bytes:
    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Title"
    slide.placeholders[1].text_frame.text = "Body"
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


def _xlsx() -> bytes:
    workbook = openpyxl.Workbook()
    workbook.active.append(["a", "b"])
    workbook.active.append([1, 2])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


FILES: dict[str, Callable[[], bytes]] = {"docx": _docx, "pptx": _pptx, "xlsx": _xlsx}


@pytest.mark.parametrize("fmt", list(FILES))
def test_a_member_needing_a_newer_zip_version_fails_with_the_reason(fmt: str) -> None:
    # GIVEN a package whose directory says a member needs ZIP version 20.9 to extract
    data = bytearray(FILES[fmt]())
    entry = data.index(b"PK\x01\x02")  # the first central directory entry
    data[entry + 6 : entry + 8] = (209).to_bytes(2, "little")
    # THEN it fails as a parse error, not NotImplementedError
    with pytest.raises(DocumentParseError, match=r"zip file version 20\.9"):
        parse_document(f"file.{fmt}", bytes(data))


@pytest.mark.parametrize("fmt", list(FILES))
def test_damaged_packages_fail_as_parse_errors_only(fmt: str) -> None:
    # GIVEN a valid file damaged 90 ways: bytes overwritten, the end cut off, a run removed
    original = FILES[fmt]()
    rng = random.Random(fmt)
    for attempt in range(90):
        data = bytearray(original)
        if attempt % 3 == 0:
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif attempt % 3 == 1:
            data = data[: rng.randrange(len(data))]
        else:
            start = rng.randrange(len(data))
            del data[start : start + rng.randint(1, 200)]
        # WHEN it is parsed, THEN it is read or fails with the reason: nothing else escapes
        with contextlib.suppress(DocumentParseError):
            parse_document(f"file.{fmt}", bytes(data))
