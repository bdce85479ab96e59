"""The review queue through the query Lambda: answers enter it (critical profile, held
profile, thumbs-down), reviewers claim, approve, correct and reject once each, held
answers are 202 until reviewed; per tenant, through both store drivers."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ragline.config import Settings
from ragline.identity import Identity
from ragline.ingest import Ingestor
from ragline.store import get_store

from tests.support.api import proxy_request

pytestmark = pytest.mark.both_drivers

HANDBOOK = {
    "s3://docs/handbook/leave.md": b"# Leave policy\n\n## Vacation\nEmployees get 25 vacation "
    b"days each year. Unused vacation days expire on 31 March.\n",
    "s3://docs/handbook/expenses.md": b"# Expenses\n\n## Meals\nMeals on business trips are "
    b"reimbursed up to 60 euros per day with receipts.\n",
}
PROFILES = """
[profiles.simple]
llm = "extractive"
[profiles.critical]
llm = "extractive"
review = true
[profiles.held]
llm = "extractive"
hold = true
"""
REVIEWER = Identity("default", frozenset({"review"}), "reviewer0001")
OTHER_REVIEWER = Identity("default", frozenset({"review"}), "reviewer0002")
ASKER = Identity("default", frozenset({"query"}), "asker0000001")
STRANGER = Identity("acme", frozenset({"query", "review"}), "acme00000001")


@pytest.fixture(scope="module")
def seeded(database_url: str) -> str:
    ingestor = Ingestor.from_settings(Settings(database_url=database_url))
    for source, data in HANDBOOK.items():
        ingestor.ingest_bytes(source, data)
    ingestor.store.ensure_tenant("acme")
    get_store.cache_clear()
    return database_url


@pytest.fixture
def api(
    seeded: str,
    database_environment: dict[str, str],
    cold_start: Callable[..., ModuleType],
    tmp_path: Path,
) -> ModuleType:
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(PROFILES)
    return cold_start("query", **database_environment, RAGLINE_PROFILES_FILE=str(profiles))


@pytest.fixture
def call(
    api: ModuleType, event: Callable[[str], dict[str, Any]], lambda_context: Any
) -> Callable[..., tuple[int, Any]]:
    """One request as API Gateway sends it, with a fresh request id, acting for ``who``."""

    def send(
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        who: Identity | None = None,
    ) -> tuple[int, Any]:
        request = proxy_request(event("api_query"), method, path, body, query)
        request["requestContext"]["requestId"] = str(uuid.uuid4())
        if who is not None:
            request["requestContext"]["authorizer"] = who.to_authorizer()
        response = api.lambda_handler(request, lambda_context)
        return response["statusCode"], json.loads(response["body"])

    return send


def ask(call: Callable[..., Any], profile: str, question: str = "How many vacation days?") -> Any:
    status, body = call("POST", "/query", {"question": question, "profile": profile})
    assert status in (200, 202), body
    return body


def test_a_critical_answer_enters_the_queue_with_everything_a_reviewer_needs(
    call: Callable[..., Any],
) -> None:
    # GIVEN an answer from a profile that reviews every answer
    answer = ask(call, "critical")
    # THEN it answers at once and names its review item
    assert "25 vacation days" in answer["answer"] and answer["review_id"]
    # WHEN a reviewer lists the queue
    status, body = call("GET", "/reviews", query={"profile": "critical"}, who=REVIEWER)
    assert status == 200, body
    item = next(i for i in body["items"] if i["id"] == answer["review_id"])
    # THEN the item holds the question, every passage shown, the answer and its figures
    assert item["state"] == "pending" and item["reason"] == "critical"
    assert item["question"] == "How many vacation days?"
    assert item["answer"] == answer["answer"]
    assert [c["source"] for c in item["citations"]] == [c["source"] for c in answer["citations"]]
    assert {p["source"] for p in item["passages"]} >= {"s3://docs/handbook/leave.md"}
    assert item["model"] == "extractive" and item["prompt"] == answer["model"]["prompt"]
    assert item["cost_usd"] == answer["usage"]["cost_usd"]
    assert item["request_id"] == answer["request_id"] and item["held"] is False


def test_a_simple_answer_is_not_queued(call: Callable[..., Any]) -> None:
    # WHEN a profile without review answers
    answer = ask(call, "simple")
    # THEN no review item is made
    assert answer["review_id"] is None
    status, body = call("GET", "/reviews", query={"profile": "simple"}, who=REVIEWER)
    assert status == 200 and body["items"] == []


def test_each_decision_is_made_once_and_a_second_is_409(call: Callable[..., Any]) -> None:
    # GIVEN three queued answers
    ids = [ask(call, "critical")["review_id"] for _ in range(3)]
    # WHEN one reviewer claims the first, another cannot decide it
    status, claimed = call("POST", f"/reviews/{ids[0]}/claim", who=REVIEWER)
    assert status == 200 and claimed["state"] == "claimed"
    assert claimed["claimed_by"] == "reviewer0001"
    status, body = call("POST", f"/reviews/{ids[0]}/approve", who=OTHER_REVIEWER)
    assert status == 409 and "claimed by reviewer0001" in body["message"]
    # WHEN the claimant approves, the second reviewer corrects, and the third is rejected
    status, approved = call("POST", f"/reviews/{ids[0]}/approve", who=REVIEWER)
    assert status == 200, approved
    passage = approved["passages"][0]["n"]
    correction = {"answer": "Employees get 25 days.", "citations": [passage]}
    status, corrected = call("POST", f"/reviews/{ids[1]}/correct", correction, who=REVIEWER)
    assert status == 200, corrected
    rejection = {"reason": "not in the handbook", "category": "not_in_documents"}
    status, rejected = call("POST", f"/reviews/{ids[2]}/reject", rejection, who=OTHER_REVIEWER)
    assert status == 200, rejected
    # THEN each records its reviewer, time and outcome
    assert approved["state"] == "approved" and approved["decided_by"] == "reviewer0001"
    assert approved["final_answer"] == approved["answer"] and approved["decided_at"]
    assert corrected["state"] == "corrected" and corrected["final_answer"] == correction["answer"]
    assert [c["n"] for c in corrected["final_citations"]] == [passage]
    assert rejected["state"] == "rejected" and rejected["decided_by"] == "reviewer0002"
    assert rejected["decision_category"] == "not_in_documents"
    # AND any second decision is a 409 naming the first
    for item_id, action, body in (
        (ids[0], "reject", rejection),
        (ids[1], "approve", None),
        (ids[2], "correct", correction),
    ):
        status, refused = call("POST", f"/reviews/{item_id}/{action}", body, who=REVIEWER)
        assert status == 409, refused
        assert "already" in refused["message"]
    # AND the decided items leave the queue, found by their state
    status, body = call("GET", "/reviews", query={"state": "rejected"}, who=REVIEWER)
    assert ids[2] in {i["id"] for i in body["items"]}
    status, body = call("GET", "/reviews", who=REVIEWER)
    assert not set(ids) & {i["id"] for i in body["items"]}


def test_a_correction_citing_a_passage_the_item_lacks_is_a_400(call: Callable[..., Any]) -> None:
    item_id = ask(call, "critical")["review_id"]
    correction = {"answer": "Twenty-five.", "citations": [99]}
    status, body = call("POST", f"/reviews/{item_id}/correct", correction, who=REVIEWER)
    assert status == 400 and "99" in body["message"]


def test_a_held_answer_is_202_until_approved_then_returned(call: Callable[..., Any]) -> None:
    # WHEN a holding profile answers
    held = ask(call, "held")
    # THEN the caller gets a 202 with the review id and the citations, not the text
    assert set(held) >= {"review_id", "citations", "location", "request_id"}
    assert "answer" not in held and held["state"] == "pending" and held["citations"]
    # AND reading it before review gives no answer
    status, body = call("GET", held["location"], who=ASKER)
    assert status == 200 and body["state"] == "pending" and body["answer"] is None
    # WHEN a reviewer corrects it
    status, item = call("GET", held["location"], who=REVIEWER)
    assert item["held"] is True and "25 vacation days" in item["answer"]
    n = item["passages"][0]["n"]
    correction = {"answer": "25 days a year [1].", "citations": [n]}
    status, _ = call("POST", f"/reviews/{held['review_id']}/correct", correction, who=REVIEWER)
    assert status == 200
    # THEN the caller reads the corrected answer with its citations
    status, body = call("GET", held["location"], who=ASKER)
    assert status == 200 and body["state"] == "corrected"
    assert body["answer"] == "25 days a year [1]." and len(body["citations"]) == 1


def test_a_held_answer_stays_out_of_its_session_until_reviewed(
    call: Callable[..., Any], seeded: str
) -> None:
    from ragline.answer.answerer import HELD_TURN
    from ragline.config import get_settings

    # GIVEN a holding profile's answer given in a session
    session = str(uuid.uuid4())
    body = {"question": "How many vacation days?", "profile": "held", "session_id": session}
    status, held = call("POST", "/query", body)
    assert status == 202, held
    # WHEN the session is read back, as the next follow-up would read it
    turns = get_store(get_settings()).open_session(
        session, tenant="default", ttl_hours=24, turns=10
    )
    # THEN it keeps the question, but not the text nobody has approved
    assert turns is not None and [t.question for t in turns] == ["How many vacation days?"]
    assert turns[0].answer == HELD_TURN and "25" not in turns[0].answer


def test_a_thumbs_down_queues_the_kept_answer(call: Callable[..., Any]) -> None:
    # GIVEN an answer that was not queued
    answer = ask(call, "simple", "What are meals reimbursed up to?")
    assert answer["review_id"] is None
    # WHEN its caller rates it down
    rating = {"request_id": answer["request_id"], "rating": "down", "comment": "too vague"}
    status, body = call("POST", "/feedback", rating)
    # THEN it enters the queue as thumbs_down, with its passages
    assert status == 200 and body["review_id"]
    status, item = call("GET", f"/reviews/{body['review_id']}", who=REVIEWER)
    assert item["reason"] == "thumbs_down" and item["reason_detail"] == "too vague"
    assert item["question"] == "What are meals reimbursed up to?" and item["passages"]
    # AND a second thumbs-down queues nothing more
    status, again = call("POST", "/feedback", rating)
    assert status == 200 and "review_id" not in again


def test_another_tenants_item_is_404_and_scopes_are_checked(call: Callable[..., Any]) -> None:
    item_id = ask(call, "critical")["review_id"]
    # WHEN another tenant reads or decides the item
    for method, path in (("GET", ""), ("POST", "/approve"), ("POST", "/claim")):
        status, body = call(method, f"/reviews/{item_id}{path}", who=STRANGER)
        # THEN it does not exist for them
        assert status == 404, body
    # AND its queue is empty
    status, body = call("GET", "/reviews", who=STRANGER)
    assert status == 200 and body["items"] == []
    # AND a key without the review scope may not list or decide
    assert call("GET", "/reviews", who=ASKER)[0] == 403
    assert call("POST", f"/reviews/{item_id}/approve", who=ASKER)[0] == 403


def test_list_filters_by_reason_and_age(call: Callable[..., Any]) -> None:
    item_id = ask(call, "critical")["review_id"]
    status, body = call("GET", "/reviews", query={"reason": "critical"}, who=REVIEWER)
    assert item_id in {i["id"] for i in body["items"]}
    status, body = call("GET", "/reviews", query={"reason": "thumbs_down"}, who=REVIEWER)
    assert item_id not in {i["id"] for i in body["items"]}
    status, body = call("GET", "/reviews", query={"older_than_seconds": "3600"}, who=REVIEWER)
    assert status == 200 and item_id not in {i["id"] for i in body["items"]}
    status, body = call("GET", "/reviews", query={"state": "lost"}, who=REVIEWER)
    assert status == 400


def test_a_streamed_held_answer_sends_its_passages_but_never_its_text(
    api: ModuleType, event: Callable[[str], dict[str, Any]], lambda_context: Any
) -> None:
    # GIVEN a holding profile's question asked for server-sent events
    request = copy.deepcopy(event("api_query"))
    request["requestContext"]["requestId"] = str(uuid.uuid4())
    request["body"] = json.dumps(
        {"question": "How many vacation days?", "profile": "held", "stream": True}
    )
    # WHEN the handler answers it (buffered: every event in one body)
    response = api.lambda_handler(request, lambda_context)
    frames = [block for block in response["body"].split("\n\n") if block.strip()]
    named = {}
    for block in frames:
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        named[lines["event"]] = json.loads(lines["data"])
    # THEN the passages and the final event come, held, with no text and no deltas
    assert response["statusCode"] == 200 and "delta" not in named
    assert named["retrieval"]["citations"]
    final = named["final"]
    assert final["held"] is True and final["answer"] == "" and final["review_id"]
