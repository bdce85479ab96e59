"""The language-model interface: a request in, text plus token usage out, whole or streamed."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from ragline.errors import ModelError
from ragline.tokens import count_tokens

if TYPE_CHECKING:
    from collections.abc import Generator

    from ragline.config import Settings


@dataclass(frozen=True)
class Usage:
    """Tokens a model call consumed, as the provider reported them.

    ``input_tokens`` counts every prompt token, cached ones included; ``cached_input_tokens``
    is the part of them served from the provider's prompt cache (billed at a lower rate).
    ``estimated`` is true when the provider did not report a count and it was estimated
    from the text.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    estimated: bool = False


@dataclass(frozen=True)
class Passage:
    """A numbered piece of retrieved context, as the model sees it."""

    n: int
    text: str
    title: str | None = None
    source: str | None = None
    section: str = ""
    similarity: float | None = None  # the retriever's cosine similarity, when known


@dataclass(frozen=True)
class GenerationRequest:
    """Everything a model may use: the rendered prompt, and the question and passages
    themselves for models that work on them directly (the extractive model)."""

    system: str
    user: str
    question: str
    passages: tuple[Passage, ...]
    abstain_text: str
    max_tokens: int = 512
    temperature: float = 0.0
    # Earlier turns of the conversation, oldest first, as (role, text) with role "user"
    # or "assistant": chat models send them as messages between the system prompt and
    # ``user``, so the answer reads the follow-up in its context.
    history: tuple[tuple[str, str], ...] = ()

    def prompt_tokens(self) -> int:
        """The prompt's tokens counted from its texts, for a provider that reports none."""
        texts = (self.system, *(text for _, text in self.history), self.user)
        return sum(count_tokens(text) for text in texts)


@dataclass(frozen=True)
class Completion:
    """A model's answer with its usage.

    ``details`` carries what telemetry wants beyond tokens: ``latency_ms`` of the call
    that answered, ``attempts`` (1 without retries), ``finish_reason`` when the provider
    gives one, and from the fallback chain ``fallback`` and ``failed`` (models that
    failed before this one answered).
    """

    text: str
    usage: Usage
    provider: str
    model: str
    details: dict[str, Any] = field(default_factory=dict)


class ChatModel(ABC):
    """One chat model. Subclasses set ``provider`` and ``model`` and implement ``generate``;
    providers in the registry also implement :meth:`from_settings`."""

    provider: str
    model: str
    # Whether the model writes text of its own: one that only extracts sentences from the
    # passages (the extractive model) cannot rewrite a follow-up question.
    generative: bool = True

    @classmethod
    def from_settings(cls, model: str, settings: Settings) -> Self:
        """The model ``<provider>:<model>`` as configured; the registry builds it so.

        ``model`` is the part of the spec after the colon (may be empty).
        """
        raise NotImplementedError(f"{cls.__name__} cannot be built from settings")

    @property
    def spec(self) -> str:
        """The ``provider:model`` string this model answers to."""
        return self.provider if self.model == self.provider else f"{self.provider}:{self.model}"

    @abstractmethod
    def generate(self, request: GenerationRequest) -> Completion:
        """Answer the request. Raise ragline.errors.ModelError on failure."""

    def stream(self, request: GenerationRequest) -> Generator[str | Completion, None, None]:
        """Answer the request as it is written: text deltas (``str``), then the whole
        :class:`Completion` (its text is the deltas joined) as the last item.

        Raise ModelError on failure; a failure after the first delta is
        :class:`StreamInterruptedError`. Closing the iterator early ends the model call.
        This default streams the whole answer as one delta (the extractive model).
        """
        completion = self.generate(request)
        if completion.text:
            yield completion.text
        yield completion


class StreamInterruptedError(ModelError):
    """A streamed answer failed after its first delta: too late to try another model.

    ``partial`` is what was written until then, with the usage so far (estimated where
    the provider reported none).
    """

    def __init__(self, message: str, partial: Completion) -> None:
        super().__init__(message, retryable=False)
        self.partial = partial
