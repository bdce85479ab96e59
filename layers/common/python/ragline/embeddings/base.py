"""The embeddings interface: texts in, unit vectors and token usage out.

A provider implements :meth:`Embedder.embed_batch`, one request's worth of texts, and
declares its request limits (``batch_size``, ``batch_tokens``). The base class does the
rest the same way for every provider: it cuts the input into batches within those
limits, normalizes the vectors, adds up the usage of every batch, and learns the vector
size from the model when the provider cannot declare it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

from ragline.errors import ModelError
from ragline.tokens import count_tokens

if TYPE_CHECKING:
    import numpy as np

    from ragline.config import Settings

# The token estimate is not the model's tokenizer: keep a margin under a provider's limit.
_TOKEN_BUDGET_SHARE = 0.8
# What is embedded to learn the vector size when it is asked before any other call.
_DIMENSIONS_PROBE = "dimensions"


@dataclass(frozen=True)
class EmbeddingResult:
    """Vectors as a float32 array of shape (len(texts), dimensions), and tokens billed.

    ``seconds`` is how long the calls held an endpoint billed by the hour (a SageMaker
    instance); 0 for providers billed by the token.
    """

    vectors: np.ndarray
    tokens: int
    estimated_tokens: bool = False
    seconds: float = 0.0


def batches(
    texts: Sequence[str], *, max_inputs: int | None = None, max_tokens: int | None = None
) -> Iterator[list[str]]:
    """Consecutive groups of texts, each within both limits (``None``: no limit).

    ``max_tokens`` is a provider's limit on the tokens of one request; groups stay a
    margin under it, as the count is an estimate. A single text over it still goes alone
    (the provider will judge it).
    """
    budget = int(max_tokens * _TOKEN_BUDGET_SHARE) if max_tokens else None
    batch: list[str] = []
    tokens = 0
    for text in texts:
        size = count_tokens(text) if budget is not None else 0
        full = len(batch) == max_inputs or (budget is not None and tokens + size > budget)
        if batch and full:
            yield batch
            batch, tokens = [], 0
        batch.append(text)
        tokens += size
    if batch:
        yield batch


class Embedder(ABC):
    """One embedding model. Providers implement :meth:`embed_batch` and :meth:`from_settings`.

    ``name`` is the ``provider:model`` string the store records with each collection, so
    vectors from two different models are never compared. ``dimensions`` is given to
    ``__init__`` when the provider knows it; otherwise the first call tells it.
    """

    name: str
    # The most texts, and the most (estimated) tokens, one embed_batch call may carry:
    # the provider's request limits. None means no limit.
    batch_size: int | None = None
    batch_tokens: int | None = None
    # The longest input (in estimated tokens) the model reads whole; chunks are cut to fit.
    max_input_tokens: int | None = None
    # How much hybrid search trusts this embedder's list against BM25's when it fuses
    # them by relative score (RAGLINE_FUSION_VECTOR_WEIGHT overrides it). 0.6 was
    # calibrated with MiniLM on the Python docs evaluation set and checked on git's manual.
    fusion_weight: float = 0.6
    _dimensions: int | None = None

    def __init__(self, dimensions: int | None = None) -> None:
        self._dimensions = dimensions

    @classmethod
    def from_settings(cls, model: str, settings: Settings) -> Self:
        """The embedder ``<provider>:<model>`` as configured; the registry builds it so.

        ``model`` is the part of ``RAGLINE_EMBEDDINGS`` after the colon (may be empty).
        """
        raise NotImplementedError(f"{cls.__name__} cannot be built from settings")

    @abstractmethod
    def embed_batch(self, texts: list[str]) -> EmbeddingResult:
        """Embed one batch (within ``batch_size`` and ``batch_tokens``) in one request.

        The vectors need not be normalized. The tokens are the provider's count, or an
        estimate with ``estimated_tokens`` set. Raise ragline.errors.ModelError on failure.
        """

    @property
    def dimensions(self) -> int:
        """The vector size: declared by the provider, or learned from the model once."""
        if self._dimensions is None:
            return self._learn_dimensions(self.embed_batch([_DIMENSIONS_PROBE]).vectors)
        return self._dimensions

    def embed_documents(self, texts: Sequence[str]) -> EmbeddingResult:
        """Embed passages for storage: one unit vector per text, and the usage of all."""
        # numpy on first use, not at import: it is about 90 ms of a query function's cold
        # start, and the first question embeds anyway
        import numpy as np

        parts: list[np.ndarray] = []
        tokens, estimated, seconds = 0, False, 0.0
        for batch in batches(texts, max_inputs=self.batch_size, max_tokens=self.batch_tokens):
            result = self.embed_batch(batch)
            self._learn_dimensions(result.vectors)
            parts.append(result.vectors)
            tokens += result.tokens
            estimated = estimated or result.estimated_tokens
            seconds += result.seconds
        if not parts:
            return EmbeddingResult(np.zeros((0, self.dimensions), np.float32), 0)
        return EmbeddingResult(normalize(np.vstack(parts)), tokens, estimated, seconds)

    def embed_query(self, text: str) -> EmbeddingResult:
        """Embed a search query. Models with query instructions override this."""
        return self.embed_documents([text])

    def _learn_dimensions(self, vectors: np.ndarray) -> int:
        """Take the size of the first vectors the model returns; hold later ones to it."""
        size = int(vectors.shape[1])
        if self._dimensions is None:
            self._dimensions = size
        elif size != self._dimensions:
            raise ModelError(
                f"{self.name} returned {size}-dimensional vectors, "
                f"expected {self._dimensions} (RAGLINE_EMBEDDING_DIMENSIONS)"
            )
        return size


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Scale rows to unit length (cosine distance then equals 1 - dot product)."""
    import numpy as np

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (vectors / norms).astype(np.float32)
