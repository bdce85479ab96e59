"""The review API's request and response models (the /reviews routes, and /query's 202).

Requests are strict and refuse unknown fields, like those of :mod:`ragline.schemas`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from ragline.schemas import TEXT_PATTERN, Citation, _Request, _Response

STATES = ("pending", "claimed", "approved", "corrected", "rejected")
REASONS = ("flagged", "critical", "thumbs_down")
# Why a reviewer rejects: not_in_documents becomes a must-abstain eval case.
REJECTIONS = ("not_in_documents", "wrong", "unsafe", "other")
STATE_PATTERN = "^(pending|claimed|approved|corrected|rejected)$"
REASON_PATTERN = "^(flagged|critical|thumbs_down)$"
PassageNumber = Annotated[int, Field(ge=1, le=1000)]
Phrase = Annotated[str, Field(min_length=1, max_length=200, pattern=TEXT_PATTERN)]


class CorrectRequest(_Request):
    answer: str = Field(
        min_length=1, max_length=20000, pattern=TEXT_PATTERN, description="The corrected answer."
    )
    citations: list[PassageNumber] = Field(
        max_length=50,
        description="The passages (their n in the item's passages) the corrected answer "
        "rests on; [] when it rests on none.",
    )
    must_contain: list[Phrase] | None = Field(
        default=None,
        max_length=10,
        description="Phrases a right answer must contain (for export-reviews); null: "
        "the words the correction added.",
    )


class RejectRequest(_Request):
    reason: str = Field(min_length=1, max_length=2000, pattern=TEXT_PATTERN)
    category: Literal["not_in_documents", "wrong", "unsafe", "other"] = Field(
        default="other",
        description="not_in_documents: the documents do not answer the question (exported "
        "as a case the model must abstain on).",
    )


class ReviewItem(_Response):
    """A queued answer with everything a reviewer needs, and its decision once made."""

    id: str
    request_id: str
    state: str
    reason: str = Field(description="flagged, critical or thumbs_down.")
    reason_detail: str | None = None
    held: bool = Field(description="The caller waits for the decision (a holding profile).")
    queued_at: datetime
    collection: str
    profile: str
    question: str
    answer: str
    citations: list[Citation]
    passages: list[Citation] = Field(description="Every passage the model was shown.")
    model: str = Field(description="provider:model that wrote the answer.")
    prompt: str = Field(description="The prompt template, id@version.")
    cost_usd: float | None
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    decided_by: str | None = Field(default=None, description="The reviewer's API key id.")
    decided_at: datetime | None = None
    decision_reason: str | None = None
    decision_category: str | None = None
    final_answer: str | None = None
    final_citations: list[Citation] | None = None


class ReviewList(_Response):
    items: list[ReviewItem]


class ReviewOutcome(_Response):
    """What the caller of a held answer sees: the reviewed answer once there is one."""

    id: str
    request_id: str
    state: str
    answer: str | None = Field(
        default=None, description="The approved or corrected answer; null until then."
    )
    citations: list[Citation] = Field(default_factory=list)
    decided_at: datetime | None = None
    message: str | None = Field(default=None, description="A rejection's reason.")


class HeldAnswer(_Response):
    """/query's 202: the answer waits for a person; GET /reviews/{review_id} returns it."""

    review_id: str
    request_id: str
    state: Literal["pending"] = "pending"
    profile: str
    citations: list[Citation] = Field(description="The passages the answer cites.")
    location: str = Field(description="Where the reviewed answer will be: /reviews/{id}.")
