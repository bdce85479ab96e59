"""Adaptive fusion, near-duplicate collapse and the page a result cites."""

from __future__ import annotations

import uuid

from ragline.answer.responses import citation, retrieved_item
from ragline.retrieval import (
    adaptive_fusion,
    collapse_duplicates,
    confidence,
    match_page,
    relative_score_fusion,
)
from ragline.store import RetrievedChunk


def _chunk(
    chunk_id: int,
    score: float,
    similarity: float | None = None,
    *,
    text: str | None = None,
    source: str = "s3://b/k",
) -> RetrievedChunk:
    return RetrievedChunk(chunk_id, uuid.uuid4(), source, "T", "", text or f"text {chunk_id}", 3,
                          score, similarity)  # fmt: skip


def _vector(*pairs: tuple[int, float]) -> list[RetrievedChunk]:
    return [_chunk(cid, cosine, cosine) for cid, cosine in pairs]


def _keyword(*pairs: tuple[int, float]) -> list[RetrievedChunk]:
    return [_chunk(cid, bm25) for cid, bm25 in pairs]


def test_confidence_is_how_far_the_best_score_stands_out() -> None:
    # GIVEN one clear winner, an even decline, and a crowded top over a low tail
    assert confidence([10.0, 1.0, 1.0, 1.0]) == 1.0
    assert round(confidence([4.0, 3.0, 2.0, 1.0]), 3) == 0.667
    assert confidence([0.62, 0.61, 0.61, 0.60, 0.60, 0.40]) < 0.3
    # AND lists too short or flat to tell
    assert confidence([]) == 0.0 and confidence([3.0]) == 1.0 and confidence([2.0, 2.0]) == 0.0


def test_a_list_sure_of_its_best_hit_outweighs_a_list_of_near_ties() -> None:
    # GIVEN a vector list of near ties (chunk 9 only slightly ahead) and a keyword list
    # whose first hit, chunk 1, towers over the rest (a rare term matched)
    vector = _vector((9, 0.62), (8, 0.61), (7, 0.61), (6, 0.60), (5, 0.60), (1, 0.40))
    keyword = _keyword((1, 30.0), (2, 6.0), (3, 5.5), (4, 5.0), (8, 4.0))
    # WHEN plain relative fusion weighs vectors 0.6, the keyword winner drops out of the top 3
    plain = [c.chunk_id for c in relative_score_fusion(vector, keyword, vector_weight=0.6)]
    assert plain.index(1) >= 3
    # THEN adaptive fusion, weighing each list by how sure it is, ranks it first
    fused = adaptive_fusion(vector, keyword, vector_weight=0.6, keep_within=0)
    assert fused[0].chunk_id == 1


def test_a_sure_lists_best_hit_keeps_a_place_in_the_top() -> None:
    # GIVEN a vector list sure of chunk 1 and a keyword list that never returned it
    vector = _vector((1, 0.9), (2, 0.3), (3, 0.3), (4, 0.3))
    keyword = _keyword((5, 9.0), (6, 8.9), (7, 8.8), (2, 8.7), (3, 8.7), (4, 8.6))
    # WHEN the keyword list weighs far more (vector weight 0.05)
    fused = adaptive_fusion(vector, keyword, vector_weight=0.05, keep_within=3, power=0.0)
    # THEN chunk 1 is still in the top 3, and nothing is lost or doubled
    ids = [c.chunk_id for c in fused]
    assert ids.index(1) == 2
    assert sorted(ids) == [1, 2, 3, 4, 5, 6, 7]
    # AND with the guarantee off it falls below
    unguarded = adaptive_fusion(vector, keyword, vector_weight=0.05, keep_within=0, power=0.0)
    assert [c.chunk_id for c in unguarded].index(1) > 2


def test_the_same_text_from_several_documents_counts_once_with_its_other_sources() -> None:
    # GIVEN the same release note in three documents (case and spacing aside), then another
    note = "Fixed a crash when the index is locked."
    chunks = [
        _chunk(1, 0.9, text=note, source="s3://b/RelNotes/2.39.txt"),
        _chunk(
            2,
            0.8,
            text="fixed a crash  when the index is locked",
            source="s3://b/RelNotes/2.38.txt",
        ),
        _chunk(3, 0.7, text="Another change.", source="s3://b/RelNotes/2.38.txt"),
        _chunk(4, 0.6, text=note.upper(), source="s3://b/RelNotes/2.37.txt"),
    ]
    # WHEN duplicates are collapsed
    kept = collapse_duplicates(chunks)
    # THEN the note counts once, at its first place, listing where else it is
    assert [c.chunk_id for c in kept] == [1, 3]
    assert kept[0].also_in == ("s3://b/RelNotes/2.38.txt", "s3://b/RelNotes/2.37.txt")
    assert kept[1].also_in == ()
    # AND the API's result and citation carry them
    assert retrieved_item(kept[0]).also_in == list(kept[0].also_in)
    assert citation(1, kept[0]).also_in == list(kept[0].also_in)
    assert retrieved_item(kept[1]).also_in == []


def _spanning(text: str, breaks: list[list[int]]) -> RetrievedChunk:
    return RetrievedChunk(1, uuid.uuid4(), "s3://b/manual.pdf", "Manual", "Mooring", text, 20,
                          0.5, 0.5, page=12, last_page=13,
                          page_breaks='[' + ",".join(f"[{o},{p}]" for o, p in breaks) + "]")  # type: ignore[arg-type]  # fmt: skip


def test_a_result_cites_the_page_that_holds_its_match() -> None:
    # GIVEN a chunk printed on pages 12-13 whose text about tugs is on page 13 (the page
    # breaks come from the store as JSON text)
    text = "Ships moor at the north quay.\n\nTugs are booked a day ahead of arrival."
    chunk = _spanning(text, [[31, 13]])
    assert chunk.page_breaks == ((31, 13),)
    # WHEN the query asks about tugs, THEN page 13 holds the match
    assert match_page(chunk, "When must tugs be booked?") == 13
    # AND a query matching page 12 (or nothing) keeps page 12
    assert match_page(chunk, "Where do ships moor?") == 12
    assert match_page(chunk, "weather") == 12
    # AND the result cites page 13 first: in page, pages and the source's fragment
    from dataclasses import replace

    item = retrieved_item(replace(chunk, match_page=13))
    assert (item.page, item.last_page, item.pages) == (13, 13, [13, 12])
    assert item.source == "s3://b/manual.pdf#page=13"
    # AND a chunk on one page cites it as before
    plain = retrieved_item(replace(chunk, page_breaks=(), last_page=12))
    assert (plain.page, plain.pages, plain.source) == (12, [12], "s3://b/manual.pdf#page=12")
