"""Metadata filters: the JSON grammar ``POST /query`` and ``POST /retrieve`` accept.

A filter is one operator object, nested through ``and``, ``or`` and ``not``::

    {"and": [{"eq": {"key": "team", "value": "search"}},
             {"gte": {"key": "published", "value": "2024-01-01"}},
             {"not": {"exists": {"key": "draft"}}}]}

Operators select documents by their attributes (see ``ragline.ingest.attributes``):

* ``eq`` / ``ne``: equal, or not (a list attribute is equal when it holds the value);
  string, number or boolean, compared as JSON (``"2023"`` is not ``2023``);
* ``in`` / ``nin``: equal to one of a list of such values, or to none of them;
* ``gt`` / ``gte`` / ``lt`` / ``lte``: a number, or an ISO 8601 date or time (a date
  alone is midnight UTC, a time without an offset is UTC); a string attribute that
  reads as a number or an ISO date compares as one (tags and user metadata are strings);
* ``exists``: the attribute is set, whatever its value;
* ``and`` / ``or``: all, or any, of a list of filters; ``not``: the complement.

``ne``, ``nin`` and ``not`` are exact complements: a document lacking the attribute is
"not equal". The shape is Bedrock Knowledge Bases' (one operator object holding
``key`` and ``value``) with shorter names: ``equals`` is ``eq``, ``andAll`` is ``and``.

This module only parses and validates; the store compiles a :data:`Filter` to SQL.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# The attribute key pattern of ragline.ingest.attributes, repeated to keep this a leaf.
KEY_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$"
# An ISO 8601 date that exists (a year from 0001, the month's days, 29 February in leap
# years), optionally a time (hours 00-23, no leap second) and an offset: exactly what
# datetime.fromisoformat reads, so the OpenAPI document and API Gateway's models, which
# carry this pattern, refuse what the parser would.
_YEAR = r"(?:\d{3}[1-9]|\d{2}[1-9]\d|\d[1-9]\d{2}|[1-9]\d{3})"
_LEAP_YEAR = r"(?:\d{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_MONTH_DAY = (
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)"
    r"|02-(?:0[1-9]|1\d|2[0-8]))"
)
_HOUR_MINUTE = r"(?:[01]\d|2[0-3]):[0-5]\d"
_TIME = rf"T{_HOUR_MINUTE}(?::[0-5]\d(?:\.\d{{1,6}})?)?(?:Z|[+-]{_HOUR_MINUTE})?"
DATE_PATTERN = rf"^(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)(?:{_TIME})?$"
MAX_DEPTH = 6  # nesting of and / or / not
MAX_NODES = 64  # operators in one filter
MAX_VALUES = 100  # values of one in / nin
# As long as an S3 tag value; also keeps the largest valid filter well under the API's
# request size limit (RAGLINE_MAX_BODY_BYTES, 32 KiB by default).
MAX_STRING_CHARS = 256

COMPARISONS = ("eq", "ne")
MEMBERSHIPS = ("in", "nin")
RANGES = ("gt", "gte", "lt", "lte")
COMBINATIONS = ("and", "or")
OPERATORS = (*COMPARISONS, *MEMBERSHIPS, *RANGES, "exists", *COMBINATIONS, "not")

Scalar = str | int | float | bool

_KEY = re.compile(KEY_PATTERN)
_DATE = re.compile(DATE_PATTERN)


class FilterError(ValueError):
    """A filter that is not one: ``path`` names the bad part (``and[1].gte.value``)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"filter{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class Compare:
    """``eq`` or ``ne``: the attribute equals the value (a list attribute: holds it)."""

    op: str
    key: str
    value: Scalar


@dataclass(frozen=True)
class Member:
    """``in`` or ``nin``: the attribute equals one of the values."""

    op: str
    key: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class Range:
    """``gt``, ``gte``, ``lt`` or ``lte`` against a number or a moment (UTC)."""

    op: str
    key: str
    value: float | int | datetime


@dataclass(frozen=True)
class Exists:
    key: str


@dataclass(frozen=True)
class Combine:
    """``and`` or ``or`` of the parts."""

    op: str
    parts: tuple[Filter, ...]


@dataclass(frozen=True)
class Not:
    part: Filter


Filter = Compare | Member | Range | Exists | Combine | Not


def parse_filter(value: Any) -> Filter:
    """The filter a JSON value spells; FilterError names the first bad part."""
    counter = [0]
    return _parse(value, "", 1, counter)


def _parse(value: Any, path: str, depth: int, counter: list[int]) -> Filter:
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise FilterError(path, f"a filter holds at most {MAX_NODES} operators")
    if not isinstance(value, dict) or len(value) != 1:
        raise FilterError(path, f"must be an object with exactly one operator: {_known()}")
    [(op, body)] = value.items()
    here = f"{path}.{_shown(op)}"
    if op not in OPERATORS:
        raise FilterError(here, f"is not an operator; use one of {_known()}")
    if op in COMBINATIONS or op == "not":
        if depth >= MAX_DEPTH:
            raise FilterError(here, f"filters nest at most {MAX_DEPTH} levels deep")
        if op == "not":
            return Not(_parse(body, here, depth + 1, counter))
        if not isinstance(body, list) or not body:
            raise FilterError(here, "must be a non-empty list of filters")
        parts = tuple(
            _parse(part, f"{here}[{index}]", depth + 1, counter) for index, part in enumerate(body)
        )
        return Combine(op, parts)
    fields = ("key",) if op == "exists" else ("key", "value")
    if not isinstance(body, dict):
        raise FilterError(here, f"must be an object with {' and '.join(fields)}")
    for name in body:
        if name not in fields:
            raise FilterError(f"{here}.{_shown(name)}", "is not a known field")
    for name in fields:
        if name not in body:
            raise FilterError(f"{here}.{name}", "is required")
    key = body["key"]
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise FilterError(
            f"{here}.key",
            "must be 1-128 letters, digits, '_', '.', ':' or '-', not starting with "
            "'.', ':' or '-'",
        )
    if op == "exists":
        return Exists(key)
    where = f"{here}.value"
    raw = body["value"]
    if op in COMPARISONS:
        return Compare(op, key, _scalar(raw, where))
    if op in MEMBERSHIPS:
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_VALUES:
            raise FilterError(where, f"must be a list of 1 to {MAX_VALUES} values")
        return Member(op, key, tuple(_scalar(v, f"{where}[{i}]") for i, v in enumerate(raw)))
    return Range(op, key, _bound(raw, where))


def _scalar(value: Any, where: str) -> Scalar:
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS or "\x00" in value:
            raise FilterError(where, f"strings are at most {MAX_STRING_CHARS} characters, no NUL")
        if not _is_unicode(value):
            raise FilterError(where, "is not valid Unicode text (a lone surrogate such as \\ud800)")
        return value
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise FilterError(where, "must be a string, a number or a boolean")


def _bound(value: Any, where: str) -> float | int | datetime:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return value
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise FilterError(where, "must be a number or an ISO date (2024-05-01, 2024-05-01T09:30Z)")


def _is_unicode(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8: JSON's ``\\ud800`` escapes decode to lone
    surrogates, which no database, log or response encoder can write."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _shown(name: object) -> str:
    """A name from the request as the error message can quote it (lone surrogates
    escaped: the message itself must encode)."""
    text = str(name)
    return text if _is_unicode(text) else text.encode("utf-8", "backslashreplace").decode()


def _known() -> str:
    return ", ".join(OPERATORS)


# --- the OpenAPI description --------------------------------------------------------------

_REF = "#/components/schemas/{}"
_TEXT = {"type": "string", "maxLength": MAX_STRING_CHARS, "pattern": r"^[^\x00]*$"}
_SCALAR = {"anyOf": [_TEXT, {"type": "number"}, {"type": "boolean"}]}
_KEY_SCHEMA = {"type": "string", "pattern": KEY_PATTERN, "description": "An attribute name."}


def _operator(op: str, body: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {op: body},
        "required": [op],
        "additionalProperties": False,
        "description": description,
    }


def _leaf(value: dict[str, Any] | None) -> dict[str, Any]:
    properties = {"key": _KEY_SCHEMA} | ({"value": value} if value else {})
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def filter_schema(child: dict[str, Any] | None) -> dict[str, Any]:
    """The JSON Schema of one filter whose nested filters (under ``and``, ``or`` and
    ``not``) match ``child``; with no ``child``, a filter without those operators (the
    deepest level). The OpenAPI document passes a reference to the filter itself; API
    Gateway's models, which must not recurse, one per level (``stacks/request_models.py``).
    """
    bound = {
        "anyOf": [
            {"type": "number"},
            {"type": "string", "pattern": DATE_PATTERN, "description": "An ISO 8601 date."},
        ]
    }
    values = {"type": "array", "items": _SCALAR, "minItems": 1, "maxItems": MAX_VALUES}
    branches = [
        *(_operator(op, _leaf(_SCALAR), f"{op}: equal" if op == "eq" else "ne: not equal")
          for op in COMPARISONS),
        *(_operator(op, _leaf(values), f"{op}: one of the values" if op == "in"
                    else "nin: none of the values") for op in MEMBERSHIPS),
        *(_operator(op, _leaf(bound), f"{op}: a range on a number or an ISO date")
          for op in RANGES),
        _operator("exists", _leaf(None), "exists: the attribute is set"),
    ]  # fmt: skip
    if child is not None:
        branches += [
            *(_operator(op, {"type": "array", "items": child, "minItems": 1},
                        f"{op}: {'all' if op == 'and' else 'any'} of the filters")
              for op in COMBINATIONS),
            _operator("not", child, "not: the complement of the filter"),
        ]  # fmt: skip
    return {
        "anyOf": branches,
        "description": "Selects documents by their attributes (S3 user metadata, "
        f"tags and sidecar): one operator of {_known()}. At most {MAX_NODES} "
        f"operators, nested at most {MAX_DEPTH} deep.",
    }


def openapi_schemas() -> dict[str, dict[str, Any]]:
    """The components that describe a filter (``MetadataFilter`` is the root), for the
    OpenAPI document: JSON Schema cannot bound nesting, so depth and size limits are
    only in the descriptions."""
    return {"MetadataFilter": filter_schema({"$ref": _REF.format("MetadataFilter")})}
