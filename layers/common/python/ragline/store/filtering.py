"""Metadata filters compiled to SQL over ``documents.metadata -> 'attributes'``.

Every key and value is a bound parameter: keys reach SQL only as ``-> %s`` or inside a
JSON parameter, never as text of the statement. The positive operators keep the shapes
the GIN index (migration 0005) serves: ``@>`` for eq and in.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from psycopg import sql
from psycopg.types.json import Jsonb

from ragline.filters import Combine, Compare, Exists, Member, Not, Range

if TYPE_CHECKING:
    from ragline.filters import Filter, Scalar

ATTRIBUTES = sql.SQL("(d.metadata -> 'attributes')")
_RANGE_OPERATORS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def compile_filter(node: Filter) -> tuple[sql.Composable, list[Any]]:
    """A boolean SQL expression over documents ``d`` with ``%s`` placeholders, and its
    parameters in order."""
    params: list[Any] = []
    return _compile(node, params), params


def _compile(node: Filter, params: list[Any]) -> sql.Composable:
    if isinstance(node, Compare):
        equal = _equals(node.key, [node.value], params)
        return equal if node.op == "eq" else _negate(equal)
    if isinstance(node, Member):
        member = _equals(node.key, list(node.values), params)
        return member if node.op == "in" else _negate(member)
    if isinstance(node, Range):
        operator = sql.SQL(_RANGE_OPERATORS[node.op])
        if isinstance(node.value, int | float):
            params.extend([node.key, Decimal(repr(node.value))])
            template = "ragline_number({a} -> %s) {op} %s::numeric"
        else:
            params.extend([node.key, node.value])
            template = "ragline_moment({a} -> %s) {op} %s::timestamptz"
        return sql.SQL(template).format(a=ATTRIBUTES, op=operator)
    if isinstance(node, Exists):
        params.append(node.key)
        return sql.SQL("{a} ? %s").format(a=ATTRIBUTES)
    if isinstance(node, Combine):
        joiner = sql.SQL(" AND " if node.op == "and" else " OR ")
        return sql.SQL("({})").format(joiner.join(_compile(part, params) for part in node.parts))
    if isinstance(node, Not):
        return _negate(_compile(node.part, params))
    raise TypeError(f"not a filter: {node!r}")


def _equals(key: str, values: list[Scalar], params: list[Any]) -> sql.Composable:
    """The attribute equals one of ``values``, or is a list holding one: containment, so
    the GIN index answers it."""
    tests = []
    for value in values:
        params.extend([Jsonb({key: value}), Jsonb({key: [value]})])
        # ::jsonb: the Data API sends a JSON-hinted value as json, which @> does not take.
        tests.append(sql.SQL("{a} @> %s::jsonb OR {a} @> %s::jsonb").format(a=ATTRIBUTES))
    return sql.SQL("({})").format(sql.SQL(" OR ").join(tests))


def _negate(expression: sql.Composable) -> sql.Composable:
    # A test on a missing attribute is NULL; its complement must be true, not NULL.
    return sql.SQL("NOT coalesce({}, false)").format(expression)
