"""The embeddings interface: texts in, unit vectors and token usage out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EmbeddingResult:
    """Vectors as a float32 array of shape (len(texts), dimensions), and tokens billed."""

    vectors: np.ndarray
    tokens: int
    estimated_tokens: bool = False


class Embedder(ABC):
    """One embedding model. Subclasses implement :meth:`embed_documents`.

    ``name`` is the ``provider:model`` string the store records with each collection, so
    vectors from two different models are never compared.
    """

    name: str
    dimensions: int
    # The longest input (in estimated tokens) the model reads whole; chunks are cut to fit.
    max_input_tokens: int | None = None

    @abstractmethod
    def embed_documents(self, texts: Sequence[str]) -> EmbeddingResult:
        """Embed passages for storage."""

    def embed_query(self, text: str) -> EmbeddingResult:
        """Embed a search query. Models with query instructions override this."""
        return self.embed_documents([text])


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Scale rows to unit length (cosine distance then equals 1 - dot product)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (vectors / norms).astype(np.float32)
