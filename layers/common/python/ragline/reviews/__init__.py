"""The review queue: a person approves, corrects or rejects answers (docs/review.md).

``queue`` is the use case (answers in through the answer use case's review hook,
decisions out), ``models`` the API's shapes, ``notify`` the event per queued item,
``export`` reviewed answers as evaluation cases.
"""

from __future__ import annotations

from ragline.reviews.models import (
    CorrectRequest,
    HeldAnswer,
    RejectRequest,
    ReviewItem,
    ReviewList,
    ReviewOutcome,
)
from ragline.reviews.queue import ReviewQueue, get_review_queue, held_answer

__all__ = [
    "CorrectRequest",
    "HeldAnswer",
    "RejectRequest",
    "ReviewItem",
    "ReviewList",
    "ReviewOutcome",
    "ReviewQueue",
    "get_review_queue",
    "held_answer",
]
