"""The token estimate used for chunk sizes, request budgets and estimated usage."""

from __future__ import annotations

from ragline.tokens import count_tokens


def test_token_estimate_tracks_words_and_punctuation() -> None:
    assert count_tokens("") == 0
    assert count_tokens("a b c") == 3
    assert count_tokens("token_urlsafe(16).") == 4 + 4  # 13 chars -> 4 pieces, "16", 3 marks
    assert count_tokens("internationalization") == 5
