"""Rerankers behind one interface, chosen by ``RAGLINE_RERANKER`` (``none`` by default).

Only the chosen provider's module (and SDK) is imported, to keep cold starts short.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from ragline.errors import ConfigurationError
from ragline.rerankers.base import Ranked, Reranker, RerankResult, billed_queries

if TYPE_CHECKING:
    from ragline.config import Settings

__all__ = [
    "OFF",
    "PROVIDERS",
    "Ranked",
    "RerankResult",
    "Reranker",
    "billed_queries",
    "create_reranker",
    "get_reranker",
]

# The value of RAGLINE_RERANKER that switches reranking off (the default).
OFF = "none"


def _provider(module: str, cls: str) -> Callable[[str, Settings], Reranker]:
    def build(model: str, settings: Settings) -> Reranker:
        if not model:
            raise ConfigurationError(f"reranker provider {module!r} needs a model: {module}:MODEL")
        provider: type[Reranker] = getattr(
            importlib.import_module(f"ragline.rerankers.{module}"), cls
        )
        return provider.from_settings(model, settings)

    return build


# provider name -> factory(model, settings), which builds the provider class through its
# Reranker.from_settings. Each provider's module (and SDK) is imported only when chosen.
PROVIDERS: dict[str, Callable[[str, Settings], Reranker]] = {
    "bedrock": _provider("bedrock", "BedrockReranker"),
    "http": _provider("http", "HttpReranker"),
    "sagemaker": _provider("sagemaker", "SageMakerReranker"),
}


def create_reranker(spec: str, settings: Settings) -> Reranker | None:
    """Build the reranker named by ``spec`` (``provider:model``); None for ``none``."""
    provider, _, model = spec.strip().partition(":")
    if provider == OFF and not model:
        return None
    if provider not in PROVIDERS:
        raise ConfigurationError(
            f"unknown reranker provider {provider!r} in RAGLINE_RERANKER={spec!r}; "
            f"known: {', '.join([OFF, *sorted(PROVIDERS)])}"
        )
    return PROVIDERS[provider](model.strip(), settings)


@lru_cache(maxsize=4)
def get_reranker(settings: Settings) -> Reranker | None:
    """The process's reranker for these settings (None when off), created once."""
    return create_reranker(settings.reranker, settings)
