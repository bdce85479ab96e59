"""The extractive model: cites its best sentences, abstains when nothing covers the question."""

from __future__ import annotations

from ragline.llm import GenerationRequest, Passage
from ragline.llm.extractive import ExtractiveModel, content_terms

ABSTAIN = "The documents do not answer this."


def _request(question: str, *texts: str) -> GenerationRequest:
    passages = tuple(Passage(n, text, "Handbook") for n, text in enumerate(texts, start=1))
    return GenerationRequest("", "", question, passages, ABSTAIN)


def test_answers_with_the_covering_sentence_and_cites_it() -> None:
    # GIVEN passages of which the second states the answer
    request = _request(
        "How many vacation days do employees get each year?",
        "The office opens at nine. Parking is free for staff.",
        "Benefits are generous. Employees get 25 vacation days each year. Sick leave is separate.",
    )
    # WHEN the model answers
    completion = ExtractiveModel().generate(request)
    # THEN it quotes that sentence and cites passage 2, and reports estimated usage
    assert completion.text.startswith("Employees get 25 vacation days each year. [2]")
    assert "[1]" not in completion.text
    assert completion.usage.estimated and completion.usage.output_tokens > 0


def test_abstains_when_the_passages_miss_the_question() -> None:
    request = _request(
        "How do I configure a HorizontalPodAutoscaler with kubectl?",
        "Employees get 25 vacation days each year.",
    )
    assert ExtractiveModel().generate(request).text == ABSTAIN


def test_abstains_without_passages_or_content_words() -> None:
    assert ExtractiveModel().generate(_request("vacation days")).text == ABSTAIN
    assert ExtractiveModel().generate(_request("what is it?", "It is a thing.")).text == ABSTAIN


def test_identifiers_weigh_double() -> None:
    terms = content_terms("What does asyncio.ThreadGate default max_workers to?")
    assert terms["asyncio.threadgate"] == 2.0
    assert terms["max_workers"] == 2.0
    assert terms["threadgate"] == 1.0
    assert terms["default"] == 1.0
    assert "what" not in terms
