"""A first load through ``ragline ingest`` builds the vector index once, after its rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ragline.config import Settings
from ragline.dev.cli import main
from ragline.store import get_store

from tests.conftest import clear_caches

# A vector size no other test stores: the load below is this dimension's first.
DIMENSIONS = 41
INDEX = f"chunks_embedding_hnsw_{DIMENSIONS}"


@pytest.fixture
def environment(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("RAGLINE_DATABASE_URL", database_url)
    monkeypatch.setenv("RAGLINE_EMBEDDINGS", f"hash:{DIMENSIONS}")
    monkeypatch.setenv("RAGLINE_INDEX_BUILD_MEMORY_MB", "64")
    clear_caches()
    yield
    clear_caches()


def _index_exists(database_url: str) -> bool:
    conn = get_store(Settings(database_url=database_url)).connection()
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (INDEX,)).fetchone()
    return bool(row and row[0])


@pytest.mark.usefixtures("environment")
def test_a_first_load_indexes_its_vectors_once_after_writing_them(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # GIVEN three documents and a store holding no vector of their size
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for n, topic in enumerate(("tides", "kayaks", "lanterns")):
        (corpus / f"{topic}.md").write_text(f"# {topic}\n\nAll about {topic}, part {n}.\n")
    from ragline.store.facade import Store

    seen: list[bool] = []  # whether the index existed as each document was saved
    save = Store.write

    def spying_save(self: Store, *args: object, **kwargs: object) -> object:
        seen.append(_index_exists(database_url))
        return save(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "write", spying_save)
    # WHEN they are ingested into a fresh collection
    assert main(["ingest", str(corpus), "--collection", "bulk-first", "--quiet"]) == 0
    # THEN no document was written through the index, which exists once the load is over
    assert seen == [False, False, False]
    assert _index_exists(database_url)
    # AND vector search can go through it
    conn = get_store(Settings(database_url=database_url)).connection()
    with conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")
        plan = conn.execute(
            f"EXPLAIN SELECT id FROM chunks WHERE dimensions = {DIMENSIONS}"
            f" ORDER BY embedding::halfvec({DIMENSIONS}) <=> (SELECT embedding::halfvec"
            f"({DIMENSIONS}) FROM chunks WHERE collection = 'bulk-first' LIMIT 1) LIMIT 3"
        ).fetchall()
    assert INDEX in "\n".join(row[0] for row in plan)

    # WHEN more documents of that size arrive later
    seen.clear()
    (corpus / "harbour.md").write_text("# harbour\n\nAll about the harbour.\n")
    (corpus / "ferry.md").write_text("# ferry\n\nAll about the ferry.\n")
    assert main(["ingest", str(corpus), "--collection", "bulk-later", "--quiet"]) == 0
    # THEN the index stays (other collections search through it) and takes them row by row
    assert seen and all(seen)
