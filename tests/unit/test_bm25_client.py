"""The client BM25 scorer's arithmetic and decoding, without a database (the rankings
against bm25_search are tests/integration/test_bm25.py's)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from ragline.store import bm25


def _packed(postings: list[tuple[int, int, int]]) -> bytes:
    """Postings as migration 0012's bm25_pack writes them: per posting the chunk id
    (int8), tf (int2) and length (int4), big-endian (int8send, int2send, int4send)."""
    return b"".join(struct.pack(">qhi", *posting) for posting in postings)


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


def test_postings_decode_from_packed_records_in_chunk_order() -> None:
    # GIVEN two blocks concatenated out of order (a plan that read the second first)
    packed = _packed([(300, 5, 50), (301, 6, 60), (950, 7, 70)]) + _packed(
        [(4, 1, 10), (17, 2, 20), (2**40 + 42, 256, 2**31 - 1)]
    )
    # WHEN they are decoded
    chunks, counts, sizes = bm25._decoded(packed)
    # THEN the postings are in chunk id order, each with its own tf and length
    assert chunks.tolist() == [4, 17, 300, 301, 950, 2**40 + 42]
    assert counts.tolist() == [1, 2, 5, 6, 7, 256]
    assert sizes.tolist() == [10, 20, 50, 60, 70, 2**31 - 1]
    # AND nothing decodes to empty postings
    assert [a.size for a in bm25._decoded(None)] == [0, 0, 0]


def test_a_buffer_that_is_not_whole_records_is_refused() -> None:
    # GIVEN buffers whose length is not a multiple of 14 bytes (a record cut short, or
    # the arrays of migration 0010 read as array_send writes them)
    cut = _packed([(4, 1, 10), (17, 2, 20)])[:-3]
    array_send = struct.pack(">iq", 8, 4) * 3
    for buffer in (cut, array_send):
        # WHEN it is decoded
        # THEN it is refused, not misread
        with pytest.raises(ValueError, match="not a run of 14-byte records"):
            bm25._decoded(buffer)


def test_ties_rank_by_chunk_id_and_the_limit_cuts_after_them() -> None:
    # GIVEN scores with ties across the cut
    ids = np.array([9, 3, 7, 1, 5], dtype=np.int64)
    scores = np.array([2.0, 3.0, 2.0, 1.0, 2.0])
    # WHEN the best 3 are taken
    top, top_scores = bm25.best(ids, scores, 3)
    # THEN score descending, then chunk id ascending, as bm25_search orders them
    assert top.tolist() == [3, 5, 7] and top_scores.tolist() == [3.0, 2.0, 2.0]
