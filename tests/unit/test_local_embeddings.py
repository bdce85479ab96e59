"""The local commands embed with MiniLM when it is installed; the library stays on hash."""

from __future__ import annotations

import pytest
from ragline.config import Settings
from ragline.dev.commands import common


def test_an_explicit_choice_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN RAGLINE_EMBEDDINGS set by the user
    monkeypatch.setenv("RAGLINE_EMBEDDINGS", "hash:64")
    # THEN the local commands keep it
    assert common.local_embeddings() == "hash:64"


@pytest.mark.parametrize(("installed", "expected"), [(True, "minilm"), (False, "hash")])
def test_unset_it_is_minilm_when_installed_else_hash(
    monkeypatch: pytest.MonkeyPatch, installed: bool, expected: str
) -> None:
    # GIVEN no RAGLINE_EMBEDDINGS, with or without the minilm extra
    monkeypatch.delenv("RAGLINE_EMBEDDINGS", raising=False)
    monkeypatch.setattr(common, "_minilm_installed", lambda: installed)
    # WHEN a local command picks its embedder
    chosen = common.local_embeddings()
    # THEN it is MiniLM only when the extra is there, and the handlers read the same choice
    assert chosen == expected
    assert Settings.from_env().embeddings == expected


def test_the_library_default_stays_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN no RAGLINE_EMBEDDINGS and no local command involved
    monkeypatch.delenv("RAGLINE_EMBEDDINGS", raising=False)
    # THEN the settings default (tests, and the Lambda functions' library) is hash
    assert Settings.from_env().embeddings == "hash"


def test_this_machine_has_minilm_installed() -> None:
    # `make setup` installs the minilm extra: the check must see it, or the default never applies
    assert common._minilm_installed()
