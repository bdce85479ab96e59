"""A first load through ``ragline ingest`` builds the vector index once, after its rows."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ragline.config import Settings
from ragline.dev.cli import main
from ragline.documents.loaders import registry
from ragline.documents.loaders.base import Loader, ParsedDocument
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


@pytest.mark.usefixtures("environment")
def test_files_ingested_two_at_a_time_fail_alone_and_rank_as_one_at_a_time(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN documents sharing words, a file whose parser hangs (past a 1 s deadline) and
    # one that cannot be parsed, in two directories (two sources each)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    words = ("tide", "kayak", "lantern", "harbour", "ferry", "paddle", "buoy", "quay")
    for n in range(12):
        body = " ".join(words[(n + k) % len(words)] for k in range(n % 5 + 2))
        (corpus / f"doc{n:02}.md").write_text(f"# Part {n}\n\n{body}. The {words[n % 8]} log.\n")
    (corpus / "hangs.rst").write_text("Never read to the end.\n")
    (corpus / "broken.json").write_text("{")
    shutil.copytree(corpus, tmp_path / "copy")

    def hang(text: str) -> ParsedDocument:
        time.sleep(30)
        return ParsedDocument("never", "rst", [])

    # (the parse child is forked from the ingesting thread, so it runs this loader too)
    monkeypatch.setitem(registry._LOADERS, "rst", Loader("rst", (".rst",), parse=hang))
    monkeypatch.setenv("RAGLINE_PARSE_TIMEOUT_SECONDS", "1")
    conn = get_store(Settings(database_url=database_url)).connection()
    for concurrency, collection, directory in (
        (1, "one-at-a-time", corpus), (2, "two-at-a-time", tmp_path / "copy")
    ):  # fmt: skip
        monkeypatch.setenv("RAGLINE_INGEST_CONCURRENCY", str(concurrency))
        clear_caches()
        # WHEN they are ingested one at a time, then two at a time
        assert main(["ingest", str(directory), "--collection", collection, "--quiet"]) == 1
        # THEN the hostile files failed with their reasons, and every other was ingested
        statuses = dict(
            conn.execute(
                "SELECT regexp_replace(source, '.*/', ''), status || ': ' || coalesce(error, '')"
                " FROM documents WHERE collection = %s", (collection,),
            ).fetchall()
        )  # fmt: skip
        assert statuses.pop("hangs.rst") == "failed: parsing took longer than 1 s " + (
            "(RAGLINE_PARSE_TIMEOUT_SECONDS)"
        )
        assert statuses.pop("broken.json").startswith("failed: invalid JSON")
        assert statuses == {f"doc{n:02}.md": "ingested: " for n in range(12)}
    # AND keyword search ranks the same chunks with the same scores either way
    store = get_store(Settings(database_url=database_url))
    for question in ("kayak lantern", "ferry", "buoy quay log", "harbour tide paddle"):
        ranked = [
            [(hit.text, round(hit.score, 9)) for hit in store.keyword_search(c, question, 20)]
            for c in ("one-at-a-time", "two-at-a-time")
        ]
        assert ranked[0] and ranked[0] == ranked[1]
    totals = conn.execute(
        "SELECT s.collection, s.chunks, s.tokens, (SELECT count(*) FROM chunks c"
        " WHERE c.collection = s.collection) FROM bm25_collections s"
        " WHERE s.collection IN ('one-at-a-time', 'two-at-a-time') ORDER BY 1"
    ).fetchall()
    first, second = [row[1:] for row in totals]
    assert first == second and first[0] == first[2] == 12
