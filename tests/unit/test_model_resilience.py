"""Retries with full jitter, error classification, and the fallback chain."""

from __future__ import annotations

import pytest
from ragline.errors import ModelError, ModelUnavailableError
from ragline.llm import ChatModel, GenerationRequest, ModelChain, RetryPolicy
from ragline.providers.retry import retryable_status

from tests.support.models import ScriptedModel

REQUEST = GenerationRequest("system", "user", "question?", (), "I don't know.")


def recording_policy(max_retries: int = 2) -> tuple[RetryPolicy, list[float]]:
    slept: list[float] = []
    return RetryPolicy(max_retries=max_retries, sleep=slept.append), slept


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(429, True), (500, True), (502, True), (503, True), (408, True),
     (400, False), (401, False), (403, False), (404, False), (None, False)],
)  # fmt: skip
def test_which_statuses_are_worth_a_retry(status: int | None, retryable: bool) -> None:
    assert retryable_status(status) is retryable


def test_full_jitter_stays_within_the_exponential_cap() -> None:
    # GIVEN a policy whose random draw is always the top of its range
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0, uniform=lambda low, high: high)
    # THEN the caps double per retry up to max_delay, and the draw starts at zero
    assert [policy.delay(n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    draws: list[tuple[float, float]] = []

    def lowest(low: float, high: float) -> float:
        draws.append((low, high))
        return low

    assert RetryPolicy(base_delay=0.5, uniform=lowest).delay(2) == 0.0
    assert draws == [(0.0, 2.0)]


def test_retryable_errors_are_retried_then_succeed() -> None:
    # GIVEN a model throttled twice
    model = ScriptedModel("m", ModelError("429", retryable=True), ModelError("503", retryable=True),
                          "answer [1]")  # fmt: skip
    policy, slept = recording_policy(max_retries=2)
    # WHEN it is called through the policy
    completion, attempts = policy.run(lambda: model.generate(REQUEST))
    # THEN the third attempt answers after two waits
    assert (completion.text, attempts, model.calls, len(slept)) == ("answer [1]", 3, 3, 2)


def test_a_non_retryable_error_fails_at_once() -> None:
    model = ScriptedModel("m", ModelError("401 bad key", retryable=False), "never")
    policy, slept = recording_policy()
    with pytest.raises(ModelError, match="401"):
        policy.run(lambda: model.generate(REQUEST))
    assert model.calls == 1 and slept == []


def test_retries_stop_when_spent() -> None:
    model = ScriptedModel("m", *[ModelError("500", retryable=True)] * 5)
    policy, slept = recording_policy(max_retries=2)
    with pytest.raises(ModelError, match="500"):
        policy.run(lambda: model.generate(REQUEST))
    assert model.calls == 3 and len(slept) == 2


def chain_of(*models: ChatModel, retries: int = 1) -> ModelChain:
    return ModelChain(models, recording_policy(retries)[0])


def test_the_chain_falls_back_when_the_first_model_fails_for_good() -> None:
    # GIVEN a primary that keeps failing and a healthy fallback
    primary = ScriptedModel("primary", *[ModelError("500", retryable=True)] * 2)
    backup = ScriptedModel("backup", "from the backup [1]")
    # WHEN the chain generates
    completion = chain_of(primary, backup, retries=1).generate(REQUEST)
    # THEN the backup answered, after the primary's retries, and the details say so
    assert completion.model == "backup" and completion.text == "from the backup [1]"
    assert primary.calls == 2 and backup.calls == 1
    assert completion.details["fallback"] is True
    assert completion.details["failed"] == ["fake:primary"]
    assert completion.details["attempts"] == 1 and completion.details["latency_ms"] == 1.0


def test_the_chain_skips_retries_on_errors_a_retry_cannot_fix() -> None:
    primary = ScriptedModel("primary", ModelError("400 context too long"))
    backup = ScriptedModel("backup", "ok [1]")
    completion = chain_of(primary, backup, retries=3).generate(REQUEST)
    assert primary.calls == 1 and completion.model == "backup"


def test_no_fallback_when_the_primary_answers() -> None:
    completion = chain_of(ScriptedModel("primary", "fine [1]"), ScriptedModel("b")).generate(
        REQUEST
    )
    assert completion.details["fallback"] is False and completion.details["failed"] == []


def test_every_model_failing_is_model_unavailable_naming_them() -> None:
    models = [ScriptedModel(n, ModelError(f"{n} down", retryable=False)) for n in ("a", "b")]
    with pytest.raises(ModelUnavailableError, match=r"tried fake:a, fake:b") as caught:
        chain_of(*models).generate(REQUEST)
    assert caught.value.status_code == 503
    assert caught.value.failures == (("fake:a", "a down"), ("fake:b", "b down"))


def test_unexpected_exceptions_are_not_swallowed_by_the_chain() -> None:
    # A bug is not an outage: it must surface, not silently fall back.
    broken = ScriptedModel("a", ZeroDivisionError("bug"))
    with pytest.raises(ZeroDivisionError):
        chain_of(broken, ScriptedModel("b", "x")).generate(REQUEST)


def test_model_unavailable_keeps_its_failures_when_given_citations() -> None:
    error = ModelUnavailableError("down", failures=(("a", "x"),)).with_citations([{"n": 1}])
    assert error.citations == [{"n": 1}] and error.failures == (("a", "x"),)
