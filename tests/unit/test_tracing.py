"""Tracing is on inside Lambda, off elsewhere, and wraps the handler only when on."""

from __future__ import annotations

from typing import Any

import pytest
from ragline.config import Settings
from ragline.telemetry.tracing import trace_handler


def test_tracing_defaults_follow_the_runtime() -> None:
    assert Settings.from_env({}).tracing is False
    assert Settings.from_env({"AWS_LAMBDA_FUNCTION_NAME": "ragline-query"}).tracing is True
    off = {"AWS_LAMBDA_FUNCTION_NAME": "ragline-query", "RAGLINE_TRACING": "false"}
    assert Settings.from_env(off).tracing is False


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"echo": event}


def test_off_leaves_the_handler_untouched() -> None:
    assert trace_handler(Settings(tracing=False))(handler) is handler


def test_on_wraps_the_handler_and_keeps_its_result(monkeypatch: pytest.MonkeyPatch) -> None:
    # No X-Ray daemon here: Powertools' switch keeps the SDK from sending segments.
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    traced = trace_handler(Settings(tracing=True))(handler)
    assert traced is not handler

    class Context:
        function_name = "ragline-query"

    assert traced({"a": 1}, Context()) == {"echo": {"a": 1}}
