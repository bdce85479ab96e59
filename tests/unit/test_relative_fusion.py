"""Relative score fusion: each list's scores scaled to 0..1, weighted and summed."""

from __future__ import annotations

import uuid

import pytest
from ragline.retrieval import relative_score_fusion
from ragline.store import RetrievedChunk

DOC = uuid.uuid4()


def _chunk(chunk_id: int, score: float, similarity: float | None = None) -> RetrievedChunk:
    return RetrievedChunk(chunk_id, DOC, "s3://b/k", "T", "", f"text {chunk_id}", 3, score,
                          similarity)  # fmt: skip


def _vector(*pairs: tuple[int, float]) -> list[RetrievedChunk]:
    return [_chunk(cid, cosine, cosine) for cid, cosine in pairs]


def _keyword(*pairs: tuple[int, float]) -> list[RetrievedChunk]:
    return [_chunk(cid, bm25) for cid, bm25 in pairs]


def test_scores_are_scaled_per_list_weighted_and_summed() -> None:
    # GIVEN cosine 0.9 / 0.6 / 0.3 and BM25 12 / 8 / 4, sharing chunk 2
    vector = _vector((1, 0.9), (2, 0.6), (3, 0.3))
    keyword = _keyword((2, 12.0), (4, 8.0), (5, 4.0))
    # WHEN fused with the vector list weighted 0.6
    fused = relative_score_fusion(vector, keyword, vector_weight=0.6)
    # THEN each chunk scores 0.6 x its scaled cosine + 0.4 x its scaled BM25 (0 where absent)
    scores = {c.chunk_id: c.score for c in fused}
    assert scores == pytest.approx({1: 0.6, 2: 0.6 * 0.5 + 0.4, 3: 0.0, 4: 0.4 * 0.5, 5: 0.0})
    assert [c.chunk_id for c in fused] == [2, 1, 4, 3, 5]  # ties keep first appearance
    # AND cosine similarity is carried where the vector list knew it
    assert {c.chunk_id: c.similarity for c in fused} == {1: 0.9, 2: 0.6, 3: 0.3, 4: None, 5: None}


@pytest.mark.parametrize(("weight", "expected"), [(1.0, [1, 2]), (0.0, [3, 4])])
def test_the_weight_spans_one_list_to_the_other(weight: float, expected: list[int]) -> None:
    vector = _vector((1, 0.9), (2, 0.5), (3, 0.2))
    keyword = _keyword((3, 9.0), (4, 6.0), (2, 1.0))
    fused = relative_score_fusion(vector, keyword, vector_weight=weight, limit=2)
    assert [c.chunk_id for c in fused] == expected


def test_one_empty_list_and_equal_scores() -> None:
    # a query with no keyword match, and a list whose scores are all equal
    assert [c.chunk_id for c in relative_score_fusion(_vector((1, 0.5), (2, 0.4)), [])] == [1, 2]
    fused = relative_score_fusion([], _keyword((7, 3.0), (8, 3.0)), vector_weight=0.5)
    assert [(c.chunk_id, c.score) for c in fused] == [(7, 0.5), (8, 0.5)]
    assert relative_score_fusion([], []) == []


class _Lists:
    """A store that returns fixed vector and keyword lists (the fusion is under test)."""

    def __init__(self, vector: list[RetrievedChunk], keyword: list[RetrievedChunk]) -> None:
        self.vector, self.keyword = vector, keyword

    def collection_model(self, name: str) -> tuple[str, int]:
        return ("hash", 384)

    def ensure_collection(self, name: str, model: str, dimensions: int) -> None:
        pass

    def vector_search(self, *args: object, **kwargs: object) -> list[RetrievedChunk]:
        return self.vector

    def keyword_search(self, *args: object, **kwargs: object) -> list[RetrievedChunk]:
        return self.keyword

    def select(self, *args: object) -> None:
        return None  # every chunk of the collection

    def similarities(self, ids: list[int], vector: object) -> dict[int, float]:
        return {}


@pytest.mark.parametrize(("embedder", "winner"), [("hash", 3), ("minilm-like", 1)])
def test_hybrid_weighs_each_embedder_as_calibrated(embedder: str, winner: int) -> None:
    from ragline.embeddings.hash import HashEmbedder
    from ragline.retrieval import Retriever

    # GIVEN vector and keyword lists that disagree on the best chunk
    store = _Lists(_vector((1, 0.9), (2, 0.5), (3, 0.45)), _keyword((3, 9.0), (2, 5.0), (1, 1.0)))
    model = HashEmbedder()
    if embedder != "hash":  # an embedder with the base class's weight, as MiniLM has
        model.fusion_weight = type(model).__mro__[1].fusion_weight  # type: ignore[attr-defined]
    # WHEN hybrid search fuses them with no weight configured
    found = Retriever(store, model).search("q", collection="c", top_k=1)  # type: ignore[arg-type]
    # THEN the hash embedder leans on keywords (0.3), a real embedder on its vectors (0.6)
    assert [c.chunk_id for c in found.chunks] == [winner]
