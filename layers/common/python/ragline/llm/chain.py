"""The fallback chain: each model in turn, with retries, until one answers."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from functools import partial

from ragline.errors import (
    ModelError,
    ModelMisconfiguredError,
    ModelNotFoundError,
    ModelUnavailableError,
    ModelWarmingUpError,
)
from ragline.llm.base import ChatModel, Completion, GenerationRequest
from ragline.providers.retry import RetryPolicy

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelChain:
    """A primary model and its fallbacks (``RAGLINE_LLM_FALLBACK``), tried in order.

    A model is abandoned once its retries are spent (or at once on an error a retry
    cannot fix); the next one gets the same request. The completion's ``details`` say
    whether a fallback answered and which models failed first.
    """

    models: tuple[ChatModel, ...]
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("a model chain needs at least one model")

    @property
    def primary(self) -> ChatModel:
        return self.models[0]

    def generate(self, request: GenerationRequest) -> Completion:
        """The first answer any model gives; ModelUnavailableError when none does
        (ModelMisconfiguredError when no model exists at its provider)."""
        failures: list[tuple[str, str]] = []
        transient: list[bool] = []  # per failure: whether a later retry may succeed
        warming_up: ModelWarmingUpError | None = None
        missing = 0  # models their provider does not know
        for index, model in enumerate(self.models):
            try:
                completion, attempts = self.retry.run(
                    partial(model.generate, request), what=model.spec
                )
            except ModelError as exc:
                failures.append((model.spec, str(exc)))
                transient.append(exc.retryable)
                if isinstance(exc, ModelWarmingUpError):
                    warming_up = exc
                missing += isinstance(exc, ModelNotFoundError)
                logger.warning("model %s failed, %s: %s", model.spec,
                               "trying the next" if index + 1 < len(self.models) else "no more",
                               exc)  # fmt: skip
                continue
            details = {
                **completion.details,
                "attempts": attempts,
                "fallback": index > 0,
                "failed": [spec for spec, _ in failures],
            }
            return replace(completion, details=details)
        tried = ", ".join(spec for spec, _ in failures)
        if missing == len(self.models):
            reasons = "; ".join(reason for _, reason in failures)
            raise ModelMisconfiguredError(
                f"no configured model exists at its provider ({reasons}); retrying will not "
                "help: fix RAGLINE_LLM, RAGLINE_LLM_FALLBACK or the profile's llm. "
                "The passages retrieved for the question are in 'citations'.",
                failures=tuple(failures),
            )
        if warming_up is not None:
            raise ModelUnavailableError(
                "the model is warming up (it scales to zero when idle and is starting now); "
                f"retry in a few minutes (tried {tried}). "
                "The passages retrieved for the question are in 'citations'.",
                failures=tuple(failures),
                retry_after_seconds=warming_up.retry_after_seconds,
            )
        if not any(transient):
            # A model name the provider does not know (404), a key it refuses (401): a
            # retry gets the same answer, so say what to fix rather than "retry later".
            reasons = "; ".join(reason for _, reason in failures)
            raise ModelUnavailableError(
                f"no model could answer, and retrying will not help (tried {tried}): "
                f"{reasons}. Check the "
                "model names (RAGLINE_LLM, RAGLINE_LLM_FALLBACK) and the provider's "
                "credentials. The passages retrieved for the question are in 'citations'.",
                failures=tuple(failures),
            )
        raise ModelUnavailableError(
            f"no model could answer right now (tried {tried}); please retry later. "
            "The passages retrieved for the question are in 'citations'.",
            failures=tuple(failures),
        )
