"""The local commands embed with MiniLM (on ONNX Runtime when exported, else torch) when it
is installed; the library stays on hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ragline.config import Settings
from ragline.dev.commands import common, sync
from ragline.dev.stack import ENDPOINTS_FILE, Endpoints


def test_an_explicit_choice_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN RAGLINE_EMBEDDINGS set by the user
    monkeypatch.setenv("RAGLINE_EMBEDDINGS", "hash:64")
    # THEN the local commands keep it
    assert common.local_embeddings() == "hash:64"


@pytest.mark.parametrize(
    ("onnx_ready", "installed", "expected"),
    [(True, True, "minilm-onnx"), (True, False, "minilm-onnx"), (False, True, "minilm"),
     (False, False, "hash")],
)  # fmt: skip
def test_unset_it_is_minilm_onnx_when_exported_else_minilm_when_installed_else_hash(
    monkeypatch: pytest.MonkeyPatch, onnx_ready: bool, installed: bool, expected: str
) -> None:
    # GIVEN no RAGLINE_EMBEDDINGS, with or without the ONNX export and the minilm extra
    monkeypatch.delenv("RAGLINE_EMBEDDINGS", raising=False)
    monkeypatch.setattr(common, "_minilm_onnx_ready", lambda: onnx_ready)
    monkeypatch.setattr(common, "_minilm_installed", lambda: installed)
    # WHEN a local command picks its embedder
    chosen = common.local_embeddings()
    # THEN the ONNX model comes first, torch MiniLM next, and the handlers read the same choice
    assert chosen == expected
    assert Settings.from_env().embeddings == expected


def test_minilm_onnx_is_not_ready_without_its_export(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN a home directory whose cache holds no exported model
    monkeypatch.setattr(Path, "home", lambda: tmp_path)
    # THEN the local commands do not pick minilm-onnx (they would fail on every command)
    assert not common._minilm_onnx_ready()


def test_the_library_default_stays_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN no RAGLINE_EMBEDDINGS and no local command involved
    monkeypatch.delenv("RAGLINE_EMBEDDINGS", raising=False)
    # THEN the settings default (tests, and the Lambda functions' library) is hash
    assert Settings.from_env().embeddings == "hash"


def test_this_machine_has_minilm_installed() -> None:
    # `make setup` installs the minilm extra: the check must see it, or the default never applies
    assert common._minilm_installed()


@pytest.mark.parametrize("shell", [None, "minilm"])
def test_sync_embeds_with_the_local_stacks_embedder_not_the_shells(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, shell: str | None
) -> None:
    # GIVEN `ragline dev` running on hash (its endpoints file says so), and a shell with
    # RAGLINE_EMBEDDINGS unset (MiniLM by default here) or set to minilm
    endpoints = Endpoints("http://api", "http://s3", "b", "q", "d", {"RAGLINE_EMBEDDINGS": "hash"})
    (tmp_path / ENDPOINTS_FILE).write_text(endpoints.to_json())
    if shell is None:
        monkeypatch.delenv("RAGLINE_EMBEDDINGS", raising=False)
    else:
        monkeypatch.setenv("RAGLINE_EMBEDDINGS", shell)
    monkeypatch.setattr(common, "_minilm_installed", lambda: True)
    # WHEN `ragline sync` picks its embedder
    sync.stack_embeddings(tmp_path)
    # THEN it is the stack's, the one that wrote the store's vectors
    assert common.local_embeddings() == "hash"
    assert Endpoints.read(tmp_path) == endpoints


def test_an_endpoints_file_of_an_older_stack_still_reads(tmp_path: Path) -> None:
    written = {"api": "a", "s3": "s", "bucket": "b", "queue": "q", "dlq": "d", "later": 1}
    (tmp_path / ENDPOINTS_FILE).write_text(json.dumps(written))
    assert Endpoints.read(tmp_path).embedding_environment == {}


def test_this_machine_has_minilm_onnx_exported() -> None:
    # `make setup` installs the onnx extra and exports the model: the default must see it
    assert common._minilm_onnx_ready()
