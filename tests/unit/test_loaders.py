"""The loader registry: formats by file name, and content no loader can read."""

from __future__ import annotations

import pytest
from ragline.documents import format_for, parse_document
from ragline.errors import DocumentParseError, EmptyDocumentError, UnsupportedDocumentError


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("bad.md", b"\xff\xfe\x00garbage", "NUL"),
        ("bad.html", b"caf\xe9 au lait", "not valid UTF-8"),
    ],
)
def test_unreadable_content_is_a_parse_error(name: str, data: bytes, message: str) -> None:
    with pytest.raises(DocumentParseError, match=message):
        parse_document(name, data)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty.txt", b"   \n\n  "),
        ("links.html", b"<html><nav><a href='/a'>A</a></nav><p> </p></html>"),
    ],
)
def test_a_document_without_text_is_skipped_not_failed(name: str, data: bytes) -> None:
    # GIVEN a document that parses but holds no text (a table-of-contents page: links only)
    # WHEN it is parsed
    # THEN it is unsupported content (recorded as skipped, not retried), with the reason
    with pytest.raises(EmptyDocumentError, match="contains no text to index"):
        parse_document(name, data)


def test_unsupported_types_are_named() -> None:
    with pytest.raises(UnsupportedDocumentError, match=r"'\.png'"):
        format_for("photo.png")
    assert format_for("guide.rst.txt") == "rst"
    assert format_for("README.MD") == "markdown"


def test_a_metadata_sidecar_is_not_read_as_a_json_document() -> None:
    # GIVEN the Bedrock-style sidecar of report.pdf, and a JSON file merely named metadata
    # THEN the sidecar is no document (recorded as skipped), the other is JSON
    with pytest.raises(UnsupportedDocumentError, match="metadata sidecar"):
        format_for("reports/report.pdf.metadata.json")
    assert format_for("reports/metadata.json") == "json"
    assert format_for("reports/.metadata.json") == "json"
