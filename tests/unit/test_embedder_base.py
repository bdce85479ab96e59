"""The Embedder base class: batching within a provider's limits, usage summed over the
batches, unit vectors, and the vector size learned once when not declared."""

from __future__ import annotations

import numpy as np
import pytest
from ragline.embeddings import Embedder, EmbeddingResult
from ragline.embeddings.base import batches
from ragline.errors import ModelError


class RecordingEmbedder(Embedder):
    """Returns ``size``-long vectors of 3s (2s for an estimated count) and records batches."""

    name = "fake:recording"

    def __init__(self, size: int = 4, *, declared: int | None = None) -> None:
        super().__init__(declared)
        self.size = size
        self.calls: list[list[str]] = []

    def embed_batch(self, texts: list[str]) -> EmbeddingResult:
        self.calls.append(texts)
        estimated = any("estimate" in text for text in texts)
        vectors = np.full((len(texts), self.size), 2.0 if estimated else 3.0, np.float32)
        return EmbeddingResult(vectors, 10 * len(texts), estimated)


def test_texts_go_in_batches_and_the_usage_is_summed() -> None:
    # GIVEN a provider taking at most two texts a request
    embedder = RecordingEmbedder(declared=4)
    embedder.batch_size = 2
    texts = ["a", "b", "c", "d", "estimate e"]
    # WHEN five texts are embedded
    result = embedder.embed_documents(texts)
    # THEN three requests carried them in order, and the result covers them all
    assert embedder.calls == [["a", "b"], ["c", "d"], ["estimate e"]]
    assert result.vectors.shape == (5, 4) and result.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, rtol=1e-6)
    # AND the tokens add up, estimated because one batch was
    assert result.tokens == 50 and result.estimated_tokens


def test_without_limits_one_request_carries_everything() -> None:
    embedder = RecordingEmbedder(declared=4)
    embedder.embed_documents([f"text {i}" for i in range(100)])
    assert [len(batch) for batch in embedder.calls] == [100]


def test_an_undeclared_size_is_learned_from_the_first_call() -> None:
    # GIVEN a provider that does not know its vector size
    embedder = RecordingEmbedder(size=6)
    # WHEN texts are embedded first
    embedder.embed_documents(["a"])
    # THEN the size is the model's, learned without an extra request
    assert embedder.dimensions == 6 and len(embedder.calls) == 1
    # AND asking for the size first costs one probe, once
    fresh = RecordingEmbedder(size=6)
    assert fresh.dimensions == 6 and fresh.dimensions == 6 and len(fresh.calls) == 1


def test_vectors_of_another_size_than_declared_are_an_error() -> None:
    embedder = RecordingEmbedder(size=5, declared=4)
    with pytest.raises(ModelError, match="5-dimensional vectors, expected 4"):
        embedder.embed_documents(["a"])


def test_no_texts_make_no_request() -> None:
    embedder = RecordingEmbedder(declared=4)
    result = embedder.embed_documents([])
    assert result.vectors.shape == (0, 4) and result.tokens == 0 and embedder.calls == []


def test_the_token_limit_keeps_a_margin_for_the_estimate() -> None:
    # GIVEN texts of 100 estimated tokens and a limit of 500 tokens a request
    text = "tok " * 100
    # THEN a request carries four of them (400 of the 80% budget), not five
    assert [len(b) for b in batches([text] * 9, max_tokens=500)] == [4, 4, 1]
    assert [len(b) for b in batches([text] * 9, max_inputs=3, max_tokens=500)] == [3, 3, 3]
