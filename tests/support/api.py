"""Requests to the query Lambda as API Gateway sends them, and strict JSON parsing."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any


def strict_json(text: str) -> Any:
    """Parse as a strict client does: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def proxy_request(
    template: dict[str, Any],
    method: str,
    path: str,
    body: Any = None,
    query: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> dict[str, Any]:
    """A REST proxy event from a recorded one: ``body`` as JSON, or ``raw`` bytes as the
    base64 binary body API Gateway passes on for bytes that are not text."""
    request = copy.deepcopy(template)
    request.update(
        httpMethod=method,
        path=path,
        queryStringParameters=query,
        multiValueQueryStringParameters={k: [v] for k, v in (query or {}).items()} or None,
        body=None if body is None else json.dumps(body),
        isBase64Encoded=False,
    )
    if raw is not None:
        request.update(body=base64.b64encode(raw).decode(), isBase64Encoded=True)
    return request
