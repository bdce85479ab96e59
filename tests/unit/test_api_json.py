"""Nothing invalid leaves the API: NaN is not JSON (issue 9, item 1)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from ragline.api import error_response, to_json
from ragline.schemas import RetrievedItem


def test_the_response_serializer_refuses_nan() -> None:
    # GIVEN a body with a score that is not a number
    # WHEN it is serialized for the wire THEN it is refused rather than sent as `NaN`
    with pytest.raises(ValueError, match="Out of range float"):
        to_json({"score": float("nan")})
    assert to_json({"score": 0.5}) == '{"score":0.5}'


def test_a_retrieved_item_refuses_a_nan_score() -> None:
    # GIVEN a search result scored NaN (a zero vector's cosine distance)
    # WHEN it becomes part of a response THEN it fails where it is made, not in a client
    with pytest.raises(ValidationError, match="finite number"):
        RetrievedItem(
            chunk_id=1, document_id="d", source="s3://b/k", title=None, section="",
            text="t", score=float("nan"), similarity=None,
        )  # fmt: skip


def test_error_bodies_are_json_with_the_message_and_status() -> None:
    response = error_response(400, "invalid request: top_k must be at most 50")
    assert (
        response.body == '{"message":"invalid request: top_k must be at most 50","statusCode":400}'
    )
