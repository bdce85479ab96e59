"""Reviewed answers as evaluation cases: gold paths, must-contain phrases, what is left out."""

from __future__ import annotations

from datetime import UTC, datetime

from ragline.reviews.export import added_words, export_cases, gold_path, stated_numbers
from ragline.reviews.models import ReviewItem
from ragline.schemas import Citation


def cite(n: int, source: str, page: int | None = None) -> Citation:
    return Citation(n=n, document_id="d", source=source, title=None, chunk_id=n, score=0.5,
                    text="t", page=page)  # fmt: skip


def item(state: str, **decision: object) -> ReviewItem:
    passages = [cite(1, "s3://b/hr/leave.pdf#page=3", 3), cite(2, "s3://b/hr/pay.md")]
    values: dict[str, object] = {
        "id": "1", "request_id": "r", "state": state, "reason": "critical", "held": False,
        "queued_at": datetime.now(UTC), "collection": "c", "profile": "critical",
        "question": "How many days?", "answer": "25 days [1].", "citations": passages[:1],
        "passages": passages, "model": "m", "prompt": "answer@v2", "cost_usd": 0.0,
        "decided_at": datetime.now(UTC), "decided_by": "k",
    }  # fmt: skip
    return ReviewItem.model_validate({**values, **decision})


def test_gold_paths_drop_scheme_host_and_page() -> None:
    assert gold_path("s3://bucket/hr/leave.pdf#page=3") == "hr/leave.pdf"
    assert gold_path("eval://eval-harbour-0123/kayaks/rental.md") == "kayaks/rental.md"
    assert gold_path("notes/a.md") == "notes/a.md"


def test_must_contain_is_what_the_correction_added_or_the_numbers_stated() -> None:
    assert added_words("25 days a year [1].", "Thirty days a year since 2024 [2].") == [
        "Thirty", "2024",
    ]  # fmt: skip
    assert stated_numbers("It is 25 days [1], 12.5 hours [2].") == ["25", "12.5"]


def test_approved_answers_keep_their_pages_and_other_rejections_are_left_out() -> None:
    # GIVEN an approved answer citing a PDF page, an unanswerable rejection, a rude one
    approved = item("approved", final_answer="25 days [1].",
                    final_citations=[cite(1, "s3://b/hr/leave.pdf#page=3", 3)])  # fmt: skip
    abstain = item("rejected", decision_category="not_in_documents", decision_reason="x")
    rude = item("rejected", decision_category="unsafe", decision_reason="x")
    # WHEN they are exported
    export = export_cases(
        [(approved, None), (abstain, None), (rude, None), (item("pending"), None)]
    )
    # THEN the approved one has its gold page, the unanswerable one is to abstain on
    first, second = export.cases
    assert (first["gold"], first["pages"], first["must_contain"]) == (["hr/leave.pdf"], [3], ["25"])
    assert (second["gold"], second["must_contain"]) == ([], [])
    # AND the rest are counted as left out, with why
    assert export.skipped == {"rejected, not for want of documents": 1, "not decided": 1}
