"""Conversations: a follow-up is searched for as a standalone query (written by the
condense profile's model, or by the deterministic rewrite without one), answered with the
turns before it, and kept in a session of the caller's tenant."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ragline.answer import Answerer, Router
from ragline.config import Settings
from ragline.dev.stats import render_stats
from ragline.embeddings.hash import HashEmbedder
from ragline.errors import InvalidRequestError, ModelError, NotFoundError
from ragline.identity import Identity
from ragline.ingest import Ingestor
from ragline.ledger import Costs, Ledger
from ragline.llm import Usage
from ragline.store import Store
from ragline.telemetry.metrics import MetricsEmitter
from ragline.telemetry.pricing import get_price_table

from tests.support.models import ScriptedModel

RENTALS = {
    "s3://docs/rentals/bikes.md": b"# Bike rental\n\nA city bike rents for 20 euros a day. "
    b"The deposit for a bike is 50 euros, paid back when the bike is returned.\n",
    "s3://docs/rentals/kayaks.md": b"# Kayak rental\n\nA sea kayak rents for 45 euros a day. "
    b"The deposit for kayaks is 200 euros per kayak, held on a card.\n",
    "s3://docs/harbour/hours.md": b"# Harbour office\n\nThe harbour office opens at eight and "
    b"closes at six. Parking at the harbour costs 3 euros an hour.\n",
    "s3://docs/tenants/south/rentals.md": b"# South rentals\n\nSouth rents rowing boats; the "
    b"deposit for a rowing boat is 30 euros.\n",
}
FIRST = "What does the deposit cost?"
FOLLOW_UP = "And for kayaks?"
REWRITTEN = "What does the deposit for kayaks cost?"
SOUTH = Identity("south", frozenset({"query"}))
CONDENSE_USAGE = Usage(120, 9)


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    ingestor = Ingestor.from_settings(Settings(database_url=database_url))
    ingestor.store.ensure_tenant("south")
    for source, data in RENTALS.items():
        ingestor.ingest_bytes(source, data, collection="south" if "south" in source else None)
    return Settings(database_url=database_url, log_questions=True)


def answerer_with(settings: Settings, models: dict[str, ScriptedModel]) -> Answerer:
    store = Store(settings)
    emitter = MetricsEmitter.from_settings(settings)
    ledger = Ledger(settings, store, emitter, Costs.from_settings(settings))
    return Answerer(settings, store, HashEmbedder(), Router.from_settings(settings, models), ledger)


@pytest.fixture
def scripted(settings: Settings) -> tuple[Answerer, ScriptedModel, ScriptedModel]:
    """The answer model and the condense model, both scripted (and priced)."""
    answer = ScriptedModel("openai:gpt-4o", default="The deposit is 200 euros per kayak [1].")
    condense = ScriptedModel("openai:gpt-4o-mini", REWRITTEN, usage=CONDENSE_USAGE)
    configured = settings.with_overrides(llm="openai:gpt-4o", condense_llm="openai:gpt-4o-mini")
    answerer = answerer_with(configured, {answer.spec: answer, condense.spec: condense})
    return answerer, answer, condense


def new_session() -> str:
    return str(uuid.uuid4())


def test_a_follow_up_is_searched_for_as_the_condense_model_rewrote_it(
    scripted: tuple[Answerer, ScriptedModel, ScriptedModel], settings: Settings
) -> None:
    answerer, answer_model, condense_model = scripted
    session = new_session()
    # GIVEN a session whose first question was answered (no rewrite: nothing came before)
    first = answerer.answer(FIRST, session_id=session)
    assert first.rewritten_query is None and first.session_id == session
    assert condense_model.calls == 0
    # WHEN the elliptical follow-up comes in the same session
    second = answerer.answer(FOLLOW_UP, session_id=session)
    # THEN the condense model read the conversation and its query is what was searched
    assert condense_model.calls == 1
    assert FIRST in condense_model.requests[0].user and FOLLOW_UP in condense_model.requests[0].user
    assert second.rewritten_query == REWRITTEN
    assert second.rewrite is not None and second.rewrite.method == "model"
    assert (second.rewrite.model, second.rewrite.prompt) == ("openai:gpt-4o-mini", "condense@v1")
    assert second.citations[0].source == "s3://docs/rentals/kayaks.md"
    # AND the answer model got the earlier turn as messages, and the follow-up as asked
    request = answer_model.requests[-1]
    assert request.history == (("user", FIRST), ("assistant", first.answer))
    assert FOLLOW_UP in request.user
    # AND the rewrite is priced on its own line, a part of the total
    expected = get_price_table(None).generation_cost("openai", "gpt-4o-mini", CONDENSE_USAGE)
    usage = second.usage
    assert (usage.rewrite_input_tokens, usage.rewrite_output_tokens) == (120, 9)
    assert usage.rewrite_cost_usd == pytest.approx(expected.usd)
    assert usage.cost_usd is not None and usage.rewrite_cost_usd is not None
    assert usage.cost_usd > usage.rewrite_cost_usd > 0
    # AND the query log keeps the rewrite's model, tokens and cost beside the answer's
    store = Store(settings)
    row = next(
        r
        for r in store.query_log(datetime.now(UTC) - timedelta(hours=1))
        if r["request_id"] == second.request_id
    )
    assert row["rewrite_model"] == "openai:gpt-4o-mini" and row["session_id"] == session
    assert (row["rewrite_input_tokens"], row["rewrite_output_tokens"]) == (120, 9)
    assert row["rewrite_cost_usd"] == pytest.approx(expected.usd)
    since = datetime.now(UTC) - timedelta(hours=1)
    stats = store.query_stats(since)
    by_model = {r["model"]: r for r in stats["rewrites"]}
    assert by_model["openai:gpt-4o-mini"]["input_tokens"] >= 120
    # AND ragline stats shows the rewrites' own line, by the model that wrote them
    report = render_stats(stats, since, datetime.now(UTC))
    assert "follow-up rewrites (part of the cost above)" in report
    assert re.search(
        r"openai:gpt-4o-mini\s+\d+ queries  input [\d,]+  output [\d,]+  \$0\.0", report
    )


def test_a_streamed_follow_up_names_its_rewrite_before_the_answer(
    scripted: tuple[Answerer, ScriptedModel, ScriptedModel],
) -> None:
    answerer, _, _ = scripted
    # GIVEN a caller-kept history instead of a session
    history = [("user", FIRST), ("assistant", "A bike's deposit is 50 euros [1].")]
    # WHEN the follow-up is streamed
    events = list(answerer.stream(FOLLOW_UP, history=history))  # type: ignore[arg-type]
    # THEN the retrieval event names the rewritten query, and the final answer too
    assert events[0].data()["rewritten_query"] == REWRITTEN
    assert events[0].data()["citations"][0]["source"] == "s3://docs/rentals/kayaks.md"
    final = events[-1].data()
    assert final["rewritten_query"] == REWRITTEN and final["session_id"] is None
    assert final["usage"]["rewrite_input_tokens"] == 120


def test_a_failing_condense_model_falls_back_to_the_deterministic_rewrite(
    settings: Settings,
) -> None:
    # GIVEN a condense model that fails
    answer = ScriptedModel("openai:gpt-4o", default="200 euros [1].")
    condense = ScriptedModel("openai:gpt-4o-mini", ModelError("down", retryable=False))
    configured = settings.with_overrides(
        llm="openai:gpt-4o", condense_llm="openai:gpt-4o-mini", llm_max_retries=0
    )
    answerer = answerer_with(configured, {answer.spec: answer, condense.spec: condense})
    # WHEN a follow-up comes
    response = answerer.answer(FOLLOW_UP, history=[("user", FIRST), ("assistant", "50 euros.")])
    # THEN it is still answered, searched for as the deterministic rewrite
    assert response.rewrite is not None and response.rewrite.method == "fallback"
    assert response.rewritten_query == "And for kayaks? (deposit cost)"


def test_without_a_generative_model_the_deterministic_rewrite_names_the_subject(
    settings: Settings,
) -> None:
    # GIVEN the local default: the extractive model, which cannot rewrite
    answerer = answerer_with(settings, {})
    assert not answerer.condenser.uses_model
    session = new_session()
    answerer.answer(FIRST, session_id=session)
    # WHEN the elliptical follow-up comes
    response = answerer.answer(FOLLOW_UP, session_id=session)
    # THEN it is searched for with the first question's subject carried in, no model called
    assert response.rewritten_query == "And for kayaks? (deposit cost)"
    assert response.rewrite is not None
    assert (response.rewrite.method, response.rewrite.model) == ("fallback", None)
    assert response.usage.rewrite_input_tokens == 0 and response.usage.rewrite_cost_usd == 0
    assert response.citations[0].source == "s3://docs/rentals/kayaks.md"
    assert "200 euros" in response.answer


def test_a_session_is_its_tenants_alone(settings: Settings) -> None:
    answerer = answerer_with(settings, {})
    session = new_session()
    # GIVEN a session of the default tenant
    answerer.answer(FIRST, session_id=session)
    # WHEN another tenant names it, on its own collection
    # THEN it does not exist for that tenant: 404, as another tenant's collection is
    with pytest.raises(NotFoundError, match=f"session {session} does not exist"):
        answerer.answer(FOLLOW_UP, session_id=session, collection="south", identity=SOUTH)
    # AND the other tenant's own sessions work on its own collection
    own = new_session()
    answerer.answer(FIRST, session_id=own, collection="south", identity=SOUTH)
    follow = answerer.answer(
        "And for rowing boats?", session_id=own, collection="south", identity=SOUTH
    )
    assert follow.rewritten_query == "And for rowing boats? (deposit cost)"
    # AND the default tenant's session kept its own turn only
    turns = Store(settings).open_session(session, tenant="default", ttl_hours=1, turns=10)
    assert turns is not None and [t.question for t in turns] == [FIRST]


def test_an_expired_session_starts_again_empty(settings: Settings) -> None:
    store = Store(settings)
    session = new_session()
    # GIVEN a session with a turn, whose time is up
    assert store.open_session(session, tenant="default", ttl_hours=1, turns=10) == []
    store.append_turn(
        session, tenant="default", request_id="r1", question=FIRST, search_query=FIRST,
        answer="50 euros.", ttl_hours=1,
    )  # fmt: skip
    with store.connection().transaction():
        store.connection().execute(
            "UPDATE conversations SET expires_at = now() - interval '1 minute' WHERE id = %s",
            (session,),
        )
    # WHEN it is opened again
    turns = store.open_session(session, tenant="default", ttl_hours=1, turns=10)
    # THEN it has no turns: an expired conversation is not carried on
    assert turns == []


def test_a_request_with_both_a_session_and_a_history_is_refused(settings: Settings) -> None:
    answerer = answerer_with(settings, {})
    with pytest.raises(InvalidRequestError, match=r"session_id .* or history .* not both"):
        answerer.answer(FOLLOW_UP, session_id=new_session(), history=[("user", FIRST)])


def test_the_answer_prompt_carries_only_the_turns_that_fit_its_budget(
    settings: Settings, tmp_path: Path
) -> None:
    # GIVEN a history budget of 30 tokens and a long earlier exchange, then a short one
    answer = ScriptedModel("openai:gpt-4o", default="200 euros [1].")
    configured = settings.with_overrides(llm="openai:gpt-4o", history_tokens=30)
    answerer = answerer_with(configured, {answer.spec: answer})
    long_answer = "Bikes rent for 20 euros a day. " * 10
    history = [
        ("user", "How much is a bike?"),
        ("assistant", long_answer),
        ("user", FIRST),
        ("assistant", "50 euros for a bike [1]."),
    ]
    # WHEN the follow-up is answered
    answerer.answer(FOLLOW_UP, history=history)  # type: ignore[arg-type]
    # THEN the prompt carries the latest turns within 30 tokens, not the long answer
    assert answer.requests[-1].history == (
        ("user", FIRST),
        ("assistant", "50 euros for a bike [1]."),
    )
