"""What a streamed answer sends, in order: the retrieval, the text as it is written, then
the final answer, or an error.

A buffered answer is the same sequence with the deltas unused: its response body is the
final event's data. Each event has a ``name`` (the server-sent event's ``event:`` field)
and ``data()``, the JSON object it carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ragline.schemas import Citation, QueryResponse, UsageInfo


@dataclass(frozen=True)
class Retrieved:
    """The passages found for the question, sent before any model is called."""

    name: ClassVar[str] = "retrieval"
    request_id: str
    profile: str
    citations: list[Citation]
    retrieve_ms: float
    # A follow-up: the standalone query the passages were searched for, and its session.
    rewritten_query: str | None = None
    session_id: str | None = None

    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "request_id": self.request_id,
            "profile": self.profile,
            "citations": [c.model_dump(mode="json") for c in self.citations],
            "latency_ms": {"retrieve": self.retrieve_ms},
        }
        if self.rewritten_query is not None:
            data["rewritten_query"] = self.rewritten_query
        if self.session_id is not None:
            data["session_id"] = self.session_id
        return data


@dataclass(frozen=True)
class TextDelta:
    """The next piece of the answer's text, as the model wrote it."""

    name: ClassVar[str] = "delta"
    text: str

    def data(self) -> dict[str, Any]:
        return {"text": self.text}


@dataclass(frozen=True)
class Answered:
    """The complete answer after the guard's checks: the buffered API's response."""

    name: ClassVar[str] = "final"
    response: QueryResponse

    def data(self) -> dict[str, Any]:
        return self.response.model_dump(mode="json")


@dataclass(frozen=True)
class Failed:
    """The answer could not be completed: the error the buffered API would answer with,
    and what is still of use (the passages; the usage so far when a model failed after
    its first token)."""

    name: ClassVar[str] = "error"
    status_code: int
    message: str
    request_id: str
    citations: list[dict[str, Any]] = field(default_factory=list)
    usage: UsageInfo | None = None
    retry_after_seconds: int | None = None

    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "message": self.message,
            "statusCode": self.status_code,
            "request_id": self.request_id,
            "citations": self.citations,
        }
        if self.usage is not None:
            data["usage"] = self.usage.model_dump(mode="json")
        if self.retry_after_seconds is not None:
            data["retry_after_seconds"] = self.retry_after_seconds
        return data


AnswerEvent = Retrieved | TextDelta | Answered | Failed
