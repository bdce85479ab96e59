"""Reciprocal Rank Fusion of vector and keyword rankings."""

from __future__ import annotations

import uuid

import pytest
from ragline.retrieval import RRF_K, reciprocal_rank_fusion
from ragline.store import RetrievedChunk

DOC = uuid.uuid4()


def _chunk(chunk_id: int, similarity: float | None = None) -> RetrievedChunk:
    return RetrievedChunk(
        chunk_id, DOC, "s3://b/k", "T", "", f"text {chunk_id}", 3, 0.0, similarity
    )


def test_items_in_both_lists_rise_to_the_top() -> None:
    # GIVEN a vector ranking and a keyword ranking sharing chunk 3
    vector = [_chunk(1, 0.9), _chunk(2, 0.8), _chunk(3, 0.7)]
    keyword = [_chunk(3), _chunk(4)]
    # WHEN fused
    fused = reciprocal_rank_fusion([vector, keyword])
    # THEN chunk 3 scores 1/(k+3) + 1/(k+1) and leads; the rest follow by their one rank
    assert [c.chunk_id for c in fused] == [3, 1, 2, 4]
    assert fused[0].score == pytest.approx(1 / (RRF_K + 3) + 1 / (RRF_K + 1), abs=1e-6)
    assert fused[1].score == pytest.approx(1 / (RRF_K + 1), abs=1e-6)
    # and keeps the similarity the vector list knew
    assert fused[0].similarity == 0.7
    assert fused[3].similarity is None


def test_ties_keep_first_appearance_and_limit_applies() -> None:
    fused = reciprocal_rank_fusion([[_chunk(1)], [_chunk(2)]], limit=1)
    assert [c.chunk_id for c in fused] == [1]


def test_empty_rankings() -> None:
    assert reciprocal_rank_fusion([[], []]) == []
