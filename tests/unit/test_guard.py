"""The grounding guard on answers a model may give: here, none at all."""

from __future__ import annotations

import uuid

import pytest
from ragline.answer.guard import check_answer
from ragline.store import RetrievedChunk

ABSTAIN = "The documents do not answer this."


def _chunk(text: str) -> RetrievedChunk:
    return RetrievedChunk(
        chunk_id=1, document_id=uuid.uuid4(), source="s3://d/x.md", title="X", text=text,
        token_count=10, score=0.5, similarity=0.5, section="",
    )  # fmt: skip


@pytest.mark.parametrize("text", ["", "  \n "])
@pytest.mark.parametrize("require_citations", [False, True])
def test_an_empty_answer_is_an_abstention_citing_nothing(
    text: str, require_citations: bool
) -> None:
    # GIVEN passages, and a model that wrote nothing about them
    passages = [_chunk("Kayaks rent for 40 euros a day."), _chunk("The harbour opens at 7.")]
    # WHEN the answer is judged
    verdict = check_answer(
        text, passages, abstain_text=ABSTAIN, require_citations=require_citations
    )
    # THEN the caller gets the abstention, with no passage presented as its source
    assert verdict.abstained and verdict.text == ABSTAIN
    assert verdict.sources == []
