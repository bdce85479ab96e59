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


def _provider(
    module: str, cls: str, *, needs_model: bool = True
) -> Callable[[str, Settings], Embedder]:
    def build(model: str, settings: Settings) -> Embedder:
        if needs_model and not model:
            raise ConfigurationError(
                f"embeddings provider {module!r} needs a model: {module}:MODEL"
            )
        provider: type[Embedder] = getattr(
            importlib.import_module(f"ragline.embeddings.{module}"), cls
        )
        return provider.from_settings(model, settings)

    return build


# provider name -> factory(model, settings), which builds the provider class through its
# Embedder.from_settings. Each provider's module (and SDK) is imported only when chosen.
PROVIDERS: dict[str, Callable[[str, Settings], Embedder]] = {
    "hash": _provider("hash", "HashEmbedder", needs_model=False),
    "minilm": _provider("minilm", "MiniLMEmbedder", needs_model=False),
    "minilm-onnx": _provider("minilm_onnx", "MiniLMOnnxEmbedder", needs_model=False),
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
