"""Schemathesis checks of our own, loaded through SCHEMATHESIS_HOOKS by test_openapi_fuzz.py."""

from __future__ import annotations

import json
from typing import Any

import schemathesis


@schemathesis.check
def strict_json(ctx: Any, response: Any, case: Any) -> None:
    """Every body is JSON a strict parser reads: Python's json would take NaN, a browser's
    JSON.parse would not."""
    if response.status_code == 204 or not response.content:
        return
    content_type = response.headers.get("content-type", [""])[0]

    def refuse(constant: str) -> Any:
        raise AssertionError(f"the body holds {constant}, which is not JSON")

    if content_type.startswith("text/event-stream"):  # a streamed answer: JSON per event
        texts = [
            line.removeprefix(b"data: ")
            for line in response.content.splitlines()
            # OpenAI's chunk streams end with the sentinel "[DONE]", which is not JSON
            if line.startswith(b"data: ") and line != b"data: [DONE]"
        ]
        if not texts:
            raise AssertionError("an event stream without a single event")
    elif content_type.startswith("application/json"):
        texts = [response.content]
    else:
        raise AssertionError(f"a {content_type or 'untyped'} body: the API answers JSON")
    for text in texts:
        try:
            json.loads(text, parse_constant=refuse)
        except ValueError as exc:
            raise AssertionError(f"the body is not JSON: {exc}") from exc


@schemathesis.hook
def before_load_schema(context: Any, raw_schema: dict[str, Any]) -> None:
    """The document without API Gateway's key: `ragline dev` has no gateway, so a request
    without ``x-api-key`` is served locally; the key is checked by API Gateway on AWS, and
    the document stating it is tested in tests/integration/test_openapi_contract.py.
    Everything the handler itself checks is still fuzzed."""
    raw_schema.pop("security", None)
    raw_schema.get("components", {}).pop("securitySchemes", None)
    for item in raw_schema.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict):
                operation.pop("security", None)
