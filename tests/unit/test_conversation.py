"""The deterministic rewrite of follow-ups, and the turns a prompt carries."""

from __future__ import annotations

import pytest
from ragline.answer.conversation import (
    Condenser,
    Conversation,
    Message,
    leans_on_context,
    recent,
    standalone_query,
)
from ragline.tokens import count_tokens


@pytest.mark.parametrize(
    ("follow_up", "previous", "rewritten"),
    [
        # elliptical: a lead and too few words of its own
        ("And for kayaks?", "What does the deposit cost?", "And for kayaks? (deposit cost)"),
        ("What about stashes?", "How do I delete a remote branch?",
         "What about stashes? (delete remote branch)"),
        # a pronoun standing for the previous subject
        ("How long is it valid?", "What does a day pass cost?",
         "How long is it valid? (day pass cost)"),
        ("Can I undo them?", "How do I list my last commits?",
         "Can I undo them? (last commits)"),
        # the follow-up's own words are not carried twice
        ("And the kayak deposit?", "What does the kayak rental cost?",
         "And the kayak deposit? (rental cost)"),
    ],
)  # fmt: skip
def test_a_follow_up_that_leans_on_the_conversation_carries_its_subject(
    follow_up: str, previous: str, rewritten: str
) -> None:
    assert standalone_query(follow_up, previous) == rewritten


@pytest.mark.parametrize(
    "question",
    [
        "How do I undo a commit that was pushed to the remote?",
        "Is there a way to rename a remote branch?",
        "What is the cancellation fee for group bookings?",
    ],
)
def test_a_question_that_stands_alone_is_searched_for_as_asked(question: str) -> None:
    # GIVEN a question naming its own subject (a relative "that", an "is there")
    # THEN it does not lean on the conversation, and is left as it is
    assert not leans_on_context(question)
    assert standalone_query(question, "What does the deposit cost?") == question


def test_without_a_previous_question_nothing_is_carried() -> None:
    assert standalone_query("And for kayaks?", None) == "And for kayaks?"
    # nor when the previous question has no word of substance
    assert standalone_query("And that?", "What is it?") == "And that?"


def test_the_rewrite_is_deterministic_and_bounded() -> None:
    previous = " ".join(f"term{i}" for i in range(20)) + "?"
    first = standalone_query("And it?", previous)
    # THEN the same inputs give the same query, carrying at most eight terms
    assert first == standalone_query("And it?", previous)
    assert first == "And it? (" + " ".join(f"term{i}" for i in range(8)) + ")"


def test_a_first_question_is_not_rewritten_and_no_model_is_needed() -> None:
    condenser = Condenser(None, history_tokens=100, max_question_chars=2000)
    # GIVEN no earlier turn THEN the question is the query, with no method
    assert condenser.rewrite("And for kayaks?", Conversation()).method is None
    # GIVEN earlier turns and no condense profile THEN the deterministic rewrite
    history = Conversation.from_history([("user", "What does the deposit cost?")], 20)
    rewrite = condenser.rewrite("And for kayaks?", history)
    assert (rewrite.method, rewrite.query) == ("fallback", "And for kayaks? (deposit cost)")


def test_recent_keeps_the_latest_messages_within_the_budget() -> None:
    messages = [Message("user", "one two three"), Message("assistant", "four five six seven")]
    messages.append(Message("user", "eight nine"))
    budget = count_tokens("four five six seven") + count_tokens("eight nine")
    # THEN the newest messages that fit, oldest first; a budget of 0 keeps none
    assert recent(messages, budget) == tuple(messages[1:])
    assert recent(messages, 0) == ()


def test_a_history_keeps_its_last_turns() -> None:
    history = [("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2")]
    conversation = Conversation.from_history(history, 1)  # type: ignore[arg-type]
    # THEN only the last turn, and the previous query is its question
    assert conversation.messages == (Message("user", "q2"), Message("assistant", "a2"))
    assert conversation.previous_query == "q2"
