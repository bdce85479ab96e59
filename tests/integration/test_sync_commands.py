"""``ragline sync`` and ``ragline dlq redrive`` against the local stack's moto endpoint
and against a "deployed" stack found by its CloudFormation outputs (moto), in-process."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from ragline.dev import targets
from ragline.dev.aws import MotoEndpoint, client, provision
from ragline.dev.cli import main
from ragline.dev.stack import ENDPOINTS_FILE, Endpoints
from ragline.ingest import S3ObjectReader, get_ingestor
from ragline.ingest.pipeline import DocumentFailedError
from ragline.ingest.redrive import RedriveError, redrive

from tests.conftest import clear_caches
from tests.support.s3 import BUCKET

STACK = "ragline-test"


def _doc(title: str) -> bytes:
    return f"# {title}\n\nThe {title.lower()} page explains {title.lower()}.\n".encode()


@pytest.fixture
def environment(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The commands' settings, read afresh: the test database, the hash embedder."""
    monkeypatch.setenv("RAGLINE_DATABASE_URL", database_url)
    monkeypatch.setenv("RAGLINE_EMBEDDINGS", "hash")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    clear_caches()
    get_ingestor().store.connection().execute("TRUNCATE documents CASCADE")
    yield
    clear_caches()


@pytest.fixture
def local_stack(tmp_path: Path, environment: None) -> Iterator[tuple[Path, Any, Any]]:
    """A moto endpoint provisioned as `ragline dev` does, announced in endpoints.json,
    with nothing polling its queue: every event is lost, as after a crash."""
    moto = MotoEndpoint("127.0.0.1", 0)
    url = moto.start()
    try:
        # moto's state is the process's: start from an empty account, as `ragline dev` does
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"))
        resources = provision(url, bucket=BUCKET, queue_name="ingest", dlq_name="ingest-dlq")
        endpoints = Endpoints(
            api="http://127.0.0.1:9", s3=url, bucket=BUCKET,
            queue=resources.queue_url, dlq=resources.dlq_url,
        )  # fmt: skip
        (tmp_path / ENDPOINTS_FILE).write_text(endpoints.to_json())
        sqs = client("sqs", url)
        _drain(sqs, resources.queue_url)  # the s3:TestEvent of the notification set-up
        yield tmp_path, client("s3", url), sqs
    finally:
        moto.stop()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_sync_against_the_local_stack_repairs_lost_events(
    local_stack: tuple[Path, Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a store that holds a document whose object is gone (a `ragline dev` restart
    # empties moto) and a bucket with objects the store never heard of
    data_dir, s3, _ = local_stack
    s3.put_object(Bucket=BUCKET, Key="old.md", Body=_doc("Old"))
    get_ingestor().sync_object(S3ObjectReader(s3), BUCKET, "old.md")
    s3.delete_object(Bucket=BUCKET, Key="old.md")
    for name in ("alpha", "beta"):
        s3.put_object(Bucket=BUCKET, Key=f"{name}.md", Body=_doc(name.title()))

    # WHEN `ragline sync` runs, twice
    first = _run(capsys, "sync", "--data-dir", str(data_dir))
    second = _run(capsys, "sync", "--data-dir", str(data_dir), "--json")

    # THEN the first run ingests the new objects and deletes the orphan; the second finds
    # nothing to do
    assert first[0] == 0, first
    assert "ingested 2, unchanged 0, deleted 1, failed 0" in first[1]
    assert second[0] == 0, second
    assert json.loads(second[1])["counts"] == {
        "ingested": 0, "unchanged": 2, "deleted": 0, "failed": 0,
    }  # fmt: skip
    docs, _ = get_ingestor().store.list_documents(limit=10)
    assert sorted(d.source for d in docs) == [f"s3://{BUCKET}/alpha.md", f"s3://{BUCKET}/beta.md"]


def test_sync_exits_1_and_names_each_failure(
    local_stack: tuple[Path, Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, s3, _ = local_stack
    s3.put_object(Bucket=BUCKET, Key="bad.md", Body=_doc("Bad"), Metadata={"collection": "a b"})
    code, out, _ = _run(capsys, "sync", "--data-dir", str(data_dir))
    assert code == 1
    assert f"failed: s3://{BUCKET}/bad.md: invalid collection 'a b'" in out


def test_sync_without_a_running_stack_says_how_to_start_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "sync", "--data-dir", str(tmp_path))
    assert code == 2 and "start `ragline dev`" in err


def test_dlq_redrive_against_the_local_stack_moves_every_message(
    local_stack: tuple[Path, Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN dead letters (an outage sent their events past every retry)
    data_dir, _, sqs = local_stack
    endpoints = Endpoints.read(data_dir)
    bodies = [json.dumps({"n": index}) for index in range(13)]
    for body in bodies:
        sqs.send_message(QueueUrl=endpoints.dlq, MessageBody=body)

    # WHEN they are redriven
    code, out, _ = _run(capsys, "dlq", "redrive", "--data-dir", str(data_dir))

    # THEN all of them are back on the ingest queue, once, and the DLQ is empty
    assert code == 0 and out.startswith("13 messages moved")
    assert sorted(_drain(sqs, endpoints.queue)) == sorted(bodies)
    assert _drain(sqs, endpoints.dlq) == []


def _drain(sqs: Any, queue_url: str) -> list[str]:
    """Every message body on the queue (received and deleted)."""
    bodies: list[str] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


class FailingSqs:
    """An SQS client whose ``fail_on``-th batch send raises (a throttle, a lost connection)."""

    def __init__(self, sqs: Any, fail_on: int) -> None:
        self._sqs = sqs
        self._sends = 0
        self._fail_on = fail_on

    def send_message_batch(self, **kwargs: Any) -> Any:
        self._sends += 1
        if self._sends == self._fail_on:
            raise ConnectionError("connection reset by peer")
        return self._sqs.send_message_batch(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)


def test_a_redrive_that_fails_midway_loses_nothing(local_stack: tuple[Path, Any, Any]) -> None:
    # GIVEN 25 dead letters, and a queue that fails the second batch sent to it
    data_dir, _, sqs = local_stack
    endpoints = Endpoints.read(data_dir)
    bodies = [f"message {index}" for index in range(25)]
    for body in bodies:
        sqs.send_message(QueueUrl=endpoints.dlq, MessageBody=body)

    # WHEN a redrive runs into the failure
    with pytest.raises(RedriveError, match="connection reset") as stopped:
        redrive(FailingSqs(sqs, fail_on=2), endpoints.dlq, endpoints.queue)

    # THEN the first batch moved, the rest is visible in the DLQ again at once, and a
    # second redrive moves it: every message is on the queue exactly once
    assert stopped.value.moved == 10
    assert redrive(sqs, endpoints.dlq, endpoints.queue).moved == 15
    assert sorted(_drain(sqs, endpoints.queue)) == sorted(bodies)


# --- a deployed stack, found by its CloudFormation outputs ---------------------------------


@pytest.fixture
def deployed(environment: None) -> Iterator[tuple[Any, Any, str, str]]:
    """moto's AWS with a stack whose outputs name its bucket and DLQ, as ours does."""
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
        redrive_policy = {
            "deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"],
            "maxReceiveCount": "3",
        }
        queue = sqs.create_queue(
            QueueName="ingest", Attributes={"RedrivePolicy": json.dumps(redrive_policy)}
        )["QueueUrl"]
        outputs = {"BucketName": BUCKET, "DeadLetterQueueUrl": dlq, "ApiUrl": "https://x"}
        _create_stack(outputs)
        yield s3, sqs, queue, dlq


def _create_stack(outputs: dict[str, str], name: str = STACK) -> None:
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation", region_name="us-east-1").create_stack(
        StackName=name, TemplateBody=json.dumps(template)
    )


def test_sync_against_a_deployed_stack_with_a_reachable_database(
    deployed: tuple[Any, Any, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a deployed stack's bucket with an object, and RAGLINE_DATABASE_URL (a tunnel)
    s3, *_ = deployed
    s3.put_object(Bucket=BUCKET, Key="remote.md", Body=_doc("Remote"))
    # WHEN `ragline sync --stack` runs
    code, out, err = _run(capsys, "sync", "--stack", STACK, "--region", "us-east-1")
    # THEN it found the bucket by the stack's outputs and ingested the object here
    assert code == 0, err
    assert f"s3://{BUCKET}/ on stack {STACK}: ingested 1" in out
    assert get_ingestor().store.find_document(f"s3://{BUCKET}/remote.md") is not None


def test_sync_against_a_deployed_stack_runs_its_reconcile_function(
    deployed: tuple[Any, Any, str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a stack deployed with its reconcile function, and no route to its database
    _create_stack(
        {"BucketName": BUCKET, "DeadLetterQueueUrl": "https://q", "ReconcileFunctionName": "fn"},
        name="with-reconcile",
    )
    monkeypatch.delenv("RAGLINE_DATABASE_URL")
    clear_caches()
    report = {
        "bucket": BUCKET,
        "prefix": "",
        "counts": {"ingested": 3, "unchanged": 7, "deleted": 1, "failed": 0},
        "failures": [],
    }
    request = json.dumps({"bucket": BUCKET, "prefix": ""}).encode()
    invoked: list[Stubber] = []
    original = targets.deployed_target

    def stubbed(stack: str, region: str | None = None) -> targets.Target:
        # moto runs Lambda functions in Docker; the invoke is stubbed instead
        target = original(stack, region)
        stubber = Stubber(target.lambda_client)
        stubber.add_response(
            "invoke",
            {"StatusCode": 200, "Payload": _payload(report)},
            {"FunctionName": "fn", "Payload": request},
        )
        stubber.activate()
        invoked.append(stubber)
        return target

    monkeypatch.setattr(targets, "deployed_target", stubbed)

    # WHEN `ragline sync --stack` runs
    code, out, err = _run(capsys, "sync", "--stack", "with-reconcile", "--region", "us-east-1")

    # THEN the function was invoked with the stack's bucket and its report printed
    assert code == 0, err
    invoked[0].assert_no_pending_responses()
    assert "ingested 3, unchanged 7, deleted 1, failed 0" in out


def _payload(document: dict[str, Any]) -> Any:
    from io import BytesIO

    from botocore.response import StreamingBody

    raw = json.dumps(document).encode()
    return StreamingBody(BytesIO(raw), len(raw))


def test_dlq_redrive_against_a_deployed_stack(
    deployed: tuple[Any, Any, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN dead letters in the deployed stack's DLQ
    _, sqs, queue, dlq = deployed
    for index in range(3):
        sqs.send_message(QueueUrl=dlq, MessageBody=f"event {index}")
    # WHEN they are redriven by the stack's name
    code, out, err = _run(capsys, "dlq", "redrive", "--stack", STACK, "--region", "us-east-1")
    # THEN they are on the queue whose redrive policy names the DLQ
    assert code == 0, err
    assert out.startswith("3 messages moved") and queue in out
    assert sorted(_drain(sqs, queue)) == [f"event {index}" for index in range(3)]


def test_a_stack_without_the_outputs_is_refused_readably(
    deployed: tuple[Any, Any, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _create_stack({"ApiUrl": "https://x"}, name="not-ragline")
    code, _, err = _run(capsys, "sync", "--stack", "not-ragline", "--region", "us-east-1")
    assert code == 2 and "has no output BucketName, DeadLetterQueueUrl" in err


def test_sync_against_a_stack_without_reconcile_or_database_says_what_to_do(
    deployed: tuple[Any, Any, str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RAGLINE_DATABASE_URL")
    clear_caches()
    code, _, err = _run(capsys, "sync", "--stack", STACK, "--region", "us-east-1")
    assert code == 2 and "-c reconcile=true" in err and "RAGLINE_DATABASE_URL" in err


def test_dlq_list_shows_each_dead_letter_with_its_document_and_reason_and_keeps_it(
    local_stack: tuple[Path, Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a document that failed, whose event rests in the DLQ, and a body that is no event
    data_dir, s3, sqs = local_stack
    endpoints = Endpoints.read(data_dir)
    s3.put_object(Bucket=BUCKET, Key="bad.md", Body=_doc("Bad"), Metadata={"collection": "a b"})
    with pytest.raises(DocumentFailedError):
        get_ingestor().sync_object(S3ObjectReader(s3), BUCKET, "bad.md")
    event = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": BUCKET}, "object": {"key": "bad.md"}},
            }
        ]
    }
    sqs.send_message(QueueUrl=endpoints.dlq, MessageBody=json.dumps(event))
    sqs.send_message(QueueUrl=endpoints.dlq, MessageBody="not json")

    # WHEN the DLQ is listed, as text and as JSON
    code, out, _ = _run(capsys, "dlq", "list", "--data-dir", str(data_dir))
    json_code, json_out, _ = _run(capsys, "dlq", "list", "--data-dir", str(data_dir), "--json")

    # THEN both messages are shown with the object, its status and its reason
    assert code == 0 and json_code == 0
    assert "2 messages in" in out
    assert f"ObjectCreated:Put s3://{BUCKET}/bad.md  [failed: invalid collection 'a b'" in out
    assert "not an S3 event: message body is not JSON" in out
    listed = json.loads(json_out)["messages"]
    objects = [obj for message in listed for obj in message["objects"]]
    assert objects == [
        {
            "event": "ObjectCreated:Put",
            "source": f"s3://{BUCKET}/bad.md",
            "status": "failed",
            "error": objects[0]["error"],
        }
    ]
    assert objects[0]["error"].startswith("invalid collection 'a b'")
    # AND nothing was consumed: both are still there to redrive, visible at once
    assert sorted(_drain(sqs, endpoints.dlq)) == sorted([json.dumps(event), "not json"])
