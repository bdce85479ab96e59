"""Metadata filters against embedded PostgreSQL: every operator in SQL, injection
attempts, recall of filtered searches, and ``filter`` through the query Lambda; the store
and the Lambda through psycopg and through the Data API driver (tests/support/data_api.py)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from ragline.config import Settings
from ragline.embeddings import get_embedder
from ragline.filters import Compare, Exists, Member, Not, Range, parse_filter
from ragline.ingest import Ingestor
from ragline.rerankers.base import Ranked, RerankResult
from ragline.retrieval import Retriever
from ragline.store import ChunkWrite, DocumentWrite, Selection, Store, get_store
from ragline.store import search as store_search

from tests.support.data_api import DRIVERS, driver_settings
from tests.support.databases import create_database

COLLECTION = "default"
DOCUMENTS: dict[str, dict[str, Any]] = {
    "a": {"team": "search", "year": 2023, "tags": ["alpha", "beta"],
          "published": "2023-05-01", "draft": True},
    "b": {"team": "ads", "year": "2024", "published": "2024-02-10T09:00:00+02:00"},
    "c": {"team": "search", "year": 2025, "published": "2025-01-01"},
    "d": {},
    "e": {"team": "O'Brien", "published": "not a date", "year": "2024-02-30"},
}  # fmt: skip


def _text(name: str) -> bytes:
    return (
        f"# Policy {name}\n\n## Leave\nThe leave policy of team {name} grants vacation days.\n\n"
        f"## Travel\nThe travel policy of team {name} books trains for short trips.\n"
    ).encode()


def _seed(database_url: str) -> None:
    ingestor = Ingestor.from_settings(Settings(database_url=database_url))
    for name, attributes in DOCUMENTS.items():
        metadata = {"attributes": attributes} if attributes else {}
        ingestor.ingest_bytes(f"s3://docs/{name}.md", _text(name), metadata=metadata)
    get_store.cache_clear()


pytestmark = pytest.mark.both_drivers


@pytest.fixture(scope="module")
def seeded(database_url: str) -> str:
    _seed(database_url)
    return database_url


@pytest.fixture(scope="module", params=DRIVERS)
def store(postgres_server: str, request: pytest.FixtureRequest) -> Iterator[Store]:
    """A seeded database of its own, read through each driver in turn."""
    url = create_database(postgres_server, f"metadata_filters_{request.param}")
    _seed(url)
    with driver_settings(url, request.param) as settings:
        yield Store(settings)


def _matching(store: Store, where: Any) -> set[str]:
    node = where if not isinstance(where, dict) else parse_filter(where)
    selection = store.select(COLLECTION, 384, node)
    assert selection.document_ids is not None
    sources = {
        store.get_document(document_id).source  # type: ignore[union-attr]
        for document_id in selection.document_ids
    }
    return {s.removeprefix("s3://docs/").removesuffix(".md") for s in sources}


def _f(op: str, key: str, value: Any = None) -> dict[str, Any]:
    return {op: {"key": key} if op == "exists" else {"key": key, "value": value}}


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (_f("eq", "team", "search"), {"a", "c"}),
        (_f("eq", "tags", "alpha"), {"a"}),  # a list attribute holding the value
        (_f("eq", "draft", True), {"a"}),
        (_f("eq", "year", 2023.0), {"a"}),  # numbers compare as numbers
        (_f("eq", "year", "2024"), {"b"}),  # and strings as strings
        (_f("eq", "team", "O'Brien"), {"e"}),
        (_f("ne", "team", "search"), {"b", "d", "e"}),  # lacking the key is "not equal"
        (_f("in", "team", ["ads", "O'Brien"]), {"b", "e"}),
        (_f("in", "tags", ["beta", "gamma"]), {"a"}),
        (_f("nin", "team", ["search"]), {"b", "d", "e"}),
        (_f("gt", "year", 2023), {"b", "c"}),  # "2024" reads as a number; "2024-02-30" not
        (_f("gte", "year", 2023), {"a", "b", "c"}),
        (_f("lt", "year", 2024), {"a"}),
        (_f("lte", "year", 2024.5), {"a", "b"}),
        (_f("gte", "published", "2024-01-01"), {"b", "c"}),
        (_f("lt", "published", "2024-02-10T08:00:00Z"), {"a", "b"}),  # b is 07:00 UTC
        (_f("lte", "published", "2025-01-01"), {"a", "b", "c"}),  # a date alone: midnight UTC
        (_f("gt", "published", 0), set()),  # dates are not numbers
        (_f("exists", "draft"), {"a"}),
        ({"not": _f("exists", "draft")}, {"b", "c", "d", "e"}),
        ({"and": [_f("eq", "team", "search"), _f("gte", "year", 2024)]}, {"c"}),
        ({"or": [_f("eq", "team", "ads"), _f("exists", "draft")]}, {"a", "b"}),
        ({"not": {"or": [_f("eq", "team", "ads"), _f("exists", "draft")]}}, {"c", "d", "e"}),
        ({"not": _f("gt", "year", 2023)}, {"a", "d", "e"}),  # the exact complement
    ],
)
def test_every_operator_selects_the_right_documents(
    store: Store, where: dict[str, Any], expected: set[str]
) -> None:
    # GIVEN five documents with attributes WHEN a filter selects among them
    # THEN exactly the documents it describes are selected
    assert _matching(store, where) == expected


@pytest.mark.parametrize(
    "node",
    [
        Compare("eq", "team') OR true --", "x"),
        Compare("eq", "team", "search' OR '1'='1"),
        Member("in", "team", ("x'); DROP TABLE documents; --",)),
        Exists("'; DROP TABLE documents; --"),
        Range("gt", "year') OR true OR ('", 0),
        Not(Exists('team" OR 1=1')),
    ],
)
def test_injection_attempts_in_keys_and_values_are_only_data(store: Store, node: Any) -> None:
    # GIVEN a filter tree built past the API's key check, holding SQL in a key or value
    # WHEN it selects THEN it matches as a plain (absent) key or value would
    expected = {"a", "b", "c", "d", "e"} if isinstance(node, Not) else set()
    assert _matching(store, node) == expected
    # AND the documents are all still there
    assert store.connection().execute("SELECT count(*) FROM documents").fetchone()[0] == 5  # type: ignore[index]


# --- recall: k results when k matching chunks exist ---------------------------------------

RECALL_COLLECTION = "recall"
DIMENSIONS = 384


@pytest.fixture(scope="module")
def many(store: Store) -> dict[str, Any]:
    """3,000 random chunks in 300 documents; 3 documents (1%) are "rare"."""
    rng = np.random.default_rng(7)
    store.ensure_collection(RECALL_COLLECTION, "test:random", DIMENSIONS)
    words = ["policy", "leave", "travel", "budget", "audit", "review", "safety", "hiring"]
    for index in range(300):
        attributes = {"kind": "rare" if index % 100 == 0 else "common", "n": index}
        document = DocumentWrite(
            RECALL_COLLECTION, f"s3://recall/{index}.md", metadata={"attributes": attributes}
        )
        chunks = [
            ChunkWrite(ordinal, "", " ".join(rng.choice(words, size=12)) + f" item{index}", 14)
            for ordinal in range(10)
        ]
        vectors = rng.standard_normal((10, DIMENSIONS)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        store.save_document(document, chunks, vectors, embedding_model="test:random")
    query = rng.standard_normal(DIMENSIONS).astype(np.float32)
    return {"query": query / np.linalg.norm(query)}


def _exact_nearest(store: Store, query: np.ndarray, kind: str, k: int) -> list[int]:
    rows = store.connection().execute(
        "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id"
        " WHERE c.collection = %s AND d.metadata -> 'attributes' ->> 'kind' = %s"
        " ORDER BY c.embedding::halfvec(384) <=> %s::halfvec(384), c.id LIMIT %s",
        (RECALL_COLLECTION, kind, query, k),
    )
    return [row[0] for row in rows]


def test_a_selective_filter_returns_the_exact_k_nearest(store: Store, many: dict[str, Any]) -> None:
    # GIVEN 30 "rare" chunks among 3,000 (1%)
    rare = parse_filter(_f("eq", "kind", "rare"))
    selection = store.select(RECALL_COLLECTION, DIMENSIONS, rare)
    assert selection.chunks == 30 and selection.total is not None and selection.total >= 3000
    # WHEN the filtered vector search asks for 10
    found = store.vector_search(RECALL_COLLECTION, many["query"], 10, selection=selection)
    # THEN it returns 10, and they are exactly the 10 nearest rare chunks
    assert [c.chunk_id for c in found] == _exact_nearest(store, many["query"], "rare", 10)
    # AND a broad filter (99%) walks the HNSW index and still returns 10 matching chunks
    common = store.select(RECALL_COLLECTION, DIMENSIONS, parse_filter(_f("eq", "kind", "common")))
    found = store.vector_search(RECALL_COLLECTION, many["query"], 10, selection=common)
    assert len(found) == 10
    assert set(c.document_id for c in found) <= set(common.document_ids or [])


def _hnsw_only(store: Store, query: np.ndarray, documents: list[Any], mode: str) -> list[int]:
    """The filtered search through the HNSW index alone: the filter made unindexable and
    sequential scans off, so the planner cannot fall back to an exact scan."""
    conn = store.connection()
    with conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")
        conn.execute("SET LOCAL hnsw.ef_search = 40")
        conn.execute(f"SET LOCAL hnsw.iterative_scan = {mode}")
        rows = conn.execute(
            "SELECT id FROM chunks WHERE dimensions = 384 AND (collection = %s) IS TRUE"
            " AND (document_id = ANY(%s)) IS TRUE"
            " ORDER BY embedding::halfvec(384) <=> %s::halfvec(384) LIMIT 10",
            (RECALL_COLLECTION, documents, query),
        ).fetchall()
    return [row[0] for row in rows]


def test_hnsw_alone_loses_the_rows_the_exact_path_finds(store: Store, many: dict[str, Any]) -> None:
    # GIVEN the same 1% filter
    selection = store.select(RECALL_COLLECTION, DIMENSIONS, parse_filter(_f("eq", "kind", "rare")))
    # WHEN it is searched through HNSW alone, without iterative scans (the failure the
    # exact path avoids: the walk meets too few rare chunks), and by ragline
    hnsw = _hnsw_only(store, many["query"], selection.document_ids or [], "off")
    found = store.vector_search(RECALL_COLLECTION, many["query"], 10, selection=selection)
    # THEN HNSW alone returns fewer than 10; ragline returns all 10
    assert len(hnsw) < 10
    assert len(found) == 10


@pytest.mark.parametrize("exact_max_chunks", [0, 100_000])
def test_filtered_keyword_search_is_exact_either_way(
    store: Store, many: dict[str, Any], exact_max_chunks: int
) -> None:
    # GIVEN the 1% filter, and the collection's unfiltered BM25 ranking filtered by hand
    selection = store.select(RECALL_COLLECTION, DIMENSIONS, parse_filter(_f("eq", "kind", "rare")))
    conn = store.connection()
    everything = store_search.keyword_search(conn, RECALL_COLLECTION, "audit safety", 3000)
    rare = set(selection.document_ids or [])
    expected = [c.chunk_id for c in everything if c.document_id in rare][:10]
    # WHEN the filtered keyword search scores the selection whole, or reads the ranking
    # deeper and deeper (exact_max_chunks 0)
    # (each scorer the driver offers: the client's reads binary results, psycopg only)
    scorers = ["sql", "client"] if store.settings.database_driver == "psycopg" else ["sql"]
    for scorer in scorers:
        found = store_search.keyword_search(
            conn, RECALL_COLLECTION, "audit safety", 10, selection=selection,
            exact_max_chunks=exact_max_chunks, scorer=scorer,
        )  # fmt: skip
        # THEN both return the 10 best rare chunks, scored as unfiltered search scores them
        assert len(expected) == 10
        assert [c.chunk_id for c in found] == expected, scorer
        by_id = {c.chunk_id: c.score for c in everything}
        assert all(c.score == pytest.approx(by_id[c.chunk_id]) for c in found)


def test_an_empty_selection_finds_nothing(store: Store, many: dict[str, Any]) -> None:
    nothing = store.select(RECALL_COLLECTION, DIMENSIONS, parse_filter(_f("eq", "kind", "x")))
    assert nothing == Selection(0, [], nothing.total, nothing.collection_chunks)
    assert store.vector_search(RECALL_COLLECTION, many["query"], 10, selection=nothing) == []
    assert store.keyword_search(RECALL_COLLECTION, "policy", 10, selection=nothing) == []


class RecordingReranker:
    """A reranker that keeps the search's order and records what it was given."""

    name = "test:recording"

    def __init__(self) -> None:
        self.documents: list[str] = []

    def rerank(self, query: str, documents: list[str], top_k: int) -> RerankResult:
        self.documents.extend(documents)
        ranked = [Ranked(i, 1.0 - i / 100) for i in range(len(documents))]
        return RerankResult(ranked[:top_k], len(documents), 1, 0.0)


def test_the_reranker_sees_only_filtered_candidates(seeded: str) -> None:
    # GIVEN a retriever with a reranker
    settings = Settings(database_url=seeded)
    reranker = RecordingReranker()
    retriever = Retriever(Store(settings), get_embedder(settings), reranker)  # type: ignore[arg-type]
    # WHEN it searches with a filter
    found = retriever.search(
        "leave policy", collection=COLLECTION, top_k=3,
        where=parse_filter(_f("eq", "team", "ads")),
    )  # fmt: skip
    # THEN every candidate the reranker read, and every result, is of document b
    assert reranker.documents and all("team b" in text for text in reranker.documents)
    assert {c.source for c in found.chunks} == {"s3://docs/b.md"}


# --- through the query Lambda -----------------------------------------------------------


@pytest.fixture
def call(
    seeded: str,
    database_environment: dict[str, str],
    cold_start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
) -> Callable[..., tuple[int, Any]]:
    api = cold_start("query", **database_environment)

    def send(path: str, body: Any) -> tuple[int, Any]:
        request = copy.deepcopy(event("api_query"))
        request.update(httpMethod="POST", path=path, body=json.dumps(body))
        response = api.lambda_handler(request, lambda_context)
        return response["statusCode"], json.loads(response["body"])

    return send


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_retrieve_filters_in_every_mode(call: Callable[..., Any], mode: str) -> None:
    # GIVEN two documents of team "search" (a, c) among five, two chunks each
    where = {"and": [_f("eq", "team", "search"), {"not": _f("exists", "missing")}]}
    # WHEN /retrieve asks for 10 passages with the filter
    status, body = call(
        "/retrieve", {"query": "leave policy vacation", "mode": mode, "top_k": 10, "filter": where}
    )
    # THEN every passage is from a or c, and all four of their chunks come back
    assert status == 200, body
    sources = [r["source"] for r in body["results"]]
    assert set(sources) == {"s3://docs/a.md", "s3://docs/c.md"}
    assert len(sources) == 4


def test_query_cites_only_filtered_documents(call: Callable[..., Any]) -> None:
    where = _f("gte", "published", "2024-06-01")
    status, body = call("/query", {"question": "What does the travel policy say?", "filter": where})
    assert status == 200, body
    assert body["citations"] and {c["source"] for c in body["citations"]} == {"s3://docs/c.md"}


@pytest.mark.parametrize("path", ["/query", "/retrieve"])
def test_a_bad_filter_is_a_400_naming_the_part(call: Callable[..., Any], path: str) -> None:
    field = "question" if path == "/query" else "query"
    bad = {"and": [_f("eq", "team", "a"), _f("gte", "year", [2023])]}
    status, body = call(path, {field: "leave", "filter": bad})
    assert status == 400
    assert "filter.and[1].gte.value: must be a number or an ISO date" in body["message"]
    status, body = call(path, {field: "leave", "filter": _f("eq", "x' OR 1=1 --", 1)})
    assert status == 400 and "filter.eq.key" in body["message"]


def test_the_openapi_document_describes_filter(
    seeded: str, cold_start: Callable[..., ModuleType]
) -> None:
    # GIVEN the query Lambda WHEN its OpenAPI document is built
    api = cold_start("query", RAGLINE_DATABASE_URL=seeded)
    document = api.app.get_openapi_schema().model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    schemas = document["components"]["schemas"]
    # THEN both request bodies reference the filter grammar, which names every operator
    reference = {"$ref": "#/components/schemas/MetadataFilter"}
    for model in ("QueryRequest", "RetrieveRequest"):
        assert reference in schemas[model]["properties"]["filter"]["anyOf"]
    operators = {
        name for branch in schemas["MetadataFilter"]["anyOf"] for name in branch["properties"]
    }
    assert operators == {
        "eq", "ne", "in", "nin", "gt", "gte", "lt", "lte", "exists", "and", "or", "not",
    }  # fmt: skip
