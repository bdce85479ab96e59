"""Hostile objects through the ingest Lambda (moto S3, embedded PostgreSQL): one poison
object fails alone with its reason, every object ends with a status, and a failed new
version never leaves the old content answering (issue 18)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from ragline.documents.loaders import registry
from ragline.documents.loaders.base import Loader, ParsedDocument
from ragline.errors import ModelError

from tests.support import hostile
from tests.support.s3 import BUCKET

GOOD = {
    "good/kayaks.md": b"# Kayaks\n\nKayak rental opens at nine.\n",
    "good/canoes.md": b"# Canoes\n\nCanoes are rented by the hour.\n",
    "good/nul.json": hostile.json_with("Paddles cost 5 euros.\u0000"),
    "good/surrogate.json": hostile.json_with("Life vests \ud800 are free."),
    "good/number.json": hostile.json_big_number(100_000),
}


def _sqs_event(template: dict[str, Any], *keys: str) -> dict[str, Any]:
    """The recorded event, with one record (message msg-<index>) per key created."""
    record = template["Records"][0]
    records = []
    for index, key in enumerate(keys):
        item = copy.deepcopy(record)
        item["messageId"] = f"msg-{index}"
        body = json.loads(item["body"])
        body["Records"][0]["s3"]["object"]["key"] = key
        item["body"] = json.dumps(body)
        records.append(item)
    return {"Records": records}


def _document(ingest: ModuleType, key: str) -> Any:
    return ingest.ingestor.store.find_document(f"s3://{BUCKET}/{key}")


def _retrieve(api: ModuleType, event: Any, lambda_context: Any, query: str) -> list[str]:
    request = copy.deepcopy(event("api_query"))
    body = {"query": query, "mode": "keyword", "top_k": 5}
    request.update(httpMethod="POST", path="/retrieve", body=json.dumps(body))
    response = api.lambda_handler(request, lambda_context)
    assert response["statusCode"] == 200, response["body"]
    return [r["text"] for r in json.loads(response["body"])["results"]]


@pytest.fixture
def hostile_ingest(s3: Any, database_url: str, cold_start: Callable[..., ModuleType]) -> ModuleType:
    """The ingest Lambda on an empty store, its budgets lowered so small files exceed them."""
    ingest = cold_start(
        "ingest",
        RAGLINE_DATABASE_URL=database_url,
        RAGLINE_EMBEDDINGS="hash",
        RAGLINE_MAX_INFLATED_BYTES=str(1024 * 1024),
        RAGLINE_PARSE_MEMORY_MB="64",
        RAGLINE_MAX_CHUNKS="4",
    )
    ingest.ingestor.store.connection().execute("TRUNCATE documents CASCADE")
    return ingest


def test_a_poison_object_fails_alone_and_its_batch_mates_are_ingested(
    hostile_ingest: ModuleType,
    s3: Any,
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ingest = hostile_ingest
    # GIVEN a batch of good objects (text with NUL, a lone surrogate, a 100,000-digit
    # number among them) and three poison ones: a PDF whose page inflates past the budget,
    # a file whose parser runs away in memory, an HTML table bomb
    for key, body in GOOD.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    s3.put_object(Bucket=BUCKET, Key="bad/bomb.pdf", Body=hostile.flate_bomb_pdf(8 * 1024**2))
    s3.put_object(Bucket=BUCKET, Key="bad/runaway.rst", Body=b"Anything")
    s3.put_object(Bucket=BUCKET, Key="bad/tables.html", Body=hostile.html_table_bomb(100_000))

    def hoard(text: str) -> ParsedDocument:
        held = [bytearray(16 * 1024**2) for _ in range(1024)]
        return ParsedDocument(str(len(held)), "rst", [])

    monkeypatch.setitem(registry._LOADERS, "rst", Loader("rst", (".rst",), parse=hoard))
    keys = ["bad/bomb.pdf", *GOOD, "bad/runaway.rst", "bad/tables.html"]
    # WHEN the ingest Lambda gets them in one batch
    response = ingest.lambda_handler(
        _sqs_event(event("sqs_s3_object_created"), *keys), lambda_context
    )
    # THEN only the poison messages are reported for retry
    failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    assert failed == {"msg-0", f"msg-{len(keys) - 2}", f"msg-{len(keys) - 1}"}
    # AND each poison object is failed with its reason
    reasons = {key: _document(ingest, key) for key in keys if key.startswith("bad/")}
    assert {d.status for d in reasons.values()} == {"failed"}
    assert reasons["bad/bomb.pdf"].error.startswith("a PDF stream inflates past 1 MiB")
    assert reasons["bad/runaway.rst"].error.startswith("parsing needs more than 64 MB")
    assert reasons["bad/tables.html"].error.startswith("HTML elements nest more than 512")
    # AND every good one is ingested, its text storable
    for key in GOOD:
        assert _document(ingest, key).status == "ingested", key
    conn = ingest.ingestor.store.connection()
    texts = [row[0] for row in conn.execute("SELECT text FROM chunks")]
    assert any("Paddles cost 5 euros." in text for text in texts)
    assert any("Life vests \ufffd are free." in text for text in texts)


def test_the_nul_overwrite_no_longer_answers_with_the_old_version(
    hostile_ingest: ModuleType,
    s3: Any,
    database_url: str,
    cold_start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
) -> None:
    # GIVEN ow/doc.json saying 40 euros, ingested and answering
    ingest = hostile_ingest
    created = _sqs_event(event("sqs_s3_object_created"), "ow/doc.json")
    old = {"title": "Tariffs", "text": "Kayak tariff is 40 euros per day."}
    s3.put_object(Bucket=BUCKET, Key="ow/doc.json", Body=json.dumps(old).encode())
    assert ingest.lambda_handler(created, lambda_context) == {"batchItemFailures": []}
    api = cold_start("query", RAGLINE_DATABASE_URL=database_url, RAGLINE_EMBEDDINGS="hash")
    assert any("40 euros" in t for t in _retrieve(api, event, lambda_context, "kayak tariff"))
    # WHEN it is overwritten with text holding a NUL
    new = {"title": "Tariffs", "text": "Kayak tariff is 99 euros per day.\u0000"}
    s3.put_object(Bucket=BUCKET, Key="ow/doc.json", Body=json.dumps(new).encode())
    ingest = cold_start("ingest", RAGLINE_DATABASE_URL=database_url, RAGLINE_EMBEDDINGS="hash")
    assert ingest.lambda_handler(created, lambda_context) == {"batchItemFailures": []}
    # THEN the new version is stored and answers; the old one does not
    assert _document(ingest, "ow/doc.json").status == "ingested"
    api = cold_start("query", RAGLINE_DATABASE_URL=database_url, RAGLINE_EMBEDDINGS="hash")
    texts = _retrieve(api, event, lambda_context, "kayak tariff")
    assert any("99 euros per day." in t for t in texts)
    assert not any("40 euros" in t for t in texts)


def test_an_unforeseen_error_fails_the_new_version_and_withdraws_the_old(
    hostile_ingest: ModuleType,
    s3: Any,
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a document ingested, then a new version that the pipeline breaks on (an error
    # nobody foresaw, raised while chunking it)
    ingest = hostile_ingest
    created = _sqs_event(event("sqs_s3_object_created"), "ow/tariffs.md")
    s3.put_object(Bucket=BUCKET, Key="ow/tariffs.md", Body=b"# Tariffs\n\nKayaks: 40 euros.\n")
    assert ingest.lambda_handler(created, lambda_context) == {"batchItemFailures": []}
    s3.put_object(Bucket=BUCKET, Key="ow/tariffs.md", Body=b"# Tariffs\n\nKayaks: 99 euros.\n")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("unhashable type: 'list'")

    monkeypatch.setattr("ragline.ingest.pipeline.chunk_document", broken)
    # WHEN the message for it is handled
    response = ingest.lambda_handler(created, lambda_context)
    # THEN the message is retried, the document is failed with the reason and the old
    # version's chunks are withdrawn (no answer cites what the bucket no longer holds)
    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    document = _document(ingest, "ow/tariffs.md")
    assert (document.status, document.error) == ("failed", "TypeError: unhashable type: 'list'")
    assert document.chunk_count == 0


def test_a_transient_error_keeps_the_old_version_and_is_retried(
    hostile_ingest: ModuleType,
    s3: Any,
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a document ingested, then a new version while the embedding provider is down
    ingest = hostile_ingest
    created = _sqs_event(event("sqs_s3_object_created"), "ow/tariffs.md")
    s3.put_object(Bucket=BUCKET, Key="ow/tariffs.md", Body=b"# Tariffs\n\nKayaks: 40 euros.\n")
    assert ingest.lambda_handler(created, lambda_context) == {"batchItemFailures": []}
    s3.put_object(Bucket=BUCKET, Key="ow/tariffs.md", Body=b"# Tariffs\n\nKayaks: 99 euros.\n")

    def down(texts: list[str]) -> Any:
        raise ModelError("hash: the provider timed out")

    monkeypatch.setattr(ingest.ingestor.embedder, "embed_documents", down)
    # WHEN the message is handled THEN it is retried, and the stored version stays as it was
    response = ingest.lambda_handler(created, lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    document = _document(ingest, "ow/tariffs.md")
    assert (document.status, document.chunk_count) == ("ingested", 1)


def test_a_document_over_the_chunk_budget_fails_with_the_reason(
    hostile_ingest: ModuleType, s3: Any, event: Callable[[str], dict[str, Any]], lambda_context: Any
) -> None:
    # GIVEN a document of ten sections, with RAGLINE_MAX_CHUNKS=4
    body = "".join(f"## Part {n}\n\nKayak rule {n}.\n\n" for n in range(10)).encode()
    s3.put_object(Bucket=BUCKET, Key="long.md", Body=body)
    response = hostile_ingest.lambda_handler(
        _sqs_event(event("sqs_s3_object_created"), "long.md"), lambda_context
    )
    # THEN it fails, saying how many chunks it makes, and nothing was embedded
    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    document = _document(hostile_ingest, "long.md")
    assert document.status == "failed"
    assert (
        document.error == "the document makes 10 chunks, over the limit of 4 (RAGLINE_MAX_CHUNKS)"
    )


def test_a_page_without_text_is_skipped_not_retried(
    hostile_ingest: ModuleType, s3: Any, event: Callable[[str], dict[str, Any]], lambda_context: Any
) -> None:
    # GIVEN a manual's table-of-contents page: navigation only
    page = b"<html><body><nav><a href='ch1.html'>Chapter 1</a></nav></body></html>"
    s3.put_object(Bucket=BUCKET, Key="manual/toc.html", Body=page)
    response = hostile_ingest.lambda_handler(
        _sqs_event(event("sqs_s3_object_created"), "manual/toc.html"), lambda_context
    )
    # THEN the message is done (not retried into the DLQ) and the page is skipped, with why
    assert response == {"batchItemFailures": []}
    document = _document(hostile_ingest, "manual/toc.html")
    assert (document.status, document.error) == (
        "skipped",
        "the document contains no text to index",
    )


def test_a_sidecar_holding_a_lone_surrogate_fails_alone(
    hostile_ingest: ModuleType, s3: Any, event: Callable[[str], dict[str, Any]], lambda_context: Any
) -> None:
    # GIVEN a document and its sidecar holding "\ud800" (valid JSON, not storable text)
    s3.put_object(Bucket=BUCKET, Key="doc.md", Body=b"# Kayaks\n\nKayaks float.\n")
    s3.put_object(
        Bucket=BUCKET,
        Key="doc.md.metadata.json",
        Body=b'{"metadataAttributes": {"team": "\\ud800"}}',
    )
    # WHEN the sidecar's event is handled
    response = hostile_ingest.lambda_handler(
        _sqs_event(event("sqs_s3_object_created"), "doc.md.metadata.json"), lambda_context
    )
    # THEN the document is indexed without the sidecar's attributes, and the sidecar's
    # message is retried with its reason
    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    document = _document(hostile_ingest, "doc.md")
    assert document.status == "ingested"
    assert "surrogate" in document.metadata["sidecar"]["error"]
