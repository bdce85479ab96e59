"""What the review queue tells operators: an SNS event per queued item, EMF metrics for
queue depth, age, time to decision and approvals, and the figures of ``ragline stats``."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws
from ragline.config import Settings
from ragline.dev.stats import run_stats
from ragline.identity import Identity
from ragline.reviews import ReviewQueue
from ragline.reviews.notify import Notifier
from ragline.store import Store
from ragline.telemetry.metrics import MetricsEmitter

from tests.support.emf import check_emf, emf_documents

REVIEWER = Identity("default", frozenset({"review"}), "reviewer0001")


def record(queue: ReviewQueue, *, model: str, reason: str = "critical") -> str:
    citation = {"n": 1, "document_id": str(uuid.uuid4()), "source": "s3://b/a.md",
                "title": None, "chunk_id": 1, "score": 0.5, "text": "t"}  # fmt: skip
    row = queue.store.record_answer({
        "id": uuid.uuid4(), "tenant": "default", "request_id": str(uuid.uuid4()),
        "state": "pending", "reason": reason, "reason_detail": None, "held": False,
        "collection": "default", "profile": "critical", "question": "q?", "answer": "a [1]",
        "citations": [citation], "passages": [citation], "provider": "openai",
        "model": model, "prompt": "answer-strict@v2", "cost_usd": 0.001,
    })  # fmt: skip
    queue._queued(row)
    return str(row["id"])


def value(document: dict[str, Any], name: str) -> float:
    """A metric's value in a document (Powertools writes a list of one)."""
    found = document[name]
    return float(found[0] if isinstance(found, list) else found)


@pytest.fixture
def store(store_settings: Settings) -> Store:
    return Store(store_settings)


@pytest.mark.usefixtures("emf_on")
def test_decisions_become_metrics_and_stats(
    store: Store, store_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = ReviewQueue(store_settings, store, Notifier(None), MetricsEmitter("Ragline", "rg"))
    # GIVEN four queued answers of two models, three decided: two of mini approved
    mini = [record(queue, model="mini") for _ in range(3)]
    large = record(queue, model="large")
    queue.approve(mini[0], REVIEWER)
    queue.approve(mini[1], REVIEWER)
    queue.reject(large, REVIEWER, reason="wrong")
    # WHEN the metrics are read from the output and ragline stats runs
    documents = emf_documents(capsys.readouterr().out)
    for document in documents:
        check_emf(document)
    report = run_stats(store, timedelta(hours=1))
    # THEN every queued item and every decision is a metric, and the queue's depth is read
    # each time it changes: 4 queued, then 3, 2, 1 left
    assert sum(value(d, "ReviewsQueued") for d in documents if "ReviewsQueued" in d) == 4
    depths = [value(d, "ReviewQueueDepth") for d in documents if "ReviewQueueDepth" in d]
    assert depths == [1, 2, 3, 4, 3, 2, 1]
    approvals = [(d.get("Model"), value(d, "ReviewApproved")) for d in documents
                 if "ReviewApproved" in d and "Model" in d]  # fmt: skip
    assert approvals == [("openai:mini", 1), ("openai:mini", 1), ("openai:large", 0)]
    assert all(value(d, "ReviewDecisionTime") >= 0 for d in documents if "ReviewDecisionTime" in d)
    # AND the stats give the queue and the approval rate per model and prompt
    assert "review queue  1 waiting (0 held)" in report
    assert "decisions     3: 2 approved, 0 corrected, 1 rejected    approval 67%" in report
    assert "openai:mini" in report and "answer-strict@v2" in report
    stats = store.review_stats(datetime.now(UTC) - timedelta(hours=1))
    rates = {r["model"]: r["approval_rate"] for r in stats["by_model_prompt"]}
    assert rates == {"mini": 1.0, "large": 0.0}
    assert stats["oldest_age_seconds"] >= 0 and stats["decision_p95_seconds"] is not None


def test_a_queued_item_is_published_to_the_topic(store: Store, store_settings: Settings) -> None:
    # GIVEN an item in the queue (written before moto stands in for AWS: the Data API
    # driver's calls are answered by the test adapter, not by moto)
    queue = ReviewQueue(store_settings, store, Notifier(None))
    item_id = record(queue, model="mini", reason="flagged")
    pending = store.review_items("default", states=["pending"], profile=None,
                                 reason="flagged", older_than_seconds=None, limit=10)  # fmt: skip
    (row,) = [r for r in pending if str(r["id"]) == item_id]
    with mock_aws():
        # AND a topic a team's queue subscribes to
        sns = boto3.client("sns", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        topic = sns.create_topic(Name="reviews")["TopicArn"]
        url = sqs.create_queue(QueueName="team")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        sns.subscribe(TopicArn=topic, Protocol="sqs",
                      Endpoint=arn["Attributes"]["QueueArn"])  # fmt: skip
        # WHEN the item is announced
        Notifier(topic).queued(row)
        # THEN the team receives its id, tenant and reason, and not the question
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    (message,) = messages
    envelope = json.loads(message["Body"])
    event: dict[str, Any] = json.loads(envelope["Message"])
    assert event["type"] == "review.queued" and event["review_id"] == item_id
    assert (event["tenant"], event["reason"], event["profile"]) == (
        "default",
        "flagged",
        "critical",
    )
    assert "question" not in event and "answer" not in event
    assert envelope["MessageAttributes"]["reason"]["Value"] == "flagged"
