"""The review queue use case: answers in, a person's decisions out.

Answers enter the queue (:meth:`ReviewQueue.consider`, the answer use case's review
hook) when a post-check flagged them (``flagged``), when their profile reviews every
answer (``critical``), or later when the caller rates them down (``thumbs_down``: the
answer was kept, unqueued, for RAGLINE_REVIEW_FEEDBACK_HOURS). A holding profile's
answer is given to the caller only once a reviewer approved or corrected it.

Every call is scoped to the caller's tenant (another tenant's item is 404 whatever the
scopes); listing and deciding take the ``review`` scope, reading a held answer's outcome
the ``query`` scope. A decision is made once: a second one is a 409.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ragline.errors import ConflictError, InvalidRequestError, NotFoundError
from ragline.reviews.models import (
    REASONS,
    STATES,
    HeldAnswer,
    ReviewItem,
    ReviewOutcome,
)
from ragline.reviews.notify import Notifier
from ragline.schemas import Citation
from ragline.store import get_store
from ragline.telemetry.metrics import MetricsEmitter

if TYPE_CHECKING:
    from ragline.answer import Answerer, Reviewable
    from ragline.config import Settings
    from ragline.identity import Identity
    from ragline.schemas import QueryResponse
    from ragline.store import Store

logger = logging.getLogger("ragline.reviews")
_PURGE_EVERY_SECONDS = 600
# An operator acting in process (no API key): named so in the decision record.
OPERATOR_REVIEWER = "operator"


def reviewer_of(identity: Identity) -> str:
    """Who decides: the caller's API key id (the key's public part)."""
    return identity.key_id or OPERATOR_REVIEWER


def queue_reason(item: Reviewable) -> tuple[str | None, str | None]:
    """Why an answer enters the queue now, and the detail: a post-check's flag first, then
    the profile's rule; (None, None) when it does not."""
    if item.response.review_reason is not None:
        return "flagged", item.response.review_reason
    if item.profile.review:
        return "critical", f"profile {item.profile.name!r} reviews every answer"
    return None, None


def _model(response: QueryResponse) -> tuple[str, str]:
    return response.model.provider, response.model.name


def _spec(provider: str, model: str) -> str:
    return provider if provider == model else f"{provider}:{model}"


def review_item(row: dict[str, Any]) -> ReviewItem:
    """A stored row as the API shows it."""
    final = row.get("final_citations")
    return ReviewItem(
        id=str(row["id"]),
        request_id=row["request_id"],
        state=row["state"],
        reason=row["reason"],
        reason_detail=row["reason_detail"],
        held=row["held"],
        queued_at=row["queued_at"],
        collection=row["collection"],
        profile=row["profile"],
        question=row["question"],
        answer=row["answer"],
        citations=[Citation(**c) for c in row["citations"]],
        passages=[Citation(**c) for c in row["passages"]],
        model=_spec(row["provider"], row["model"]),
        prompt=row["prompt"],
        cost_usd=row["cost_usd"],
        claimed_by=row["claimed_by"],
        claimed_at=row["claimed_at"],
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        decision_reason=row["decision_reason"],
        decision_category=row["decision_category"],
        final_answer=row["final_answer"],
        final_citations=None if final is None else [Citation(**c) for c in final],
    )


def outcome(item: ReviewItem) -> ReviewOutcome:
    """What a held answer's caller sees of its item."""
    released = item.state in ("approved", "corrected")
    return ReviewOutcome(
        id=item.id,
        request_id=item.request_id,
        state=item.state,
        answer=item.final_answer if released else None,
        citations=(item.final_citations or []) if released else [],
        decided_at=item.decided_at,
        message=item.decision_reason if item.state == "rejected" else None,
    )


def held_answer(response: QueryResponse) -> HeldAnswer:
    """/query's 202 body for a held answer."""
    assert response.review_id is not None
    return HeldAnswer(
        review_id=response.review_id,
        request_id=response.request_id,
        profile=response.profile,
        citations=response.citations,
        location=f"/reviews/{response.review_id}",
    )


class ReviewQueue:
    """Queues answers for review and records reviewers' decisions."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        notifier: Notifier,
        emitter: MetricsEmitter | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.notifier = notifier
        self.emitter = emitter
        self._purged_at: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ReviewQueue:
        return cls(
            settings,
            get_store(settings),
            Notifier.from_settings(settings),
            MetricsEmitter.from_settings(settings),
        )

    def attach(self, answerer: Answerer) -> None:
        """Make this queue the answerer's review hook: its answers come through here."""
        answerer.review = self.consider

    # --- answers in ---------------------------------------------------------------------

    def consider(self, item: Reviewable) -> QueryResponse:
        """Queue the answer if it needs review (else keep it for a thumbs-down) and return
        the response to give: with its review id when queued, held back (no text) when
        its profile holds answers. A held answer that cannot be queued is an error; any
        other answer stands if the queue cannot be written."""
        response, hold = item.response, item.profile.hold
        reason, detail = queue_reason(item)
        if reason is None and self.settings.review_feedback_hours == 0:
            return response
        provider, model = _model(response)
        row_in = {
            "id": uuid.uuid4(),
            "tenant": item.identity.tenant,
            "request_id": response.request_id,
            "state": "pending" if reason else "recorded",
            "reason": reason,
            "reason_detail": detail,
            "held": hold,
            "collection": item.collection,
            "profile": response.profile,
            "question": item.question,
            "answer": response.answer,
            "citations": [c.model_dump() for c in response.citations],
            "passages": [c.model_dump() for c in item.passages],
            "provider": provider,
            "model": model,
            "prompt": response.model.prompt,
            "cost_usd": response.usage.cost_usd,
        }
        try:
            row = self.store.record_answer(row_in)
            if reason is not None and row["state"] == "recorded":
                # The same request id kept unqueued before (a retried request): queue it.
                row = self.store.queue_recorded(
                    response.request_id, tenant=item.identity.tenant, reason=reason,
                    detail=detail,
                ) or row  # fmt: skip
            self._purge()
        except Exception:
            if hold:
                raise
            logger.exception("could not keep answer %s for review", response.request_id)
            return response
        if reason is None:
            return response
        self._queued(row)
        review_id = str(row["id"])
        if hold:
            return response.model_copy(update={"answer": "", "held": True, "review_id": review_id})
        return response.model_copy(update={"review_id": review_id})

    def thumbs_down(self, request_id: str, identity: Identity, comment: str | None) -> str | None:
        """Queue the kept answer the caller rated down; its review id, or None when it
        was not kept (older than RAGLINE_REVIEW_FEEDBACK_HOURS, or kept nothing) or is
        already in the queue."""
        row = self.store.queue_recorded(
            request_id, tenant=identity.tenant, reason="thumbs_down", detail=comment
        )
        if row is None:
            return None
        self._queued(row)
        return str(row["id"])

    def _queued(self, row: dict[str, Any]) -> None:
        """Announce a queued item and count it; the figures never fail the request."""
        self.notifier.queued(row)
        if self.emitter is not None:
            self.emitter.review_queued(row["reason"])
            self._read_queue()

    def _read_queue(self) -> None:
        """Emit the queue's depth and oldest age (CloudWatch sees them as it changes)."""
        assert self.emitter is not None
        try:
            now = self.store.review_stats(datetime.now(UTC))
        except Exception:
            logger.exception("could not read the review queue's figures")
            return
        self.emitter.review_queue(now["depth"], now["oldest_age_seconds"])

    def _purge(self) -> None:
        now = time.monotonic()
        if self._purged_at is None or now - self._purged_at >= _PURGE_EVERY_SECONDS:
            self._purged_at = now
            self.store.purge_recorded_answers(max(self.settings.review_feedback_hours, 1))

    # --- the reviewers' side ------------------------------------------------------------

    def find(
        self,
        identity: Identity,
        *,
        state: str | None = None,
        profile: str | None = None,
        reason: str | None = None,
        older_than_seconds: int | None = None,
        limit: int = 50,
    ) -> list[ReviewItem]:
        """The tenant's queue, oldest first: pending and claimed items unless ``state``
        names one; ``older_than_seconds``: queued at least that long ago."""
        identity.require("review")
        if state is not None and state not in STATES:
            raise InvalidRequestError(f"state must be one of {', '.join(STATES)}")
        if reason is not None and reason not in REASONS:
            raise InvalidRequestError(f"reason must be one of {', '.join(REASONS)}")
        rows = self.store.review_items(
            identity.tenant,
            states=[state] if state else ["pending", "claimed"],
            profile=profile,
            reason=reason,
            older_than_seconds=older_than_seconds,
            limit=limit,
        )
        return [review_item(row) for row in rows]

    def _item(self, item_id: str, identity: Identity) -> ReviewItem:
        try:
            key = uuid.UUID(item_id)
        except ValueError:
            raise NotFoundError(f"no review item {item_id}") from None
        row = self.store.review_item(key, tenant=identity.tenant)
        if row is None:
            raise NotFoundError(f"no review item {item_id}")
        return review_item(row)

    def get(self, item_id: str, identity: Identity) -> ReviewItem | ReviewOutcome:
        """The item (``review`` scope), or what its caller may see of it (``query``
        scope: the reviewed answer once approved or corrected)."""
        item = self._item(item_id, identity)
        if identity.allows("review"):
            return item
        identity.require("query")
        return outcome(item)

    def claim(self, item_id: str, identity: Identity) -> ReviewItem:
        """Take a pending item, so other reviewers see it is being worked on."""
        self._item(item_id, identity)  # 404 before 403: existence is not told
        identity.require("review")
        row = self.store.claim_review(
            uuid.UUID(item_id), tenant=identity.tenant, reviewer=reviewer_of(identity)
        )
        if row is None:
            raise self._refusal(item_id, identity)
        return review_item(row)

    def approve(self, item_id: str, identity: Identity) -> ReviewItem:
        """The answer is right as given."""
        item = self._item(item_id, identity)
        identity.require("review")
        return self._decide(
            item, identity, state="approved", reason=None, category=None,
            final_answer=item.answer, final_citations=item.citations, must_contain=None,
        )  # fmt: skip

    def correct(
        self,
        item_id: str,
        identity: Identity,
        *,
        answer: str,
        citations: list[int],
        must_contain: list[str] | None = None,
    ) -> ReviewItem:
        """The right answer is ``answer``, resting on the item's passages ``citations``
        (their numbers)."""
        item = self._item(item_id, identity)
        identity.require("review")
        by_number = {p.n: p for p in item.passages}
        unknown = sorted(set(citations) - set(by_number))
        if unknown:
            known = ", ".join(str(n) for n in sorted(by_number)) or "none"
            raise InvalidRequestError(
                f"citations name passages {', '.join(map(str, unknown))} that the item does "
                f"not have (its passages: {known})"
            )
        chosen = [by_number[n] for n in dict.fromkeys(citations)]
        phrases = [p.strip() for p in must_contain or [] if p.strip()] or None
        return self._decide(
            item, identity, state="corrected", reason=None, category=None,
            final_answer=answer.strip(), final_citations=chosen, must_contain=phrases,
        )  # fmt: skip

    def reject(
        self, item_id: str, identity: Identity, *, reason: str, category: str = "other"
    ) -> ReviewItem:
        """The answer is wrong and not to be given; ``category`` not_in_documents says
        the documents do not answer the question."""
        item = self._item(item_id, identity)
        identity.require("review")
        return self._decide(
            item, identity, state="rejected", reason=reason.strip(), category=category,
            final_answer=None, final_citations=None, must_contain=None,
        )  # fmt: skip

    def _decide(
        self,
        item: ReviewItem,
        identity: Identity,
        *,
        final_citations: list[Citation] | None,
        **decision: Any,
    ) -> ReviewItem:
        row = self.store.decide_review(
            uuid.UUID(item.id),
            tenant=identity.tenant,
            reviewer=reviewer_of(identity),
            final_citations=(
                None if final_citations is None else [c.model_dump() for c in final_citations]
            ),
            **decision,
        )
        if row is None:
            raise self._refusal(item.id, identity)
        decided = review_item(row)
        if self.emitter is not None and decided.decided_at is not None:
            self.emitter.review_decided(
                approved=decided.state == "approved", model=decided.model,
                prompt=decided.prompt,
                seconds=(decided.decided_at - decided.queued_at).total_seconds(),
            )  # fmt: skip
            self._read_queue()
        logger.info(
            "review %s %s by %s", decided.id, decided.state, decided.decided_by,
            extra={"review_id": decided.id, "state": decided.state, "profile": decided.profile,
                   "model": decided.model, "prompt": decided.prompt},
        )  # fmt: skip
        return decided

    def _refusal(self, item_id: str, identity: Identity) -> ConflictError:
        """The 409 for an item that cannot take this action, saying why."""
        item = self._item(item_id, identity)
        if item.decided_at is not None:
            return ConflictError(
                f"review item {item_id} was already {item.state} by {item.decided_by} "
                f"at {item.decided_at.isoformat()}"
            )
        return ConflictError(f"review item {item_id} is claimed by {item.claimed_by}")

    def decided(
        self, since: datetime, *, tenant: str | None = None
    ) -> list[tuple[ReviewItem, list[str] | None]]:
        """Items decided since ``since`` (of ``tenant``, else of all), oldest decision
        first, each with the reviewer's must-contain phrases (None when not given)."""
        rows = self.store.decided_reviews(since, tenant=tenant)
        return [(review_item(row), row.get("must_contain")) for row in rows]

    # --- figures ------------------------------------------------------------------------

    def stats(self, since: datetime, *, tenant: str | None = None) -> dict[str, Any]:
        """The queue's depth and oldest age now, and its decisions since ``since``."""
        return self.store.review_stats(since, tenant=tenant)


@lru_cache(maxsize=4)
def get_review_queue(settings: Settings) -> ReviewQueue:
    """The process's review queue, created once."""
    return ReviewQueue.from_settings(settings)
