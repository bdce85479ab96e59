"""Embeddings behind one interface, chosen by a ``provider[:model]`` string.

Only the chosen provider's module (and SDK) is imported, to keep cold starts short.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from ragline.embeddings.base import Embedder, EmbeddingResult, normalize
from ragline.errors import ConfigurationError

if TYPE_CHECKING:
    from ragline.config import Settings

__all__ = ["Embedder", "EmbeddingResult", "create_embedder", "get_embedder", "normalize"]


def _hash(model: str, settings: Settings) -> Embedder:
    from ragline.embeddings.hash import HashEmbedder

    dimensions = int(model) if model else settings.embedding_dimensions
    return HashEmbedder(dimensions)


def _minilm(model: str, settings: Settings) -> Embedder:
    from ragline.embeddings.minilm import MiniLMEmbedder

    return MiniLMEmbedder()


def _provider(module: str, cls: str) -> Callable[[str, Settings], Embedder]:
    def build(model: str, settings: Settings) -> Embedder:
        if not model:
            raise ConfigurationError(
                f"embeddings provider {module!r} needs a model: {module}:MODEL"
            )
        provider = getattr(importlib.import_module(f"ragline.embeddings.{module}"), cls)
        return provider.from_settings(model, settings)

    return build


# provider name -> factory(model, settings). Providers other than hash/minilm live in
# their own modules and are imported only when chosen.
PROVIDERS: dict[str, Callable[[str, Settings], Embedder]] = {
    "hash": _hash,
    "minilm": _minilm,
    "openai": _provider("openai", "OpenAIEmbedder"),
    "bedrock": _provider("bedrock", "BedrockEmbedder"),
    "sagemaker": _provider("sagemaker", "SageMakerEmbedder"),
}


def create_embedder(spec: str, settings: Settings) -> Embedder:
    """Build the embedder named by ``spec`` (``provider`` or ``provider:model``)."""
    provider, _, model = spec.partition(":")
    if provider not in PROVIDERS:
        raise ConfigurationError(
            f"unknown embeddings provider {provider!r} in RAGLINE_EMBEDDINGS={spec!r}; "
            f"known: {', '.join(sorted(PROVIDERS))}"
        )
    return PROVIDERS[provider](model, settings)


@lru_cache(maxsize=4)
def get_embedder(settings: Settings) -> Embedder:
    """The process's embedder for these settings, created once and reused."""
    return create_embedder(settings.embeddings, settings)
