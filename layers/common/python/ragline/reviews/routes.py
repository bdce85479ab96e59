"""The /reviews routes, as a Powertools router the query function includes.

``GET /reviews`` lists the caller's tenant's queue, ``GET /reviews/{id}`` reads an item
(or, with the ``query`` scope only, its outcome: the reviewed answer of a held one),
``POST /reviews/{id}/claim|approve|correct|reject`` decide. The routes are here, not in
the handler, so the handler gains two lines: ``include_router`` and the review hook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from ragline.api import authentication, caller, documented_errors
from ragline.reviews.models import (
    REASON_PATTERN,
    STATE_PATTERN,
    CorrectRequest,
    HeldAnswer,
    RejectRequest,
    ReviewItem,
    ReviewList,
    ReviewOutcome,
)
from ragline.reviews.queue import ReviewQueue, get_review_queue, held_answer
from ragline.schemas import PROFILE_PATTERN, QueryResponse

if TYPE_CHECKING:
    from ragline.config import Settings
    from ragline.identity import Identity

ID = Annotated[str, Path(max_length=64)]
# /query's 202 in the OpenAPI document: a holding profile's answer waits for a reviewer.
HELD: dict[int, Any] = {
    202: {
        "description": "Held for review: GET the location for the reviewed answer.",
        "content": {content_types.APPLICATION_JSON: {"model": HeldAnswer}},
    }
}


def held_or_answer(response: QueryResponse) -> QueryResponse | Response[HeldAnswer]:
    """/query's answer: itself, or for a held one a 202 saying where the reviewed answer
    will be (``Location``)."""
    if not response.held:
        return response
    body = held_answer(response)
    return Response(
        status_code=202,
        content_type=content_types.APPLICATION_JSON,
        body=body,
        headers={"Location": body.location},
    )


def review_routes(settings: Settings, queue: ReviewQueue | None = None) -> Router:
    """The review API over ``queue`` (the process's queue by default)."""
    queue = queue or get_review_queue(settings)
    router = Router()
    auth = authentication(settings)

    def who() -> Identity:
        return caller(router.current_event.raw_event, auth)

    @router.get("/reviews", responses=documented_errors())
    def list_reviews(
        state: Annotated[str | None, Query(pattern=STATE_PATTERN)] = None,
        profile: Annotated[str | None, Query(pattern=PROFILE_PATTERN)] = None,
        reason: Annotated[str | None, Query(pattern=REASON_PATTERN)] = None,
        older_than_seconds: Annotated[int | None, Query(ge=0, le=365 * 86400)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> ReviewList:
        items = queue.find(
            who(), state=state, profile=profile, reason=reason,
            older_than_seconds=older_than_seconds, limit=limit,
        )  # fmt: skip
        return ReviewList(items=items)

    @router.get("/reviews/<id>", responses=documented_errors())
    def get_review(id: ID) -> ReviewItem | ReviewOutcome:
        return queue.get(id, who())

    @router.post("/reviews/<id>/claim", responses=documented_errors(409))
    def claim_review(id: ID) -> ReviewItem:
        return queue.claim(id, who())

    @router.post("/reviews/<id>/approve", responses=documented_errors(409))
    def approve_review(id: ID) -> ReviewItem:
        return queue.approve(id, who())

    @router.post("/reviews/<id>/correct", responses=documented_errors(409, 413))
    def correct_review(id: ID, body: CorrectRequest) -> ReviewItem:
        return queue.correct(
            id, who(), answer=body.answer, citations=body.citations,
            must_contain=body.must_contain,
        )  # fmt: skip

    @router.post("/reviews/<id>/reject", responses=documented_errors(409, 413))
    def reject_review(id: ID, body: RejectRequest) -> ReviewItem:
        return queue.reject(id, who(), reason=body.reason, category=body.category)

    return router


def after_feedback(settings: Settings, request_id: str, rating: str, comment: str | None,
                   identity: Identity) -> dict[str, Any]:  # fmt: skip
    """/feedback's extra for a thumbs-down: the review id when it queued the answer."""
    if rating != "down":
        return {}
    review_id = get_review_queue(settings).thumbs_down(request_id, identity, comment)
    return {} if review_id is None else {"review_id": review_id}
