"""Hybrid search's keyword half on a thread of its own (RAGLINE_HYBRID_PARALLEL).

The keyword search starts before the query is embedded and runs while the vector search
does, on the retriever's worker thread and its own connection, through psycopg and the
Data API driver: the same results as one after the other, errors from either half
raised to the caller, and never a keyword search left running after a search returns.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from ragline.answer import Answerer
from ragline.answer.routing import Router
from ragline.config import Settings
from ragline.embeddings.base import EmbeddingResult
from ragline.embeddings.hash import HashEmbedder
from ragline.errors import ModelError
from ragline.filters import parse_filter
from ragline.ingest import Ingestor
from ragline.retrieval import Retriever
from ragline.store import Store, get_store

pytestmark = pytest.mark.both_drivers

DOCUMENTS = {
    "s3://docs/lighthouse.md": b"# Lighthouse\n\nThe Quillfeather lighthouse opens at 7:15"
    b" on Saturdays. Its lamp turns twice a minute.\n",
    "s3://docs/harbour.md": b"# Harbour\n\nThe harbour master keeps the tide tables. Boats"
    b" moor at the north quay; the lighthouse keeper rows out at dawn.\n",
    "s3://docs/ferry.md": b"# Ferry\n\nThe ferry leaves the harbour at 9:00 and 17:30. Tickets"
    b" are sold on board; bicycles travel free on Saturdays.\n",
}
QUERIES = ["lighthouse saturdays", "harbour tide tables", "ferry tickets bicycles", "!!!"]


@pytest.fixture(scope="module")
def seeded(database_url: str) -> str:
    ingestor = Ingestor.from_settings(Settings(database_url=database_url))
    for uri, body in DOCUMENTS.items():
        place = "harbour" if "lighthouse" not in uri else "headland"
        ingestor.ingest_bytes(uri, body, metadata={"place": place})
    get_store.cache_clear()
    return database_url


class Watched(Store):
    """A store that records which thread ran each keyword search, and when it ended."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.keyword_threads: list[str] = []
        self.keyword_started = threading.Event()
        self.keyword_done = threading.Event()
        self.fail_keyword = False

    def keyword_search(self, *args: Any, **kwargs: Any) -> Any:
        self.keyword_threads.append(threading.current_thread().name)
        self.keyword_started.set()
        try:
            if self.fail_keyword:
                raise RuntimeError("keyword half failed")
            return super().keyword_search(*args, **kwargs)
        finally:
            self.keyword_done.set()


def _key(retrieved: Any) -> list[tuple[int, float, float | None]]:
    return [(c.chunk_id, c.score, c.similarity) for c in retrieved.chunks]


@pytest.mark.parametrize("where", [None, {"eq": {"key": "place", "value": "harbour"}}])
def test_parallel_and_sequential_hybrid_search_return_the_same(seeded: str, where: Any) -> None:
    # GIVEN two retrievers over one store, one running the keyword half on its worker
    store = Store(Settings(database_url=seeded))
    parallel = Retriever(store, HashEmbedder(), parallel=True)
    sequential = Retriever(store, HashEmbedder(), parallel=False)
    condition = parse_filter(where) if where is not None else None
    for query in QUERIES:
        for top_k in (1, 3, 10):
            # WHEN each searches the same query, filtered or not
            found = [
                r.search(query, collection="default", top_k=top_k, mode="hybrid", where=condition)
                for r in (parallel, sequential)
            ]
            # THEN the chunks, scores and similarities are the same
            assert _key(found[0]) == _key(found[1]), (query, top_k)
    assert _key(parallel.search("lighthouse", collection="default", top_k=3))  # not vacuous


def test_the_keyword_half_runs_on_one_kept_worker_thread(seeded: str) -> None:
    # GIVEN a parallel retriever
    store = Watched(Settings(database_url=seeded))
    retriever = Retriever(store, HashEmbedder(), parallel=True)
    # WHEN it runs two hybrid searches and a keyword search
    retriever.search("lighthouse", collection="default", top_k=3, mode="hybrid")
    retriever.search("ferry", collection="default", top_k=3, mode="hybrid")
    retriever.search("ferry", collection="default", top_k=3, mode="keyword")
    # THEN the hybrid searches' keyword halves ran on the same worker thread, not the
    # caller's; the keyword mode runs on the caller's
    caller = threading.current_thread().name
    first, second, alone = store.keyword_threads
    assert first == second != caller
    assert first.startswith("ragline-keyword")
    assert alone == caller


class Gated(HashEmbedder):
    """An embedder that waits for the keyword half to start before it embeds a query."""

    def __init__(self, started: threading.Event) -> None:
        super().__init__()
        self.started = started
        self.overlapped: list[bool] = []

    def embed_query(self, text: str) -> EmbeddingResult:
        self.overlapped.append(self.started.wait(timeout=2))
        return super().embed_query(text)


@pytest.mark.parametrize(("parallel", "overlapped"), [(True, True), (False, False)])
def test_the_keyword_half_runs_while_the_query_is_embedded(
    seeded: str, parallel: bool, overlapped: bool
) -> None:
    # GIVEN an embedder that embeds only once a keyword search has started (or 2 s)
    store = Watched(Settings(database_url=seeded))
    embedder = Gated(store.keyword_started)
    retriever = Retriever(store, embedder, parallel=parallel)
    # WHEN a hybrid search runs
    found = retriever.search("lighthouse", collection="default", top_k=3, mode="hybrid")
    # THEN in parallel the keyword search was under way while the query was embedded;
    # one after the other, it had not started
    assert embedder.overlapped == [overlapped]
    assert found.chunks


class Failing(HashEmbedder):
    def embed_query(self, text: str) -> EmbeddingResult:
        raise ModelError("the embedding endpoint is down")


def test_a_failing_vector_half_raises_after_its_keyword_half_ended(seeded: str) -> None:
    # GIVEN a parallel retriever whose embedder fails
    store = Watched(Settings(database_url=seeded))
    retriever = Retriever(store, Failing(), parallel=True)
    # WHEN a hybrid search runs
    with pytest.raises(ModelError, match="endpoint is down"):
        retriever.search("lighthouse", collection="default", top_k=3, mode="hybrid")
    # THEN the keyword half had ended before the error reached the caller
    assert store.keyword_done.is_set()


def test_a_failing_keyword_half_raises_to_the_caller(seeded: str) -> None:
    # GIVEN a parallel retriever whose keyword search fails
    store = Watched(Settings(database_url=seeded))
    store.fail_keyword = True
    retriever = Retriever(store, HashEmbedder(), parallel=True)
    # WHEN a hybrid search runs
    # THEN the keyword half's error is the search's
    with pytest.raises(RuntimeError, match="keyword half failed"):
        retriever.search("lighthouse", collection="default", top_k=3, mode="hybrid")
    # AND the next search, once the keyword search works, succeeds on the same worker
    store.fail_keyword = False
    assert retriever.search("lighthouse", collection="default", top_k=3, mode="hybrid").chunks


@pytest.mark.parametrize(("value", "parallel"), [(None, True), ("false", False), ("true", True)])
def test_the_answerer_takes_the_setting(
    seeded: str, monkeypatch: pytest.MonkeyPatch, value: str | None, parallel: bool
) -> None:
    # GIVEN RAGLINE_HYBRID_PARALLEL unset, false or true
    if value is None:
        monkeypatch.delenv("RAGLINE_HYBRID_PARALLEL", raising=False)
    else:
        monkeypatch.setenv("RAGLINE_HYBRID_PARALLEL", value)
    settings = Settings.from_env().with_overrides(database_url=seeded)
    # WHEN an answerer is built
    answerer = Answerer(settings, Store(settings), HashEmbedder(), Router.from_settings(settings))
    # THEN its retriever runs the keyword half as set
    assert answerer.retriever.parallel is parallel
