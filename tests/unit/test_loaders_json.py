"""JSON and JSON Lines: records flattened to path: value lines, a section per named record."""

from __future__ import annotations

import pytest
from ragline.documents import Block, parse_document


def test_each_item_of_a_top_level_array_is_a_record() -> None:
    # GIVEN an array of orders, one with an id, nested items, a key that is not a plain
    # name, empty containers, a multi-line string; and a bare value
    data = b"""[
      {"id": 7, "order": {"items": [{"sku": "A-12", "qty": 2}, {"sku": "B-7", "qty": 1}],
                         "zone/eu": null, "paid": true},
       "tags": [], "extra": {}, "note": "leave at\\nthe door"},
      {"status": "draft", "total": 12.5},
      "loose text"
    ]"""
    # WHEN it is parsed
    parsed = parse_document("orders.json", data)
    # THEN a record block per item, a leaf per line by its path; the one with an id has
    # a section of its own
    assert parsed.format == "json"
    assert parsed.blocks == [
        Block(
            "id: 7\n"
            "order.items[0].sku: A-12\norder.items[0].qty: 2\n"
            "order.items[1].sku: B-7\norder.items[1].qty: 1\n"
            'order["zone/eu"]: null\norder.paid: true\n'
            "tags: []\nextra: {}\nnote: leave at the door",
            ("id 7",),
            "record",
        ),
        Block("status: draft\ntotal: 12.5", (), "record"),
        Block("loose text", (), "record"),
    ]


def test_a_top_level_object_is_one_record_titled_by_its_name() -> None:
    parsed = parse_document("tool.json", b'{"Name": "ragline", "version": "0.1", "deps": ["a"]}')
    assert parsed.blocks == [
        Block("Name: ragline\nversion: 0.1\ndeps[0]: a", ("ragline",), "record")
    ]


def test_each_line_of_json_lines_is_a_record() -> None:
    data = b'{"title": "Reset", "body": "git reset moves HEAD"}\n\n{"title": "Log", "n": 3}\n'
    parsed = parse_document("pages.jsonl", data)
    assert parsed.format == "jsonl"
    assert [(b.section, b.text) for b in parsed.blocks] == [
        (("Reset",), "title: Reset\nbody: git reset moves HEAD"),
        (("Log",), "title: Log\nn: 3"),
    ]
    assert parse_document("pages.ndjson", data).format == "jsonl"


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("bad.json", b'{\n  "a": 1,\n  "b": tru\n}', "invalid JSON at line 3, column 8"),
        ("bad.jsonl", b'{"a": 1}\n{"a": 2}\n{"a" 3}\n', "invalid JSON at line 3, column 6"),
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_invalid_json_fails_with_the_line_and_column(name: str, data: bytes, message: str) -> None:
    from ragline.errors import DocumentParseError

    with pytest.raises(DocumentParseError, match=message):
        parse_document(name, data)
