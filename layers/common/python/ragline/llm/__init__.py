"""Language models behind one interface, resolved from ``provider:model`` strings.

Only the chosen provider's module (and SDK) is imported, to keep cold starts short.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from ragline.errors import ConfigurationError
from ragline.llm.base import (
    ChatModel,
    Completion,
    GenerationRequest,
    Passage,
    StreamInterruptedError,
    Usage,
)
from ragline.llm.chain import ModelChain, StreamProgress
from ragline.providers.retry import RetryPolicy

if TYPE_CHECKING:
    from ragline.config import Settings

__all__ = [
    "PROVIDERS",
    "ChatModel",
    "Completion",
    "GenerationRequest",
    "ModelChain",
    "Passage",
    "RetryPolicy",
    "StreamInterruptedError",
    "StreamProgress",
    "Usage",
    "create_model",
]


def _provider(
    module: str, cls: str, *, needs_model: bool = True
) -> Callable[[str, Settings], ChatModel]:
    def build(model: str, settings: Settings) -> ChatModel:
        if needs_model and not model:
            raise ConfigurationError(f"model provider {module!r} needs a model: {module}:MODEL")
        provider: type[ChatModel] = getattr(importlib.import_module(f"ragline.llm.{module}"), cls)
        return provider.from_settings(model, settings)

    return build


# provider name -> factory(model, settings), which builds the provider class through its
# ChatModel.from_settings. Each provider's module (and SDK) is imported only when chosen.
PROVIDERS: dict[str, Callable[[str, Settings], ChatModel]] = {
    "extractive": _provider("extractive", "ExtractiveModel", needs_model=False),
    "openai": _provider("openai", "OpenAIChatModel"),
    "sagemaker": _provider("sagemaker", "SageMakerChatModel"),
    "bedrock": _provider("bedrock", "BedrockChatModel"),
}


def create_model(spec: str, settings: Settings) -> ChatModel:
    """Build the model named by ``spec`` (``provider`` or ``provider:model``)."""
    provider, _, model = spec.strip().partition(":")
    if provider not in PROVIDERS:
        raise ConfigurationError(
            f"unknown model provider {provider!r} in {spec!r}; "
            f"known: {', '.join(sorted(PROVIDERS))}"
        )
    return PROVIDERS[provider](model, settings)
