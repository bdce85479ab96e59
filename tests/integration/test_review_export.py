"""``ragline export-reviews`` feeds ``ragline eval``: a reviewer's correction changes the
gold, and the evaluation's figures with it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ragline.config import Settings
from ragline.dev.cli import main
from ragline.identity import Identity
from ragline.reviews import ReviewQueue
from ragline.store import get_store

from tests.conftest import clear_caches

DOCUMENTS = {
    "tides.md": "# Tides\n\nThe harbour ferry waits for the spring tide, which peaks at "
    "noon-thirty on full moon days.\n",
    "kayaks/rental.md": "# Kayak rental\n\nA kayak rents for a deposit of 75 crowns, "
    "returned when the paddle comes back dry.\n",
}
QUESTION = "What deposit does a kayak rental take?"


def passage(n: int, source: str, text: str) -> dict[str, Any]:
    return {"n": n, "document_id": str(uuid.uuid4()), "source": source, "title": None,
            "chunk_id": n, "score": 0.5, "text": text}  # fmt: skip


@pytest.fixture
def environment(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    corpus = tmp_path / "harbour"
    for name, text in DOCUMENTS.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(text)
    monkeypatch.setenv("RAGLINE_DATABASE_URL", database_url)
    monkeypatch.setenv("RAGLINE_DATA_DIR", str(tmp_path / "data"))
    clear_caches()
    yield tmp_path
    clear_caches()


def queue_answer(queue: ReviewQueue, tenant: str) -> str:
    """An answer citing the tides passage for the kayak question, queued for review."""
    queue.store.ensure_tenant(tenant)
    passages = [
        passage(1, "eval://harbour/tides.md", DOCUMENTS["tides.md"]),
        passage(2, "eval://harbour/kayaks/rental.md", DOCUMENTS["kayaks/rental.md"]),
    ]
    row = queue.store.record_answer({
        "id": uuid.uuid4(), "tenant": tenant, "request_id": str(uuid.uuid4()),
        "state": "pending", "reason": "critical", "reason_detail": None, "held": False,
        "collection": "harbour", "profile": "critical", "question": QUESTION,
        "answer": "The spring tide peaks at noon-thirty [1].", "citations": passages[:1],
        "passages": passages, "provider": "extractive", "model": "extractive",
        "prompt": "answer@v2", "cost_usd": 0.0,
    })  # fmt: skip
    return str(row["id"])


def export_and_eval(workspace: Path, tenant: str, capsys: pytest.CaptureFixture[str]) -> Any:
    cases = workspace / f"{tenant}.jsonl"
    assert main(["export-reviews", "--tenant", tenant, "-o", str(cases)]) == 0
    report = workspace / f"{tenant}.json"
    code = main(
        ["eval", str(cases), "--corpus", str(workspace / "harbour"), "--embeddings", "hash",
         "--modes", "keyword", "--quiet", "--json", str(report)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr()
    return [json.loads(line) for line in cases.read_text().splitlines()], json.loads(
        report.read_text()
    )


def test_a_correction_changes_the_gold_and_the_figures(
    environment: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = ReviewQueue.from_settings(Settings(database_url=database_url))
    # GIVEN the same answer (citing the tides page for a kayak question) queued twice:
    # one reviewer approves it as it is, another corrects it to the rental page
    approved, corrected = queue_answer(queue, "approvers"), queue_answer(queue, "correctors")
    queue.approve(approved, Identity("approvers", frozenset({"review"}), "rev000000001"))
    queue.correct(
        corrected, Identity("correctors", frozenset({"review"}), "rev000000002"),
        answer="A deposit of 75 crowns [2].", citations=[2],
    )  # fmt: skip
    get_store.cache_clear()
    # WHEN each tenant's decisions are exported and evaluated
    (approved_case,), approved_report = export_and_eval(environment, "approvers", capsys)
    (corrected_case,), corrected_report = export_and_eval(environment, "correctors", capsys)
    # THEN the approved case's gold is the page it cited, the corrected one's the page the
    # reviewer chose, with the words the correction added to contain
    assert approved_case["gold"] == ["tides.md"] and approved_case["question"] == QUESTION
    assert corrected_case["gold"] == ["kayaks/rental.md"]
    assert corrected_case["must_contain"] == ["deposit", "75", "crowns"]
    assert corrected_case["review"]["decided_by"] == "rev000000002"
    # AND ragline eval read both, and retrieval that finds the rental page scores a miss
    # against the approved gold and a hit against the corrected one
    approved_hit = approved_report["retrieval"]["keyword"]["hit_at_1"]
    corrected_hit = corrected_report["retrieval"]["keyword"]["hit_at_1"]
    assert (approved_hit, corrected_hit) == (0.0, 1.0)


def test_a_rejection_for_want_of_documents_is_a_case_to_abstain_on(
    environment: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = ReviewQueue.from_settings(Settings(database_url=database_url))
    reviewer = Identity("rejecters", frozenset({"review"}), "rev000000003")
    # GIVEN one answer rejected because the documents do not answer, one for another reason
    first, second = queue_answer(queue, "rejecters"), queue_answer(queue, "rejecters")
    queue.reject(first, reviewer, reason="no kayak prices here", category="not_in_documents")
    queue.reject(second, reviewer, reason="rude", category="unsafe")
    get_store.cache_clear()
    # WHEN they are exported
    cases = environment / "rejected.jsonl"
    assert main(["export-reviews", "--tenant", "rejecters", "-o", str(cases)]) == 0
    # THEN the first is a must-abstain case and the second is left out, and said to be
    (case,) = [json.loads(line) for line in cases.read_text().splitlines()]
    assert case["gold"] == [] and case["id"] == f"review-{first}"
    assert "1 cases written; left out: 1 rejected, not for want of documents" in (
        capsys.readouterr().err
    )
