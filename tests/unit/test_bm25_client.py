"""The client BM25 scorer's arithmetic and decoding, without a database (the rankings
against bm25_search are tests/integration/test_bm25.py's)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from ragline.store import bm25


def _sent(values: list[int], code: str) -> bytes:
    """Elements as PostgreSQL's array_send writes them after its header: per element a
    big-endian int32 length, then the value."""
    size = struct.calcsize(f">{code}")
    return b"".join(struct.pack(f">i{code}", size, v) for v in values)


def test_shares_round_to_multiples_of_2_to_the_minus_32_half_to_even() -> None:
    # GIVEN postings whose Okapi weights are computed as bm25_term computes them
    tfs, lengths = np.array([1, 3, 200], dtype=np.int16), np.array([7, 120, 4000], dtype=np.int32)
    # WHEN the client computes their shares
    got = bm25.shares(2.5, tfs, lengths, 96.0)
    # THEN each is the float64 formula rounded to a multiple of 2^-32 (rint: half to even)
    for share, tf, length in zip(got, tfs.tolist(), lengths.tolist(), strict=True):
        okapi = 2.5 * tf * (1.2 + 1) / (tf + 1.2 * (1 - 0.75 + 0.75 * length / 96.0))
        assert share == round(okapi * 2**32) / 2**32
        assert (share * 2**32).is_integer()
    assert np.rint(np.array([0.5, 1.5, 2.5])).tolist() == [0.0, 2.0, 2.0]


def test_postings_decode_from_array_send_records_in_chunk_order() -> None:
    # GIVEN two blocks' columns concatenated out of order (a plan that read the second first)
    ids = _sent([300, 301, 950], "q") + _sent([4, 17, 42], "q")
    tfs = _sent([5, 6, 7], "h") + _sent([1, 2, 3], "h")
    lengths = _sent([50, 60, 70], "i") + _sent([10, 20, 30], "i")
    # WHEN they are decoded
    chunks, counts, sizes = bm25._decoded(ids, tfs, lengths)
    # THEN the postings are in chunk id order, each with its own tf and length
    assert chunks.tolist() == [4, 17, 42, 300, 301, 950]
    assert counts.tolist() == [1, 2, 3, 5, 6, 7]
    assert sizes.tolist() == [10, 20, 30, 50, 60, 70]
    # AND a layout other than fixed-width records is refused, not misread
    with pytest.raises(ValueError, match="array_send layout"):
        bm25._decoded(_sent([1, 2], "i") + b"\0" * 8, None, None)


def test_ties_rank_by_chunk_id_and_the_limit_cuts_after_them() -> None:
    # GIVEN scores with ties across the cut
    ids = np.array([9, 3, 7, 1, 5], dtype=np.int64)
    scores = np.array([2.0, 3.0, 2.0, 1.0, 2.0])
    # WHEN the best 3 are taken
    top, top_scores = bm25.best(ids, scores, 3)
    # THEN score descending, then chunk id ascending, as bm25_search orders them
    assert top.tolist() == [3, 5, 7] and top_scores.tolist() == [3.0, 2.0, 2.0]
