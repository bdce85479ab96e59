"""Cost of a model call from the usage the provider reported.

Models that run in-process (the extractive model, the hash and MiniLM embedders) cost
nothing per call. Priced providers come with the price table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ragline.llm import Usage

FREE_PROVIDERS = frozenset({"extractive", "hash", "minilm"})


def cost_of(
    provider: str,
    model: str,
    usage: Usage,
    *,
    embedder: str | None = None,
    embedding_tokens: int = 0,
) -> float | None:
    """USD for one request's generation and query embedding; None when not priced."""
    embed_provider = (embedder or "hash").split(":")[0]
    if provider in FREE_PROVIDERS and (embed_provider in FREE_PROVIDERS or not embedding_tokens):
        return 0.0
    return None
