"""PDFs end to end: a real manual through the ingest Lambda (moto S3, embedded PostgreSQL)
is ingested, not skipped, and the query Lambda cites it by page with a linkable source."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.pdfs import Page, build_pdf
from tests.support.s3 import BUCKET

MANUAL = Path(__file__).resolve().parents[2].parent / "shared" / "corpora" / "pdf-manuals"
pytestmark = pytest.mark.skipif(not MANUAL.is_dir(), reason=f"{MANUAL} is not present")


def _created(template: dict[str, Any], *keys: str) -> dict[str, Any]:
    record = template["Records"][0]
    records = []
    for index, key in enumerate(keys):
        item = copy.deepcopy(record)
        item["messageId"] = f"msg-{index}"
        body = json.loads(item["body"])
        body["Records"][0]["eventName"] = "ObjectCreated:Put"
        body["Records"][0]["s3"]["object"]["key"] = key
        item["body"] = json.dumps(body)
        records.append(item)
    return {"Records": records}


def test_a_pdf_is_ingested_and_cited_by_page(
    s3: Any,
    ingest: ModuleType,
    database_url: str,
    cold_start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
) -> None:
    # GIVEN the booktabs manual and a scanned PDF (no text layer) in the bucket
    s3.put_object(Bucket=BUCKET, Key="booktabs.pdf", Body=(MANUAL / "booktabs.pdf").read_bytes())
    s3.put_object(Bucket=BUCKET, Key="scan.pdf", Body=build_pdf([Page(filler=500)]))

    # WHEN the ingest Lambda gets their S3 notifications
    response = ingest.lambda_handler(
        _created(event("sqs_s3_object_created"), "booktabs.pdf", "scan.pdf"), lambda_context
    )

    # THEN the manual is ingested as a PDF (no longer skipped), its chunks keep their pages;
    # the scan's record is reported failed (retried, then dead-lettered, as any failure)
    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    docs = {d.source: d for d in ingest.ingestor.store.list_documents(limit=10)[0]}
    manual = docs[f"s3://{BUCKET}/booktabs.pdf"]
    assert (manual.status, manual.format) == ("ingested", "pdf")
    rows = ingest.ingestor.store.connection().execute(
        "SELECT metadata FROM chunks WHERE document_id = %s ORDER BY ordinal", (manual.id,)
    )
    pages = [row[0] for row in rows]
    assert all(1 <= p["page"] <= p["last_page"] <= 18 for p in pages)
    # AND the scan failed with the reason
    scan = docs[f"s3://{BUCKET}/scan.pdf"]
    assert (scan.status, scan.error) == ("failed", "no text layer; OCR is not enabled")

    # WHEN the two rules of table layout are asked for
    query = cold_start("query", RAGLINE_DATABASE_URL=database_url, RAGLINE_EMBEDDINGS="hash")
    request = copy.deepcopy(event("api_query"))
    question = "What two rules should you never break when laying out a formal table?"
    request.update(httpMethod="POST", path="/query", body=json.dumps({"question": question}))
    answer = json.loads(query.lambda_handler(request, lambda_context)["body"])

    # THEN a citation names page 3 and links to it
    cited = {(c["page"], c["source"]) for c in answer["citations"]}
    assert (3, f"s3://{BUCKET}/booktabs.pdf#page=3") in cited, answer["citations"]

    # AND /retrieve results carry their pages too
    request.update(path="/retrieve", body=json.dumps({"query": question, "top_k": 3}))
    results = json.loads(query.lambda_handler(request, lambda_context)["body"])["results"]
    assert results and all(
        r["page"] and r["source"].endswith(f"#page={r['page']}") for r in results
    )
