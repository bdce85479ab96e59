"""A document's attributes from S3 user metadata, tags and a sidecar, with moto S3 and
embedded PostgreSQL."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from ragline.config import Settings
from ragline.embeddings import get_embedder
from ragline.embeddings.base import EmbeddingResult
from ragline.ingest import DocumentFailedError, Ingestor, S3ObjectReader
from ragline.ingest.reconcile import reconcile
from ragline.store import Store

from tests.support.s3 import BUCKET

KEY = "handbook/leave.md"
SOURCE = f"s3://{BUCKET}/{KEY}"
SIDECAR = f"{KEY}.metadata.json"
BODY = b"# Leave\n\n## Vacation\nEmployees get 25 vacation days each year.\n"


class RecordingEmbedder:
    """The hash embedder, recording every batch of documents it embeds."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.batches: list[list[str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def embed_documents(self, texts: list[str]) -> EmbeddingResult:
        self.batches.append(list(texts))
        result: EmbeddingResult = self.inner.embed_documents(texts)
        return result


@pytest.fixture
def ingestor(s3: Any, database_url: str) -> Ingestor:
    settings = Settings(database_url=database_url, embeddings="hash")
    store = Store(settings)
    store.connection().execute("TRUNCATE documents CASCADE")
    return Ingestor(settings, store, RecordingEmbedder(get_embedder(settings)))  # type: ignore[arg-type]


@pytest.fixture
def reader(s3: Any) -> S3ObjectReader:
    return S3ObjectReader(s3)


def _sidecar(attributes: Any) -> bytes:
    return json.dumps({"metadataAttributes": attributes}).encode()


def _attributes(ingestor: Ingestor) -> dict[str, Any]:
    document = ingestor.store.find_document(SOURCE)
    assert document is not None
    return dict(document.metadata.get("attributes", {}))


def test_attributes_merge_sidecar_over_tags_over_user_metadata(
    ingestor: Ingestor, reader: S3ObjectReader, s3: Any
) -> None:
    # GIVEN an object with user metadata and tags, and a sidecar, each setting "team"
    s3.put_object(
        Bucket=BUCKET, Key=KEY, Body=BODY,
        Metadata={"team": "from-metadata", "region": "eu", "collection": "hr"},
        Tagging="team=from-tags&owner=ana",
    )  # fmt: skip
    s3.put_object(Bucket=BUCKET, Key=SIDECAR, Body=_sidecar({"team": "from-sidecar", "year": 2024}))
    # WHEN it is ingested
    result = ingestor.sync_object(reader, BUCKET, KEY)
    # THEN its attributes merge all three: the sidecar wins "team", then tags, then
    # user metadata; "collection" routes the document and is no attribute
    assert (result.status, result.collection) == ("ingested", "hr")
    assert _attributes(ingestor) == {
        "team": "from-sidecar", "year": 2024, "owner": "ana", "region": "eu",
    }  # fmt: skip
    # AND the sources are kept as read, with the sidecar it came from
    metadata = ingestor.store.find_document(SOURCE).metadata  # type: ignore[union-attr]
    assert metadata["user"] == {"team": "from-metadata", "region": "eu"}
    assert metadata["tags"] == {"team": "from-tags", "owner": "ana"}
    assert metadata["sidecar"]["key"] == SIDECAR
    # AND without the sidecar, tags win over user metadata
    s3.delete_object(Bucket=BUCKET, Key=SIDECAR)
    ingestor.sync_object(reader, BUCKET, SIDECAR)
    assert _attributes(ingestor) == {"team": "from-tags", "owner": "ana", "region": "eu"}


def test_a_sidecar_change_applies_metadata_without_re_embedding(
    ingestor: Ingestor, reader: S3ObjectReader, s3: Any
) -> None:
    # GIVEN an ingested document
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=BODY)
    assert ingestor.sync_object(reader, BUCKET, KEY).status == "ingested"
    embedder: RecordingEmbedder = ingestor.embedder  # type: ignore[assignment]
    embedded = len(embedder.batches)
    chunks = ingestor.store.find_document(SOURCE).chunk_count  # type: ignore[union-attr]
    # WHEN its sidecar is uploaded and the sidecar's event arrives
    s3.put_object(Bucket=BUCKET, Key=SIDECAR, Body=_sidecar({"team": "search", "tier": 2}))
    result = ingestor.sync_object(reader, BUCKET, SIDECAR)
    # THEN the document is updated with the attributes, and nothing was embedded
    assert (result.source, result.status) == (SOURCE, "updated")
    assert _attributes(ingestor) == {"team": "search", "tier": 2}
    assert len(embedder.batches) == embedded
    assert ingestor.store.find_document(SOURCE).chunk_count == chunks  # type: ignore[union-attr]
    # AND a changed sidecar replaces them, still without embedding
    s3.put_object(Bucket=BUCKET, Key=SIDECAR, Body=_sidecar({"team": "ads"}))
    assert ingestor.sync_object(reader, BUCKET, SIDECAR).status == "updated"
    assert _attributes(ingestor) == {"team": "ads"}
    # AND deleting the sidecar removes its attributes
    s3.delete_object(Bucket=BUCKET, Key=SIDECAR)
    assert ingestor.sync_object(reader, BUCKET, SIDECAR).status == "updated"
    assert _attributes(ingestor) == {}
    assert "sidecar" not in ingestor.store.find_document(SOURCE).metadata  # type: ignore[union-attr]
    assert len(embedder.batches) == embedded


def test_the_sidecar_is_never_a_document_and_may_come_first(
    ingestor: Ingestor, reader: S3ObjectReader, s3: Any
) -> None:
    # GIVEN a sidecar whose document is not uploaded yet
    s3.put_object(Bucket=BUCKET, Key=SIDECAR, Body=_sidecar({"team": "search"}))
    # WHEN its event arrives
    result = ingestor.sync_object(reader, BUCKET, SIDECAR)
    # THEN nothing is stored: there is no document to apply it to, and it is none itself
    assert (result.source, result.status) == (SOURCE, "absent")
    assert ingestor.store.list_documents(limit=10)[0] == []
    # AND when the document arrives, it reads its sidecar
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=BODY)
    assert ingestor.sync_object(reader, BUCKET, KEY).status == "ingested"
    assert _attributes(ingestor) == {"team": "search"}
    assert [d.source for d in ingestor.store.list_documents(limit=10)[0]] == [SOURCE]


@pytest.mark.parametrize(
    ("sidecar", "reason"),
    [
        (b"{not json", "sidecar is not JSON"),
        (b'{"attributes": {"team": "x"}}', 'must be {"metadataAttributes": {...}}'),
        (_sidecar({"team": {"nested": 1}}), "metadataAttributes.team: values are strings"),
        (_sidecar({"tags": [["a"]]}), "metadataAttributes.tags[0]: values are strings"),
        (_sidecar({"bad key!": 1}), "metadataAttributes key 'bad key!'"),
        (_sidecar({"team": None}), "not null"),
    ],
)
def test_an_invalid_sidecar_fails_with_its_reason_and_keeps_the_document(
    ingestor: Ingestor, reader: S3ObjectReader, s3: Any, sidecar: bytes, reason: str
) -> None:
    # GIVEN an ingested document with tags
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=BODY, Tagging="owner=ana")
    ingestor.sync_object(reader, BUCKET, KEY)
    # WHEN an invalid sidecar arrives for it
    s3.put_object(Bucket=BUCKET, Key=SIDECAR, Body=sidecar)
    with pytest.raises(DocumentFailedError) as failure:
        ingestor.sync_object(reader, BUCKET, SIDECAR)
    # THEN the result is failed for the sidecar, with the reason
    result = failure.value.result
    assert (result.source, result.status) == (f"s3://{BUCKET}/{SIDECAR}", "failed")
    assert reason in (result.error or "")
    # AND the document is still ingested with its chunks, its other attributes and the
    # sidecar's error on record
    document = ingestor.store.find_document(SOURCE)
    assert document is not None
    assert (document.status, document.chunk_count > 0) == ("ingested", True)
    assert document.metadata["attributes"] == {"owner": "ana"}
    assert reason in document.metadata["sidecar"]["error"]


def test_reconcile_applies_sidecar_changes_and_never_stores_a_sidecar(
    ingestor: Ingestor, reader: S3ObjectReader, s3: Any
) -> None:
    # GIVEN a document and its sidecar, reconciled once
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=BODY)
    s3.put_object(Bucket=BUCKET, Key=SIDECAR, Body=_sidecar({"team": "search"}))
    reconcile(ingestor, reader, BUCKET)
    assert _attributes(ingestor) == {"team": "search"}
    assert [d.source for d in ingestor.store.list_documents(limit=10)[0]] == [SOURCE]
    # WHEN the sidecar changes (its event lost) and reconcile runs again
    s3.put_object(Bucket=BUCKET, Key=SIDECAR, Body=_sidecar({"team": "ads"}))
    reconcile(ingestor, reader, BUCKET)
    # THEN the document has the new attributes
    assert _attributes(ingestor) == {"team": "ads"}
    # AND when the sidecar goes, its attributes go with the next reconcile
    s3.delete_object(Bucket=BUCKET, Key=SIDECAR)
    report = reconcile(ingestor, reader, BUCKET)
    assert _attributes(ingestor) == {}
    assert report.failed == 0


class StaleSidecarReader(S3ObjectReader):
    """Reads the object as the bucket held it a moment ago: with a sidecar replaced since."""

    def __init__(self, client: Any, stale: bytes) -> None:
        super().__init__(client)
        self.stale = stale

    def _sidecar(self, bucket: str, key: str) -> tuple[bytes | None, str | None]:
        return self.stale, "etag-of-a-replaced-sidecar"


def test_a_write_from_a_replaced_sidecar_is_superseded(
    ingestor: Ingestor, reader: S3ObjectReader, s3: Any
) -> None:
    # GIVEN a document stored with its current sidecar
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=BODY)
    s3.put_object(Bucket=BUCKET, Key=SIDECAR, Body=_sidecar({"team": "new"}))
    ingestor.sync_object(reader, BUCKET, KEY)
    # WHEN a slower invocation, which read the sidecar before it was replaced, writes last
    stale = StaleSidecarReader(s3, _sidecar({"team": "old"}))
    result = ingestor.sync_object(stale, BUCKET, SIDECAR)
    # THEN its write is dropped as superseded, and the current sidecar's attributes stay
    assert result.status == "superseded"
    assert _attributes(ingestor) == {"team": "new"}


def _sqs_event(template: dict[str, Any], *keys: str) -> dict[str, Any]:
    """The recorded SQS batch, with one ObjectCreated record per key."""
    records = []
    for index, key in enumerate(keys):
        item = copy.deepcopy(template["Records"][0])
        item["messageId"] = f"msg-{index}"
        body = json.loads(item["body"])
        body["Records"][0]["s3"]["object"]["key"] = key
        body["Records"][0]["s3"]["bucket"]["name"] = BUCKET
        item["body"] = json.dumps(body)
        records.append(item)
    return {"Records": records}


def test_tags_and_sidecars_filter_through_the_ingest_and_query_lambdas(
    s3: Any,
    database_url: str,
    cold_start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
) -> None:
    # GIVEN two handbook pages: one tagged team=search with a sidecar saying 2024, one
    # tagged team=ads; and the ingest Lambda given their S3 events (the sidecar's too)
    ingest = cold_start("ingest", RAGLINE_DATABASE_URL=database_url, RAGLINE_EMBEDDINGS="hash")
    ingest.ingestor.store.connection().execute("TRUNCATE documents CASCADE")
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=BODY, Tagging="team=search")
    s3.put_object(Bucket=BUCKET, Key=SIDECAR, Body=_sidecar({"year": 2024}))
    other = "handbook/travel.md"
    travel = b"# Travel\n\n## Vacation travel\nVacation trips are booked by train.\n"
    s3.put_object(Bucket=BUCKET, Key=other, Body=travel, Tagging="team=ads")
    batch = _sqs_event(event("sqs_s3_object_created"), KEY, SIDECAR, other)
    assert ingest.lambda_handler(batch, lambda_context) == {"batchItemFailures": []}
    # WHEN /retrieve asks about vacation, in each mode, filtered on the tag and the sidecar
    api = cold_start("query", RAGLINE_DATABASE_URL=database_url, RAGLINE_EMBEDDINGS="hash")
    where = {"and": [{"eq": {"key": "team", "value": "search"}},
                     {"gte": {"key": "year", "value": 2024}}]}  # fmt: skip
    for mode in ("vector", "keyword", "hybrid"):
        request = copy.deepcopy(event("api_query"))
        body = {"query": "vacation", "mode": mode, "top_k": 5, "filter": where}
        request.update(httpMethod="POST", path="/retrieve", body=json.dumps(body))
        response = api.lambda_handler(request, lambda_context)
        # THEN only the tagged page with the sidecar answers
        assert response["statusCode"] == 200, response["body"]
        sources = {r["source"] for r in json.loads(response["body"])["results"]}
        assert sources == {SOURCE}, mode
