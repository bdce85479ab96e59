"""A scripted chat model for tests: it replays queued outcomes and records its requests."""

from __future__ import annotations

from ragline.llm import ChatModel, Completion, GenerationRequest, Usage


class ScriptedModel(ChatModel):
    """Answers each request with the next queued outcome: text, or an exception to raise.

    ``spec`` is ``provider:model`` or a bare model name (provider ``fake``). Once the queue
    is empty it answers ``default``, or fails the test if there is none. Every request is
    kept in ``requests``, so a test can check what the model was asked.
    """

    def __init__(
        self,
        spec: str = "fake:scripted",
        *outcomes: str | Exception,
        default: str | None = None,
        usage: Usage | None = None,
    ) -> None:
        provider, separator, model = spec.partition(":")
        self.provider, self.model = (provider, model) if separator else ("fake", spec)
        self.outcomes = list(outcomes)
        self.default = default
        self.usage = usage if usage is not None else Usage(10, 2)
        self.requests: list[GenerationRequest] = []

    @property
    def calls(self) -> int:
        """How many times ``generate`` was called."""
        return len(self.requests)

    def generate(self, request: GenerationRequest) -> Completion:
        """Record the request, then answer with (or raise) the next outcome."""
        self.requests.append(request)
        if self.outcomes:
            outcome = self.outcomes.pop(0)
        elif self.default is not None:
            outcome = self.default
        else:
            raise AssertionError(f"{self.spec} got request {self.calls}, more than scripted")
        if isinstance(outcome, Exception):
            raise outcome
        return Completion(outcome, self.usage, self.provider, self.model, {"latency_ms": 1.0})
