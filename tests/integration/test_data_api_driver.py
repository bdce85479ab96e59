"""The Data API driver's own behaviour: what its requests look like, how chunk writes are
batched in one transaction, and Aurora resuming from 0 ACU. The store's behaviour through
it is the store tests' (they run through both drivers)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from ragline.config import Settings
from ragline.errors import ConfigurationError, DatabaseUnavailableError
from ragline.store import ChunkWrite, DocumentWrite, Store
from ragline.store import data_api as driver
from ragline.store.data_api import DataApiDatabase

from tests.support.data_api import SECRET_ARN, DataApiAdapter, driver_settings
from tests.support.databases import create_database


@pytest.fixture(scope="module")
def adapted(postgres_server: str) -> Iterator[tuple[Store, DataApiAdapter]]:
    adapters: list[DataApiAdapter] = []
    original = DataApiAdapter.attach

    def remember(self: DataApiAdapter, events: object) -> None:
        adapters.append(self)
        original(self, events)

    url = create_database(postgres_server, "data_api_driver")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DataApiAdapter, "attach", remember)
        with driver_settings(url, "data-api") as settings:
            store = Store(settings)
            store.migrate()
            yield store, adapters[0]


class Clock:
    """A clock that moves only when slept on, recording the waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def document(
    source: str, count: int, dims: int = 8
) -> tuple[DocumentWrite, list[ChunkWrite], np.ndarray]:
    chunks = [ChunkWrite(i, "s", f"otters {i} " + "x" * 200, 40, {"page": i}) for i in range(count)]
    vectors = np.random.default_rng(count).random((count, dims), dtype=np.float32)
    return DocumentWrite("batched", source, content_hash=f"h{count}"), chunks, vectors


def test_vectors_travel_as_text_cast_to_vector_and_values_carry_type_hints(
    adapted: tuple[Store, DataApiAdapter],
) -> None:
    # GIVEN a store over the Data API
    store, adapter = adapted
    store.ensure_collection("batched", "hash:8", 8)
    doc, chunks, vectors = document("s3://b/hints.txt", 2)
    saved = store.save_document(doc, chunks, vectors, embedding_model="hash:8")
    adapter.calls.clear()
    # WHEN it reads a document by id and searches by vector
    store.get_document(saved.id)
    store.vector_search("batched", vectors[0], 1)
    # THEN the id is a UUID-hinted string, the vector a string the SQL casts to halfvec
    requests = [request for op, request in adapter.calls if op == "ExecuteStatement"]
    by_id = next(r for r in requests if "WHERE id = :p1" in r["sql"])
    assert by_id["parameters"] == [
        {"name": "p1", "value": {"stringValue": str(saved.id)}, "typeHint": "UUID"}
    ]
    search = next(r for r in requests if ":q::halfvec(8)" in r["sql"])
    (vector,) = [p for p in search["parameters"] if p["name"] == "q"]
    assert vector["value"]["stringValue"].startswith("[")
    assert "%(" not in search["sql"] and "%s" not in search["sql"]


def test_chunk_writes_are_batched_under_the_request_limit_in_one_transaction(
    adapted: tuple[Store, DataApiAdapter], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN batches cut at about 3 KiB of parameters (each chunk row is near 1 KiB)
    store, adapter = adapted
    monkeypatch.setattr(driver, "BATCH_BYTES", 3 * 1024)
    store.ensure_collection("batched", "hash:8", 8)
    doc, chunks, vectors = document("s3://b/many.txt", 12)
    adapter.calls.clear()
    # WHEN a document of 12 chunks is saved
    saved = store.save_document(doc, chunks, vectors, embedding_model="hash:8")
    # THEN the chunks went in several BatchExecuteStatement calls, all in the one
    # transaction that was committed, and all of them are stored
    batches = [request for op, request in adapter.calls if op == "BatchExecuteStatement"]
    assert len(batches) > 1
    assert sum(len(b["parameterSets"]) for b in batches) == 12
    (begun,) = [op for op, _ in adapter.calls if op == "BeginTransaction"]
    assert begun and {b["transactionId"] for b in batches} == {
        r["transactionId"] for op, r in adapter.calls if op == "CommitTransaction"
    }
    assert saved.chunk_count == 12
    found = store.keyword_search("batched", "otters", 50)
    assert len([chunk for chunk in found if chunk.document_id == saved.id]) == 12


def test_a_batch_failing_midway_leaves_the_previous_version_whole(
    adapted: tuple[Store, DataApiAdapter], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a stored document of 3 chunks, and batches small enough to split 12 chunks
    store, adapter = adapted
    store.ensure_collection("batched", "hash:8", 8)
    first = store.save_document(*document("s3://b/atomic.txt", 3), embedding_model="hash:8")
    monkeypatch.setattr(driver, "BATCH_BYTES", 3 * 1024)
    doc, chunks, vectors = document("s3://b/atomic.txt", 12)
    # ... and a chunk in a later batch that the database refuses (NUL is not text)
    chunks[10] = ChunkWrite(10, "s", "bad \x00 text", 3, {})
    adapter.calls.clear()
    # WHEN the new version is saved
    with pytest.raises(Exception, match="DatabaseErrorException"):
        store.save_document(doc, chunks, vectors, embedding_model="hash:8")
    # THEN earlier batches were sent, the transaction was rolled back, and the old
    # version is intact
    assert [op for op, _ in adapter.calls].count("BatchExecuteStatement") > 1
    assert "RollbackTransaction" in [op for op, _ in adapter.calls]
    stored = store.get_document(first.id)
    assert stored is not None and stored.chunk_count == 3 and stored.content_hash == "h3"
    found = store.keyword_search("batched", "otters", 50)
    assert len([chunk for chunk in found if chunk.document_id == first.id]) == 3


def test_a_resuming_cluster_is_waited_for_within_the_budget(
    adapted: tuple[Store, DataApiAdapter],
) -> None:
    # GIVEN a cluster that answers DatabaseResumingException twice, then wakes
    store, adapter = adapted
    clock = Clock()
    database = DataApiDatabase(store.settings, sleep=clock.sleep, clock=lambda: clock.now)
    adapter.resume_after = 2
    # WHEN the store reads through it
    found = Store(store.settings, database).find_document("s3://b/none")
    # THEN it waited with growing pauses and got its answer
    assert found is None
    assert clock.waits == [0.5, 1.0]


def test_a_cluster_still_resuming_past_the_budget_is_a_503(
    adapted: tuple[Store, DataApiAdapter],
) -> None:
    # GIVEN a cluster that stays asleep, and a budget of 5 seconds
    store, adapter = adapted
    settings = store.settings.with_overrides(database_connect_timeout_seconds=5)
    clock = Clock()
    database = DataApiDatabase(settings, sleep=clock.sleep, clock=lambda: clock.now)
    adapter.resume_after = 1000
    try:
        # WHEN the store reads through it
        with pytest.raises(DatabaseUnavailableError) as raised:
            Store(settings, database).find_document("s3://b/none")
    finally:
        adapter.resume_after = 0
    # THEN it is a 503 with Retry-After, raised before the budget is spent
    assert raised.value.status_code == 503 and raised.value.retry_after_seconds > 0
    assert sum(clock.waits) <= 5


def test_placeholders_become_named_parameters() -> None:
    # GIVEN psycopg queries with positional, named and escaped placeholders
    # WHEN they are translated
    positional = driver.translate("SELECT %s, %s LIKE 'a%%'", ("x", 2))
    named = driver.translate("SELECT %(a)s + %(a)s, ANY(%(ids)s)", {"a": 1.5, "ids": [1, 2]})
    # THEN each becomes a :name with a SqlParameter, lists an array literal cast
    assert positional == (
        "SELECT :p1, :p2 LIKE 'a%'",
        [{"name": "p1", "value": {"stringValue": "x"}}, {"name": "p2", "value": {"longValue": 2}}],
    )
    assert named[0] == "SELECT :a + :a, ANY(CAST(:ids AS bigint[]))"
    assert named[1][1] == {"name": "ids", "value": {"stringValue": '{"1","2"}'}}


def test_a_migration_script_is_split_into_statements() -> None:
    # GIVEN a script with a function body, a quoted semicolon and comments
    script = (
        "-- a comment; with a semicolon\nCREATE TABLE t (a text DEFAULT ';');\n"
        "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n"
        "/* done; */"
    )
    # WHEN it is split
    statements = driver.split_statements(script)
    # THEN there is one request per statement, quotes kept whole
    assert len(statements) == 2
    assert statements[0].endswith("DEFAULT ';')")
    assert "$body$ SELECT 1; $body$" in statements[1]


def test_the_data_api_driver_needs_the_cluster_and_its_secret() -> None:
    # GIVEN the Data API driver chosen without the cluster's ARN
    settings = Settings(database_driver="data-api", database_secret_arn=SECRET_ARN)
    # WHEN a store is made THEN the missing setting is named at cold start
    with pytest.raises(ConfigurationError, match="RAGLINE_DATABASE_CLUSTER_ARN"):
        Store(settings)


def test_a_database_the_data_api_cannot_reach_is_a_503(
    adapted: tuple[Store, DataApiAdapter],
) -> None:
    # GIVEN a Data API that answers DatabaseUnavailableException
    store, adapter = adapted
    adapter.errors = ["DatabaseUnavailableException"]
    # WHEN the store reads THEN it is a 503, not an unhandled botocore error (a 500)
    with pytest.raises(DatabaseUnavailableError):
        store.find_document("s3://b/none")
    # AND the next call goes through
    assert store.find_document("s3://b/none") is None


def test_listings_are_read_in_pages_that_fit_a_response(
    adapted: tuple[Store, DataApiAdapter], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN five documents under a prefix, and pages of two rows
    store, adapter = adapted
    store.ensure_collection("batched", "hash:8", 8)
    for n in range(5):
        store.save_document(*document(f"s3://paged/{n}.txt", 1), embedding_model="hash:8")
    monkeypatch.setattr(store.database, "page_rows", 2)
    adapter.calls.clear()
    # WHEN the prefix is iterated
    sources = [doc.source for doc in store.iter_documents("s3://paged/")]
    # THEN every document comes back, two rows a request
    assert sources == [f"s3://paged/{n}.txt" for n in range(5)]
    pages = [r for op, r in adapter.calls if op == "ExecuteStatement" and "LIKE" in r["sql"]]
    assert len(pages) == 3
