"""JSON and JSON Lines: each record flattened to ``path: value`` lines.

A record is a line of a ``.jsonl``/``.ndjson`` file, an item of a top-level JSON array,
or a top-level JSON object or value. Each record is one ``record`` block (cut between
lines when it outgrows a chunk) whose lines name every leaf by its path from the record:
``order.items[0].sku: A-12``. Keys that are not plain names are quoted
(``labels["zone/eu"]: on``); strings read as they are, on one line; other leaves as JSON
(``true``, ``null``, ``12.5``, ``[]``, ``{}``). A record with a ``title``, ``name`` or
``id`` field (checked in that order, any case) gets a section of its own named after it,
so its chunks say which record they are. Invalid JSON fails with its line and column.
An integer longer than Python converts (4,300 digits) is kept as its digits, as text.
"""

from __future__ import annotations

import json
import re
import sys

from ragline.documents.loaders.base import Block, Loader, ParsedDocument
from ragline.errors import DocumentParseError

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_TITLE_FIELDS = ("title", "name", "id")


def _key_path(path: str, key: str) -> str:
    if _PLAIN_KEY.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _leaf(value: object) -> str:
    if isinstance(value, str):
        return " ".join(value.split())
    return json.dumps(value, ensure_ascii=False)


def flatten(record: object) -> list[str]:
    """The ``path: value`` lines of a JSON value, leaves in document order.

    Iterative, so a record nested as deeply as the JSON parser allows cannot exhaust the
    interpreter's stack here.
    """
    lines: list[str] = []
    pending: list[tuple[str, object]] = [("", record)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, dict) and value:
            children = [(_key_path(path, str(k)), v) for k, v in value.items()]
        elif isinstance(value, list) and value:
            children = [(f"{path}[{index}]", v) for index, v in enumerate(value)]
        else:
            lines.append(f"{path}: {_leaf(value)}" if path else _leaf(value))
            continue
        pending.extend(reversed(children))
    return lines


def _section(record: object) -> tuple[str, ...]:
    if not isinstance(record, dict):
        return ()
    fields = {str(key).lower(): value for key, value in record.items()}
    for field in _TITLE_FIELDS:
        value = fields.get(field)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            text = " ".join(str(value).split())
            if text:
                return (f"id {text}" if field == "id" else text,)
    return ()


def _blocks(records: list[object]) -> list[Block]:
    blocks: list[Block] = []
    for record in records:
        lines = flatten(record)
        if any(line.strip() for line in lines):
            blocks.append(Block("\n".join(lines), _section(record), "record"))
    return blocks


def _integer(digits: str) -> int | str:
    """A JSON integer; one too long for int() (which raises ValueError) as its digits."""
    limit = sys.get_int_max_str_digits()
    return int(digits) if not limit or len(digits.lstrip("-")) <= limit else digits


def _loads(text: str, first_line: int = 1) -> object:
    """Parse JSON text that starts on line ``first_line`` of the file."""
    try:
        return json.loads(text, parse_int=_integer)
    except json.JSONDecodeError as exc:
        line = first_line + exc.lineno - 1
        raise DocumentParseError(
            f"invalid JSON at line {line}, column {exc.colno}: {exc.msg}"
        ) from exc
    except RecursionError as exc:
        raise DocumentParseError(f"JSON nested too deeply (line {first_line})") from exc


def parse_json(text: str) -> ParsedDocument:
    """A block per record: the items of a top-level array, else the whole value."""
    value = _loads(text)
    records = value if isinstance(value, list) else [value]
    return ParsedDocument(title="", format="json", blocks=_blocks(records))


def parse_jsonl(text: str) -> ParsedDocument:
    """A block per line (blank lines skipped); a bad line fails with its number."""
    records = [
        _loads(line, number) for number, line in enumerate(text.split("\n"), 1) if line.strip()
    ]
    return ParsedDocument(title="", format="jsonl", blocks=_blocks(records))


JSON_LOADER = Loader("json", (".json",), parse=parse_json)
JSONL_LOADER = Loader("jsonl", (".jsonl", ".ndjson"), parse=parse_jsonl)
