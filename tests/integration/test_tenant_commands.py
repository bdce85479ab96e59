"""``ragline ingest``, ``ask`` and ``eval`` acting as a tenant (``--tenant``), in-process:
the files become the tenant's documents in its collection, which the tenant can ask and
the default tenant cannot see; an unknown tenant is refused before anything is done."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from ragline.config import get_settings
from ragline.dev.cli import main
from ragline.ingest import get_ingestor
from ragline.tenancy import get_keys

from tests.conftest import clear_caches

NOTE = b"# Harbour\n\nThe acme ferry leaves the harbour at seven with the tide.\n"
QUESTION = "When does the acme ferry leave the harbour?"


@pytest.fixture
def environment(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The commands' settings, read afresh: the test database, the hash embedder, the
    extractive model; tenant ``acme`` exists."""
    monkeypatch.setenv("RAGLINE_DATABASE_URL", database_url)
    monkeypatch.setenv("RAGLINE_EMBEDDINGS", "hash")
    monkeypatch.setenv("RAGLINE_LLM", "extractive")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    clear_caches()
    get_ingestor().store.connection().execute("TRUNCATE documents CASCADE")
    get_keys(get_settings()).create("acme", ["query"], name="commands")
    yield
    clear_caches()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_ingest_and_ask_act_for_the_tenant_given(
    environment: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a local file
    note = tmp_path / "harbour.md"
    note.write_bytes(NOTE)
    # WHEN it is ingested for tenant acme into a collection of its own
    code, out, err = _run(
        capsys, "ingest", str(note), "--collection", "acme-notes", "--tenant", "acme", "--quiet"
    )
    assert code == 0, err
    # THEN it is acme's document in acme's collection
    store = get_ingestor().store
    assert store.collection_owner("acme-notes") == "acme"
    (document,), _ = store.list_documents(tenant="acme")
    assert (document.collection, document.status) == ("acme-notes", "ingested")
    assert store.list_documents(tenant="default")[0] == []
    # AND acme can ask it, answered from that document
    ask = ("ask", QUESTION, "--collection", "acme-notes", "--json")
    code, out, err = _run(capsys, *ask, "--tenant", "acme")
    assert code == 0, err
    answer = json.loads(out)
    assert [c["source"] for c in answer["citations"]] == [note.resolve().as_uri()]
    # AND so can its streamed answer
    code, out, err = _run(capsys, *ask, "--tenant", "acme", "--stream")
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["event"] == "final"
    # AND the default tenant (no --tenant) is told the collection does not exist
    code, out, _ = _run(capsys, *ask)
    assert code == 1 and json.loads(out)["statusCode"] == 404


def test_an_unknown_tenant_is_refused_before_anything_is_done(
    environment: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    note = tmp_path / "harbour.md"
    note.write_bytes(NOTE)
    # WHEN a command names a tenant the store does not know, or no tenant name at all
    code, _, err = _run(capsys, "ingest", str(note), "--tenant", "nobody", "--quiet")
    # THEN it is refused, saying how to make one, and nothing is stored
    assert code == 2 and "no tenant 'nobody'" in err and "ragline keys create" in err
    assert get_ingestor().store.list_documents()[0] == []
    code, out, _ = _run(capsys, "ask", QUESTION, "--tenant", "Not A Name", "--json")
    assert code == 1 and json.loads(out)["statusCode"] == 400
