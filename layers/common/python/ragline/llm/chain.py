"""The fallback chain: each model in turn, with retries, until one answers (whole or streamed)."""

from __future__ import annotations

import logging
from collections.abc import Generator
from dataclasses import dataclass, field, replace
from functools import partial

from ragline.errors import (
    ModelError,
    ModelMisconfiguredError,
    ModelNotFoundError,
    ModelUnavailableError,
    ModelWarmingUpError,
)
from ragline.llm.base import ChatModel, Completion, GenerationRequest, StreamInterruptedError, Usage
from ragline.providers.retry import RetryPolicy
from ragline.tokens import count_tokens

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
        failures: list[tuple[str, ModelError]] = []
        for index, model in enumerate(self.models):
            try:
                completion, attempts = self.retry.run(
                    partial(model.generate, request), what=model.spec
                )
            except ModelError as exc:
                self._failed(model, index, exc, failures)
                continue
            return _answered(completion, attempts, index, failures)
        raise _unavailable(failures)

    def stream(
        self, request: GenerationRequest, progress: StreamProgress | None = None
    ) -> Generator[str | Completion, None, None]:
        """The answer of the first model that starts one, as text deltas then the whole
        :class:`Completion` (its ``details`` as :meth:`generate` gives them).

        A model failing before its first delta is retried, then the next one is tried,
        as :meth:`generate` does; ModelUnavailableError when none starts. Once a delta
        is out, a failure is :class:`StreamInterruptedError` with the text and usage so
        far. Closing the iterator closes the model's stream (its connection); ``progress``
        then tells what was written until then (:meth:`StreamProgress.partial`).
        """
        progress = progress or StreamProgress()
        failures: list[tuple[str, ModelError]] = []
        for index, model in enumerate(self.models):
            try:
                (first, stream), attempts = self.retry.run(
                    partial(_first_item, model, request), what=model.spec
                )
            except ModelError as exc:
                self._failed(model, index, exc, failures)
                continue
            progress.started(model, request, fallback=index > 0)
            written = progress.text
            item = first
            try:
                while not isinstance(item, Completion):
                    written.append(item)
                    yield item
                    item = next(stream)
            except StreamInterruptedError:
                raise
            except (ModelError, StopIteration) as exc:
                raise _interrupted(model, request, "".join(written), exc) from None
            finally:
                stream.close()
            yield _answered(item, attempts, index, failures)
            return
        raise _unavailable(failures)

    def _failed(
        self, model: ChatModel, index: int, exc: ModelError, failures: list[tuple[str, ModelError]]
    ) -> None:
        failures.append((model.spec, exc))
        logger.warning("model %s failed, %s: %s", model.spec,
                       "trying the next" if index + 1 < len(self.models) else "no more",
                       exc)  # fmt: skip


def _first_item(
    model: ChatModel, request: GenerationRequest
) -> tuple[str | Completion, Generator[str | Completion, None, None]]:
    """Start the model's stream and wait for its first item (what a retry may repeat)."""
    stream = model.stream(request)
    try:
        return next(stream), stream
    except StopIteration:
        raise ModelError(f"{model.spec}: the stream ended before any answer") from None


@dataclass
class StreamProgress:
    """What a streamed answer has come to so far: the model writing it and its text, for
    the usage of an answer that ends early (the client went away)."""

    model: ChatModel | None = None
    request: GenerationRequest | None = None
    fallback: bool = False
    text: list[str] = field(default_factory=list)

    def started(self, model: ChatModel, request: GenerationRequest, *, fallback: bool) -> None:
        self.model, self.request, self.fallback = model, request, fallback
        self.text.clear()

    def partial(self) -> Completion | None:
        """The text written so far with its usage, estimated (a provider reports usage at
        the end of a stream); None when no model started."""
        if self.model is None or self.request is None:
            return None
        completion = _partial(self.model, self.request, "".join(self.text))
        return replace(completion, details={"fallback": self.fallback})


def _partial(model: ChatModel, request: GenerationRequest, text: str) -> Completion:
    usage = Usage(
        count_tokens(request.system) + count_tokens(request.user),
        count_tokens(text),
        estimated=True,
    )
    return Completion(text, usage, model.provider, model.model)


def _interrupted(
    model: ChatModel, request: GenerationRequest, text: str, cause: Exception
) -> StreamInterruptedError:
    """The failure of a stream already under way, with the text and (estimated) usage so far."""
    reason = str(cause) if isinstance(cause, ModelError) else "the stream ended without usage"
    partial_answer = _partial(model, request, text)
    logger.warning("model %s failed mid-stream: %s", model.spec, reason)
    return StreamInterruptedError(f"{model.spec} failed mid-answer: {reason}", partial_answer)


def _answered(
    completion: Completion, attempts: int, index: int, failures: list[tuple[str, ModelError]]
) -> Completion:
    details = {
        **completion.details,
        "attempts": attempts,
        "fallback": index > 0,
        "failed": [spec for spec, _ in failures],
    }
    return replace(completion, details=details)


def _unavailable(failures: list[tuple[str, ModelError]]) -> ModelUnavailableError:
    """Why no model answered: misconfigured (none exists at its provider), warming up,
    failing for good (a retry gets the same answer), or unavailable for now."""
    tried = ", ".join(spec for spec, _ in failures)
    failures_text = tuple((spec, str(exc)) for spec, exc in failures)
    if all(isinstance(e, ModelNotFoundError) for _, e in failures):
        reasons = "; ".join(reason for _, reason in failures_text)
        return ModelMisconfiguredError(
            f"no configured model exists at its provider ({reasons}); retrying will not "
            "help: fix RAGLINE_LLM, RAGLINE_LLM_FALLBACK or the profile's llm. "
            "The passages retrieved for the question are in 'citations'.",
            failures=failures_text,
        )
    warmings = [e for _, e in failures if isinstance(e, ModelWarmingUpError)]
    warming_up = warmings[-1] if warmings else None
    if warming_up is not None:
        return ModelUnavailableError(
            "the model is warming up (it scales to zero when idle and is starting now); "
            f"retry in a few minutes (tried {tried}). "
            "The passages retrieved for the question are in 'citations'.",
            failures=failures_text,
            retry_after_seconds=warming_up.retry_after_seconds,
        )
    if not any(e.retryable for _, e in failures):
        # A model name the provider does not know (404), a key it refuses (401): a
        # retry gets the same answer, so say what to fix rather than "retry later".
        reasons = "; ".join(reason for _, reason in failures_text)
        return ModelUnavailableError(
            f"no model could answer, and retrying will not help (tried {tried}): "
            f"{reasons}. Check the "
            "model names (RAGLINE_LLM, RAGLINE_LLM_FALLBACK) and the provider's "
            "credentials. The passages retrieved for the question are in 'citations'.",
            failures=failures_text,
        )
    return ModelUnavailableError(
        f"no model could answer right now (tried {tried}); please retry later. "
        "The passages retrieved for the question are in 'citations'.",
        failures=failures_text,
    )
