"""MiniLM embeddings for real: the bundled all-MiniLM-L6-v2 on the CPU, offline."""

from __future__ import annotations

import numpy as np
import pytest
from ragline.answer import Answerer
from ragline.config import Settings
from ragline.embeddings import create_embedder
from ragline.ingest import Ingestor

DOCS = {
    "s3://docs/leave.md": b"# Leave\n\nStaff are entitled to twenty-five days of annual holiday.",
    "s3://docs/parking.md": b"# Parking\n\nThe car park beneath the office shuts at midnight.",
    "s3://docs/laptops.md": b"# Equipment\n\nEvery engineer receives a laptop on the first day.",
}

# Loading torch and the model takes about half a minute: not part of `make check`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, embeddings="minilm", default_collection="minilm")


def test_sentence_vectors_know_synonyms(settings: Settings) -> None:
    embedder = create_embedder("minilm", settings)
    assert (embedder.name, embedder.dimensions) == ("minilm", 384)
    result = embedder.embed_documents(
        ["vacation allowance", "annual holiday entitlement", "garage opening hours"]
    )
    vectors = result.vectors
    assert vectors.shape == (3, 384) and result.tokens > 0
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    # no shared word, yet "vacation" is closer to "holiday" than to "garage"
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2]) + 0.2


def test_paraphrased_question_retrieves_the_right_document(settings: Settings) -> None:
    ingestor = Ingestor.from_settings(settings)
    for source, data in DOCS.items():
        assert ingestor.ingest_bytes(source, data).status == "ingested"
    answerer = Answerer.from_settings(settings)
    results = answerer.retrieve("How much vacation do employees get?", mode="vector", top_k=1)
    assert results.results[0].source == "s3://docs/leave.md"
    results = answerer.retrieve("When does the garage close?", mode="vector", top_k=1)
    assert results.results[0].source == "s3://docs/parking.md"
