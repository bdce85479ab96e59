"""The hashing embedder: deterministic, normalized, and close for texts sharing words."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from ragline.config import Settings
from ragline.embeddings import create_embedder
from ragline.embeddings.hash import HashEmbedder
from ragline.errors import ConfigurationError


def test_vectors_are_unit_length_and_deterministic() -> None:
    embedder = HashEmbedder()
    first = embedder.embed_documents(["The cat sat on the mat.", "Stock prices fell."])
    second = embedder.embed_documents(["The cat sat on the mat.", "Stock prices fell."])
    assert first.vectors.shape == (2, 384)
    assert first.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first.vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(first.vectors, second.vectors)
    assert first.tokens > 0


def test_same_across_processes() -> None:
    # Python's own hash() is salted per process; the embedder must not depend on it.
    code = (
        "from ragline.embeddings.hash import HashEmbedder;"
        "print(HashEmbedder().embed_documents(['vacation days policy']).vectors[0][:8].tolist())"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    }
    here = str(HashEmbedder().embed_documents(["vacation days policy"]).vectors[0][:8].tolist())
    assert runs == {here + "\n"}


def test_shared_words_mean_closer_vectors() -> None:
    embedder = HashEmbedder()
    query = embedder.embed_query("how many vacation days").vectors[0]
    related, unrelated = embedder.embed_documents(
        ["Employees get 25 vacation days a year.", "The parking garage closes at midnight."]
    ).vectors
    assert float(query @ related) > float(query @ unrelated) + 0.1


def test_registry_builds_by_name_and_rejects_unknown() -> None:
    assert create_embedder("hash:128", Settings()).dimensions == 128
    assert create_embedder("hash", Settings(embedding_dimensions=64)).dimensions == 64
    with pytest.raises(ConfigurationError, match="known: bedrock, hash, minilm"):
        create_embedder("word2vec", Settings())
