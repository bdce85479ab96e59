"""Deterministic feature-hashing embeddings: no model, no dependencies, for tests and demos.

Words and word pairs are hashed (CRC-32, stable across processes and machines) into a
fixed number of signed buckets, weighted by sublinear term frequency, and normalized.
Texts that share words are close; there is no notion of synonyms.
"""

from __future__ import annotations

import itertools
import math
import re
import zlib
from collections import Counter
from functools import lru_cache
from typing import TYPE_CHECKING

from ragline.embeddings.base import Embedder, EmbeddingResult
from ragline.tokens import count_tokens

if TYPE_CHECKING:
    from ragline.config import Settings

_WORDS = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)*")
DEFAULT_DIMENSIONS = 384


@lru_cache(maxsize=200_000)
def _bucket(feature: str, dimensions: int) -> tuple[int, float]:
    digest = zlib.crc32(feature.encode("utf-8"))
    return digest % dimensions, (1.0 if digest & 0x80000000 else -1.0)


def _features(text: str) -> Counter[str]:
    words = _WORDS.findall(text.lower())
    features: Counter[str] = Counter()
    for word in words:
        features[word] += 1
        if "." in word:  # dotted names also count as their parts: os.path -> os, path
            features.update(word.split("."))
    features.update(f"{a} {b}" for a, b in itertools.pairwise(words))
    return features


class HashEmbedder(Embedder):
    """Signed feature hashing of words and word bigrams."""

    # It knows no synonyms, so BM25 ranks better than it does: lean on keywords when
    # fusing (0.3 on the Python docs set; checked on git's manual).
    fusion_weight = 0.3

    def __init__(self, dimensions: int | None = None) -> None:
        super().__init__(dimensions or DEFAULT_DIMENSIONS)
        self.name = "hash" if self.dimensions == DEFAULT_DIMENSIONS else f"hash:{self.dimensions}"

    @classmethod
    def from_settings(cls, model: str, settings: Settings) -> HashEmbedder:
        """``hash`` or ``hash:<dimensions>``; without a size, RAGLINE_EMBEDDING_DIMENSIONS."""
        return cls(int(model) if model else settings.embedding_dimensions)

    def embed_batch(self, texts: list[str]) -> EmbeddingResult:
        import numpy as np  # here, not at import: see embeddings/base.py

        vectors = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature, count in _features(text).items():
                index, sign = _bucket(feature, self.dimensions)
                vectors[row, index] += sign * (1.0 + math.log(count))
        return EmbeddingResult(vectors, sum(count_tokens(text) for text in texts))
