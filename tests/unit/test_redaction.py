"""ragline.errors.redact: credential shapes and the configured keys come out of text."""

from __future__ import annotations

import pytest
from ragline.errors import ModelError, ModelUnavailableError, redact, remember_secret


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Incorrect API key provided: sk-proj-Zx81Qm4LrT0vB7nKp2Wc9Y.", "Zx81Qm4LrT0vB7nKp2Wc9Y"),
        ("header 'Authorization: Bearer eyJhbGciOi.J9xQ-_w' refused", "eyJhbGciOi.J9xQ-_w"),
        ("bearer abcdef0123456789", "abcdef0123456789"),
        ("the access key AKIAIOSFODNN7EXAMPLE is unknown", "AKIAIOSFODNN7EXAMPLE"),
        ("session key ASIAY34FZKBOKMUTVV7A expired", "ASIAY34FZKBOKMUTVV7A"),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        (
            '{"aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}',
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
    ],
)
def test_credential_shapes_are_redacted(text: str, secret: str) -> None:
    assert secret in text
    assert secret not in redact(text)
    assert "[redacted]" in redact(text)


def test_a_configured_key_of_any_shape_is_redacted() -> None:
    # GIVEN a key with no recognisable shape, registered as in use
    remember_secret("local-llm-token-3f9a77")
    # THEN it is cut wherever it appears
    assert redact("key local-llm-token-3f9a77 refused") == "key [redacted] refused"


def test_short_keys_and_ordinary_text_are_left_alone() -> None:
    # GIVEN a placeholder key of a local server, too short to be a secret
    remember_secret("test")
    text = "model gpt-4o-mini: HTTP 429: tested too often; task-manager rate limit"
    assert redact(text) == text


def test_model_errors_carry_redacted_messages() -> None:
    error = ModelError("openai:gpt-4o: HTTP 401: Incorrect API key provided: sk-abcdefgh12345678")
    assert "sk-abcdefgh12345678" not in str(error)
    unavailable = ModelUnavailableError(
        "no model", failures=(("openai:gpt-4o", "bad key sk-abcdefgh12345678"),)
    )
    assert unavailable.failures == (("openai:gpt-4o", "bad key sk-[redacted]"),)
