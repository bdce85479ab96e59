"""``ragline demo``: the whole path once, as a user would drive it, then stop.

Start the local stack on free ports, upload ``examples/docs`` with boto3 through the S3
endpoint (so ingestion goes S3 -> SQS -> poller -> ingest handler), wait until the API
lists every document as ingested, ask ``examples/questions.json`` through ``POST
/query`` and print each answer with its citations, usage, cost and latency.
"""

from __future__ import annotations

import json
import mimetypes
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ragline.config import Settings
from ragline.dev.aws import client
from ragline.dev.handlers import find_repository_root
from ragline.dev.render import format_answer
from ragline.dev.stack import LocalStack, StackOptions, StackStartError
from ragline.errors import RaglineError

MARKER = ".ragline-demo"  # the demo only empties directories it created
TERMINAL_STATUSES = {"ingested", "skipped", "failed"}


class DemoError(Exception):
    """A step of the demo failed; the message says which and why."""


@dataclass(frozen=True)
class Question:
    """One example question and what a good answer does."""

    question: str
    expected_source: str | None = None
    expect_abstain: bool = False


def load_questions(path: Path) -> list[Question]:
    """The questions of ``questions.json`` (a list of objects)."""
    return [Question(**item) for item in json.loads(path.read_text(encoding="utf-8"))]


def _read_questions(path: Path) -> list[Question]:
    try:
        return load_questions(path)
    except OSError as exc:
        raise DemoError(f"cannot read the questions: {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise DemoError(f"{path} is not a list of questions: {exc}") from exc


def http_json(
    method: str, url: str, body: Any = None, timeout: float = 60.0, api_key: str | None = None
) -> tuple[int, Any]:
    """Call the API (with ``api_key`` as ``x-api-key``); return the status and the
    decoded JSON body (or the raw text)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if api_key:
        request.add_header("x-api-key", api_key)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def list_documents(api: str, api_key: str | None = None) -> list[dict[str, Any]]:
    """Every document ``GET /documents`` lists, following the cursor."""
    documents: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {"limit": "200", **({"cursor": cursor} if cursor else {})}
        url = f"{api}/documents?{urllib.parse.urlencode(query)}"
        status, page = http_json("GET", url, api_key=api_key)
        if status != 200:
            raise DemoError(f"GET /documents answered {status}: {page}")
        documents += page["documents"]
        cursor = page.get("next_cursor")
        if not cursor:
            return documents


def _fresh_data_dir(data_dir: Path) -> None:
    if data_dir.exists() and any(data_dir.iterdir()):
        if not (data_dir / MARKER).exists():
            raise DemoError(
                f"{data_dir} is not empty and was not made by the demo; choose another --data-dir"
            )
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / MARKER).write_text("scratch directory of `ragline demo`, emptied on each run\n")


def _upload(stack: LocalStack, docs: Path) -> dict[str, Path]:
    endpoints = stack.endpoints
    s3 = client("s3", endpoints.s3)
    files = sorted(path for path in docs.rglob("*") if path.is_file())
    if not files:
        raise DemoError(f"no documents in {docs}")
    sources = {}
    for path in files:
        key = path.relative_to(docs).as_posix()
        content_type = mimetypes.guess_type(path.name)[0] or "text/plain"
        s3.put_object(
            Bucket=endpoints.bucket, Key=key, Body=path.read_bytes(), ContentType=content_type
        )
        sources[f"s3://{endpoints.bucket}/{key}"] = path
    print(f"Uploaded {len(files)} documents to s3://{endpoints.bucket}/ through {endpoints.s3}")
    return sources


def _wait_for_ingestion(
    api: str, sources: dict[str, Path], timeout: float, api_key: str | None = None
) -> None:
    started = time.monotonic()
    deadline = started + timeout
    while True:
        by_source = {doc["source"]: doc for doc in list_documents(api, api_key)}
        done = {
            s: by_source[s]
            for s in sources
            if by_source.get(s, {}).get("status") in TERMINAL_STATUSES
        }
        if len(done) == len(sources):
            break
        if time.monotonic() > deadline:
            missing = ", ".join(sorted(set(sources) - set(done)))
            raise DemoError(f"not ingested after {timeout:.0f} s: {missing}")
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    print(f"Ingested through S3 -> SQS -> ingest handler in {elapsed:.1f} s:")
    for source in sorted(done):
        doc = done[source]
        print(
            f"  {doc['status']:<9} {doc['chunk_count']:>3} chunks  {source}  ({doc.get('title')})"
        )
    problems = [
        f"{s}: {d['status']}: {d.get('error')}"
        for s, d in done.items()
        if d["status"] != "ingested"
    ]
    if problems:
        raise DemoError("some documents were not ingested:\n  " + "\n  ".join(problems))


def _ask(api: str, questions: list[Question], api_key: str | None = None) -> tuple[int, list[str]]:
    """Ask every question; return how many met expectations and the failures."""
    met, failures = 0, []
    for number, item in enumerate(questions, start=1):
        status, body = http_json(
            "POST", f"{api}/query", {"question": item.question}, api_key=api_key
        )
        print(f"\n({number}/{len(questions)})")
        if status != 200:
            print(f"Q: {item.question}\n   POST /query answered {status}: {body}")
            failures.append(f"question {number} answered {status}")
            continue
        print(format_answer(body, item.question))
        # A PDF's source ends in #page=N: the file is the part before it.
        cited = {PurePosixPath(c["source"].split("#")[0]).name for c in body["citations"]}
        if item.expect_abstain:
            ok = bool(body["abstained"])
            verdict = "abstained, as expected" if ok else "expected an abstention"
        else:
            ok = not body["abstained"] and item.expected_source in cited
            verdict = (
                f"cites {item.expected_source}, as expected"
                if ok
                else f"expected a citation of {item.expected_source}"
            )
        met += ok
        print(f"   {'✓' if ok else '✗'} {verdict}")
    return met, failures


def run_demo(
    *,
    data_dir: Path,
    examples: Path | None = None,
    timeout_seconds: float = 180.0,
    strict: bool = False,
) -> int:
    """Run the demo; 0 when every document is ingested and every question answered."""
    # The handlers' own logs and metrics would bury the answers; warnings still show.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    try:
        examples = examples or find_repository_root() / "examples"
        questions = _read_questions(examples / "questions.json")
        _fresh_data_dir(data_dir)
        options = StackOptions(api_port=0, aws_port=0, data_dir=data_dir)
        with LocalStack(options) as stack:
            api = stack.endpoints.api
            print(f"Local stack up: API {api}, S3 + SQS {stack.endpoints.s3}")
            print(f"Embeddings: {Settings.from_env().embeddings}")
            sources = _upload(stack, examples / "docs")
            api_key = stack.endpoints.api_key
            _wait_for_ingestion(api, sources, timeout_seconds, api_key)
            met, failures = _ask(api, questions, api_key)
    except (DemoError, OSError, RaglineError, StackStartError) as exc:
        print(f"\nragline demo failed: {exc}")
        return 1
    print(
        f"\n{met}/{len(questions)} answers met their expectation; {len(failures)} failed requests."
    )
    if failures:
        print("ragline demo failed: " + "; ".join(failures))
        return 1
    if strict and met < len(questions):
        print("ragline demo failed: some answers missed their expectation (--strict)")
        return 1
    return 0
