"""The metadata filter grammar, and sidecar parsing and precedence (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from ragline.api import validation_message
from ragline.filters import (
    MAX_DEPTH,
    MAX_NODES,
    Combine,
    Compare,
    Exists,
    Member,
    Not,
    Range,
    parse_filter,
)
from ragline.ingest.attributes import SidecarError, merge_attributes, parse_sidecar
from ragline.schemas import QueryRequest, RetrieveRequest


@pytest.mark.parametrize(
    ("spelled", "parsed"),
    [
        ({"eq": {"key": "team", "value": "search"}}, Compare("eq", "team", "search")),
        ({"ne": {"key": "draft", "value": True}}, Compare("ne", "draft", True)),
        ({"in": {"key": "year", "value": [2023, 2024]}}, Member("in", "year", (2023, 2024))),
        ({"nin": {"key": "team", "value": ["ads"]}}, Member("nin", "team", ("ads",))),
        ({"gt": {"key": "year", "value": 2023}}, Range("gt", "year", 2023)),
        ({"gte": {"key": "score", "value": 0.5}}, Range("gte", "score", 0.5)),
        (
            {"lt": {"key": "published", "value": "2024-05-01"}},
            Range("lt", "published", datetime(2024, 5, 1, tzinfo=UTC)),
        ),
        (
            {"lte": {"key": "at", "value": "2024-05-01T09:30:00+02:00"}},
            Range("lte", "at", datetime.fromisoformat("2024-05-01T09:30:00+02:00")),
        ),
        ({"exists": {"key": "s3:region"}}, Exists("s3:region")),
        (
            {"and": [{"exists": {"key": "a"}}, {"not": {"exists": {"key": "b"}}}]},
            Combine("and", (Exists("a"), Not(Exists("b")))),
        ),
        (
            {"or": [{"eq": {"key": "a", "value": 1}}, {"eq": {"key": "a", "value": 2}}]},
            Combine("or", (Compare("eq", "a", 1), Compare("eq", "a", 2))),
        ),
    ],
)
def test_every_operator_parses(spelled: dict[str, Any], parsed: Any) -> None:
    # GIVEN a filter spelled in JSON WHEN parsed THEN it is the expected tree
    assert parse_filter(spelled) == parsed


def _error(value: Any) -> str:
    try:
        RetrieveRequest.model_validate({"query": "q", "filter": value})
    except ValidationError as exc:
        return validation_message(exc.errors())
    raise AssertionError("the filter was accepted")


@pytest.mark.parametrize(
    ("spelled", "message"),
    [
        (
            {"and": [{"eq": {"key": "team", "value": "a"}}, {"gte": {"key": "y", "value": [1]}}]},
            "filter.and[1].gte.value: must be a number or an ISO date",
        ),
        ({"gt": {"key": "y", "value": "2024-02-30"}}, "filter.gt.value: must be a number"),
        ({"gt": {"key": "y", "value": True}}, "filter.gt.value: must be a number"),
        ({"equals": {"key": "a", "value": 1}}, "filter.equals: is not an operator"),
        ({"eq": {"key": "a", "value": 1}, "ne": {}}, "filter: must be an object with exactly"),
        ({"eq": {"key": "a"}}, "filter.eq.value: is required"),
        ({"eq": {"key": "a", "value": 1, "x": 2}}, "filter.eq.x: is not a known field"),
        ({"eq": {"key": "a", "value": {"b": 1}}}, "filter.eq.value: must be a string"),
        ({"eq": {"key": "a", "value": None}}, "filter.eq.value: must be a string"),
        ({"in": {"key": "a", "value": []}}, "filter.in.value: must be a list of 1 to 100"),
        ({"in": {"key": "a", "value": [1, [2]]}}, "filter.in.value[1]: must be a string"),
        ({"nin": {"key": "a", "value": "x"}}, "filter.nin.value: must be a list"),
        ({"exists": {"key": "a", "value": 1}}, "filter.exists.value: is not a known field"),
        ({"and": []}, "filter.and: must be a non-empty list"),
        ({"or": {"eq": {"key": "a", "value": 1}}}, "filter.or: must be a non-empty list"),
        ({"not": [{"exists": {"key": "a"}}]}, "filter.not: must be an object with exactly"),
        ({"eq": {"key": "team' OR '1'='1", "value": 1}}, "filter.eq.key: must be 1-128"),
        ({"exists": {"key": ""}}, "filter.exists.key: must be 1-128"),
        ({"exists": {"key": 5}}, "filter.exists.key: must be 1-128"),
        ({"eq": {"key": "a", "value": "x\u0000"}}, "filter.eq.value: strings are at most"),
        ("team = search", "filter: must be an object with exactly one operator"),
    ],
)
def test_invalid_filters_name_the_bad_part(spelled: Any, message: str) -> None:
    # GIVEN a request with a broken filter WHEN validated
    # THEN the message names where in the filter it is broken, and why
    assert message in _error(spelled)


def test_filters_are_bounded_in_depth_and_size() -> None:
    # GIVEN filters nested too deep, and too large
    deep: dict[str, Any] = {"exists": {"key": "a"}}
    for _ in range(MAX_DEPTH):
        deep = {"not": deep}
    wide = {"or": [{"exists": {"key": f"k{i}"}} for i in range(MAX_NODES)]}
    # THEN both are refused with the limit they pass
    assert f"filters nest at most {MAX_DEPTH} levels deep" in _error(deep)
    assert f"a filter holds at most {MAX_NODES} operators" in _error(wide)


def test_both_routes_accept_a_filter_and_none() -> None:
    where = {"eq": {"key": "team", "value": "search"}}
    query = QueryRequest.model_validate({"question": "q", "filter": where})
    assert query.filter == Compare("eq", "team", "search")
    assert RetrieveRequest.model_validate({"query": "q"}).filter is None
    assert RetrieveRequest.model_validate({"query": "q", "filter": None}).filter is None


def test_sidecar_values_and_shape() -> None:
    # GIVEN a sidecar with every kind of value allowed
    body = (
        b'{"metadataAttributes": {"team": "search", "year": 2024, "score": 0.5,'
        b' "draft": false, "published": "2024-05-01", "tags": ["a", 1, true]}}'
    )
    # THEN they are its attributes
    assert parse_sidecar(body)["tags"] == ["a", 1, True]
    # AND NaN, nested objects and oversized sidecars are refused with the reason
    with pytest.raises(SidecarError, match="not JSON"):
        parse_sidecar(b'{"metadataAttributes": {"x": NaN}}')
    with pytest.raises(SidecarError, match=r"metadataAttributes\.x: values are"):
        parse_sidecar(b'{"metadataAttributes": {"x": {"y": 1}}}')
    with pytest.raises(SidecarError, match="the limit is"):
        parse_sidecar(b" " * (64 * 1024 + 1))


def test_sidecar_wins_over_tags_which_win_over_user_metadata() -> None:
    merged = merge_attributes(
        {"team": "m", "only_metadata": "1", "collection": "hr"},
        {"team": "t", "only_tags": "2"},
        {"team": "s", "year": 2024},
    )
    assert merged == {"team": "s", "only_metadata": "1", "only_tags": "2", "year": 2024}
    # AND keys no filter could name are left out (a tag may hold a space)
    assert merge_attributes({}, {"bad key": "x"}, None) == {}


SAMPLES: list[Any] = [
    {"eq": {"key": "team", "value": "search"}},
    {"in": {"key": "year", "value": [2023, "2024", True]}},
    {"gte": {"key": "published", "value": "2024-05-01T09:30Z"}},
    {"gt": {"key": "published", "value": "2024-02-30"}},  # the schema's pattern, no such day
    {"and": [{"exists": {"key": "a"}}, {"not": {"exists": {"key": "b"}}}]},
    {"eq": {"key": "team", "value": "x" * 257}},
    {"eq": {"key": "bad key", "value": 1}},
    {"eq": {"key": "a", "value": None}},
    {"in": {"key": "a", "value": list(range(101))}},
    {"in": {"key": "a", "value": []}},
    {"exists": {"key": "a", "value": 1}},
    {"or": []},
    {"not": [{"exists": {"key": "a"}}]},
    {"equals": {"key": "a", "value": 1}},
    {"eq": {"key": "a", "value": 1}, "ne": {"key": "a", "value": 2}},
    {"lt": {"key": "a", "value": False}},
    [],
    "team",
]


@pytest.mark.parametrize("spelled", SAMPLES)
def test_what_the_openapi_schema_refuses_the_api_refuses(spelled: Any) -> None:
    # GIVEN the MetadataFilter schema the OpenAPI document serves
    from jsonschema import Draft202012Validator
    from ragline.filters import FilterError, openapi_schemas

    root = {"components": {"schemas": openapi_schemas()}}
    validator = Draft202012Validator({**root, "$ref": "#/components/schemas/MetadataFilter"})
    # WHEN a filter is checked by both
    schema_accepts = validator.is_valid(spelled)
    try:
        parse_filter(spelled)
        parser_accepts = True
    except FilterError:
        parser_accepts = False
    # THEN the API never serves a filter its document forbids (schemathesis's check), and
    # refuses more only where JSON Schema cannot say it (an impossible date, depth, size)
    assert parser_accepts <= schema_accepts
