"""``ragline dev`` as a user drives it: boto3 uploads in, cited answers out, over HTTP.

The stack runs as a subprocess (see conftest.py); these tests only use what it
announces in endpoints.json, exactly as any client would.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import openai
import pytest

from tests.e2e.support import DevProcess, http_json, wait_until

pytestmark = pytest.mark.slow

INGEST_DEADLINE = 30.0
DLQ_DEADLINE = 60.0


def _documents(api: str) -> dict[str, dict[str, Any]]:
    status, body = http_json("GET", f"{api}/documents?limit=200")
    assert status == 200, body
    return {document["source"]: document for document in body["documents"]}


def _retrieved_sources(api: str, query: str) -> set[str]:
    status, body = http_json("POST", f"{api}/retrieve", {"query": query, "top_k": 10})
    assert status == 200, body
    return {result["source"] for result in body["results"]}


def test_endpoints_file_names_the_api_the_s3_endpoint_and_the_bucket(
    endpoints: dict[str, str],
) -> None:
    # GIVEN a running `ragline dev`
    # WHEN a client reads endpoints.json and calls the API
    status, health = http_json("GET", f"{endpoints['api']}/health")

    # THEN it names the API, the S3 endpoint and the bucket, and the API is healthy
    assert {"api", "s3", "bucket"} <= set(endpoints)
    assert endpoints["bucket"] == "ragline-documents"
    assert status == 200, health


def test_uploaded_markdown_becomes_answerable_with_a_citation_of_its_object(
    endpoints: dict[str, str], s3: Any
) -> None:
    # GIVEN a Markdown file uploaded with boto3 (a key with a space, so it arrives URL-encoded)
    key = "notes/harbour hours.md"
    s3.put_object(
        Bucket=endpoints["bucket"],
        Key=key,
        Body=(
            b"# Quillfeather Lighthouse\n\n"
            b"## Opening hours\n\n"
            b"The Quillfeather lighthouse opens at 7:15 on Saturdays and closes at noon.\n"
        ),
        ContentType="text/markdown",
    )
    source = f"s3://{endpoints['bucket']}/{key}"
    question = {"question": "When does the Quillfeather lighthouse open on Saturdays?"}

    # WHEN the question is asked through POST /query until the document has been ingested
    def cited_answer() -> dict[str, Any] | None:
        status, body = http_json("POST", f"{endpoints['api']}/query", question)
        assert status == 200, body
        cited = {citation["source"] for citation in body["citations"]}
        return body if source in cited else None

    answer = wait_until(cited_answer, timeout=INGEST_DEADLINE, what=f"an answer citing {source}")

    # THEN the answer comes from the uploaded object and cites it by its S3 URI
    assert not answer["abstained"]
    assert "7:15" in answer["answer"]
    assert {"input_tokens", "output_tokens", "embedding_tokens", "cost_usd"} <= set(answer["usage"])
    assert {"retrieve", "generate", "total"} <= set(answer["latency_ms"])
    assert _documents(endpoints["api"])[source]["status"] == "ingested"


def test_deleted_object_is_no_longer_retrieved(endpoints: dict[str, str], s3: Any) -> None:
    # GIVEN an uploaded document that retrieval finds
    key = "faq/brindlewick-ferry.md"
    source = f"s3://{endpoints['bucket']}/{key}"
    query = "Brindlewick ferry timetable"
    s3.put_object(
        Bucket=endpoints["bucket"],
        Key=key,
        Body=b"# Brindlewick ferry\n\nThe Brindlewick ferry timetable changes every spring.\n",
    )
    wait_until(
        lambda: source in _retrieved_sources(endpoints["api"], query),
        timeout=INGEST_DEADLINE,
        what=f"{source} to be retrieved",
    )

    # WHEN the object is deleted from the bucket
    s3.delete_object(Bucket=endpoints["bucket"], Key=key)

    # THEN it is no longer retrieved, nor listed
    wait_until(
        lambda: source not in _retrieved_sources(endpoints["api"], query),
        timeout=INGEST_DEADLINE,
        what=f"{source} to disappear from POST /retrieve",
    )
    assert source not in _documents(endpoints["api"])


def test_corrupt_object_fails_and_lands_in_the_dlq_while_the_others_are_ingested(
    endpoints: dict[str, str], s3: Any, sqs: Any
) -> None:
    # GIVEN three objects uploaded together, one of them not valid UTF-8
    bucket = endpoints["bucket"]
    uploads = {
        "batch/first.md": b"# First\n\nThe first batch document mentions the Ospreyline pier.\n",
        "batch/corrupt.md": b"# Broken\n\n\xff\xfe\x80 not text \xc3\x28\n",
        "batch/second.txt": b"The second batch document mentions the Gannetwood slipway.\n",
    }
    for key, body in uploads.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    sources = {key: f"s3://{bucket}/{key}" for key in uploads}

    # WHEN ingestion has run (and retried the failure up to maxReceiveCount)
    def settled() -> dict[str, dict[str, Any]] | None:
        documents = _documents(endpoints["api"])
        statuses = {key: documents.get(source, {}).get("status") for key, source in sources.items()}
        finished = statuses["batch/corrupt.md"] == "failed" and all(
            status == "ingested" for key, status in statuses.items() if key != "batch/corrupt.md"
        )
        return documents if finished else None

    documents = wait_until(settled, timeout=INGEST_DEADLINE, what="the batch to settle")

    def dead_letter() -> dict[str, Any] | None:
        response = sqs.receive_message(
            QueueUrl=endpoints["dlq"], MaxNumberOfMessages=10, VisibilityTimeout=0
        )
        for message in response.get("Messages", []):
            for record in json.loads(message["Body"]).get("Records", []):
                # Keys in S3 notifications are URL-encoded ("/" as %2F, " " as +).
                if unquote_plus(record["s3"]["object"]["key"]) == "batch/corrupt.md":
                    return dict(record)
        return None

    dead = wait_until(
        dead_letter, timeout=DLQ_DEADLINE, what="the corrupt object's message in the DLQ"
    )

    # THEN the corrupt one is failed with its reason and dead-lettered; the others are answerable
    corrupt = documents[sources["batch/corrupt.md"]]
    assert corrupt["error"], corrupt
    assert "UTF-8" in corrupt["error"]
    assert dead["eventName"].startswith("ObjectCreated")
    assert sources["batch/first.md"] in _retrieved_sources(endpoints["api"], "Ospreyline pier")
    assert sources["batch/second.txt"] in _retrieved_sources(endpoints["api"], "Gannetwood slipway")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_stops_the_stack_cleanly(scratch: Path, signum: int) -> None:
    # GIVEN a second `ragline dev`, ready
    stack = DevProcess.start(scratch / "data")
    try:
        endpoints = stack.wait_for_endpoints()
    finally:
        # WHEN it is sent SIGTERM, or SIGINT as Ctrl-C does
        returncode = stack.stop(signum=signum)

    # THEN it exits 0, withdraws endpoints.json and stops its embedded PostgreSQL
    assert returncode == 0, stack.output()
    assert endpoints["api"]
    assert not stack.endpoints_file.exists()
    assert not (scratch / "data" / "pgdata" / "postmaster.pid").exists()


def test_signals_repeated_while_stopping_do_not_orphan_the_database(scratch: Path) -> None:
    # GIVEN a `ragline dev`, ready, then told to stop
    stack = DevProcess.start(scratch / "data")
    try:
        stack.wait_for_endpoints()
        stack.process.send_signal(signal.SIGTERM)
        wait_until(
            lambda: "stopping" in (stack.log_dir / "stderr").read_text(errors="replace"),
            timeout=30,
            what="the stack to start stopping",
        )
        # WHEN a supervisor repeats SIGTERM and an impatient user presses Ctrl-C meanwhile
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
            if stack.process.poll() is None:
                stack.process.send_signal(signum)
    finally:
        returncode = stack.stop(timeout=60)

    # THEN it still stops cleanly: exit 0 and its embedded PostgreSQL stopped with it
    assert returncode == 0, stack.output()
    assert not (scratch / "data" / "pgdata" / "postmaster.pid").exists(), stack.output()


def test_the_openai_sdk_asks_ragline_dev_buffered_and_streamed(
    endpoints: dict[str, str], s3: Any
) -> None:
    # GIVEN an uploaded document, answerable once ingested
    key = "faq/saltmarsh-ferry.md"
    source = f"s3://{endpoints['bucket']}/{key}"
    s3.put_object(
        Bucket=endpoints["bucket"],
        Key=key,
        Body=b"# Saltmarsh ferry\n\nThe Saltmarsh ferry leaves the pier at 6:40 every weekday.\n",
    )
    question = "When does the Saltmarsh ferry leave the pier?"
    wait_until(
        lambda: source in _retrieved_sources(endpoints["api"], question),
        timeout=INGEST_DEADLINE,
        what=f"{source} to be retrieved",
    )
    # AND the official SDK pointed at the stack with its development key, as Bearer
    client = openai.OpenAI(
        base_url=f"{endpoints['api']}/v1", api_key=endpoints["api_key"], max_retries=0
    )
    messages: Any = [{"role": "user", "content": question}]
    # WHEN it asks buffered
    completion = client.chat.completions.create(model="ragline", messages=messages)
    # THEN the answer is cited, with the passage in the extra field and the marker in the text
    text = completion.choices[0].message.content or ""
    citations = (completion.model_extra or {})["citations"]
    marker = re.search(r"\[(\d+)\]", text)
    assert "6:40" in text and marker is not None
    assert citations[int(marker.group(1)) - 1]["source"] == source
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    # WHEN it streams the same question with the usage included
    chunks = list(
        client.chat.completions.create(
            model="ragline", messages=messages, stream=True,
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    # THEN the chunks make the same answer, and end with the same usage
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == completion.usage.prompt_tokens
    assert chunks[-1].usage.completion_tokens == completion.usage.completion_tokens
    assert [m.id for m in client.models.list()] == ["ragline", "critical", "reasoning", "simple"]
