"""Helpers for the REST handler: error bodies, request limits, identifiers."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from aws_lambda_powertools.event_handler import Response, content_types

from ragline.errors import InvalidRequestError


def error_response(status: int, message: str, **extra: Any) -> Response[str]:
    """A JSON error body with a readable message, never a stack trace.

    ``extra`` adds fields the caller can still use, such as the citations retrieved
    for a question no model could answer.
    """
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"message": message, "statusCode": status, **extra}),
    )


def validation_message(errors: Sequence[Any]) -> str:
    """One readable sentence from pydantic's validation errors."""
    parts = []
    for error in errors:
        location = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
        where = ".".join(location) or "request body"
        message = error.get("msg", "is invalid")
        if error.get("type") == "json_invalid":
            where, message = "request body", "is not valid JSON"
        elif error.get("type") == "missing":
            message = "is required"
        parts.append(f"{where}: {message}")
    return "invalid request: " + "; ".join(parts) if parts else "invalid request"


def oversized_body_response(event: dict[str, Any], limit: int) -> dict[str, Any] | None:
    """A 413 proxy response when the request body is over ``limit`` bytes, else None."""
    body = event.get("body") or ""
    size = len(base64.b64decode(body)) if event.get("isBase64Encoded") else len(body.encode())
    if size <= limit:
        return None
    return {
        "statusCode": 413,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(
            {"message": f"request body is {size} bytes; the limit is {limit}", "statusCode": 413}
        ),
        "isBase64Encoded": False,
    }


def as_json_request(event: dict[str, Any]) -> dict[str, Any]:
    """The event with its body declared JSON, whatever Content-Type the client sent.

    The API speaks only JSON, but ``curl -d`` labels bodies as form data; read as a form,
    a JSON body would fail validation with a confusing message.
    """
    if not event.get("body"):
        return event
    headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() != "content-type"}
    multi = {
        k: v
        for k, v in (event.get("multiValueHeaders") or {}).items()
        if k.lower() != "content-type"
    }
    headers["Content-Type"] = "application/json"
    multi["Content-Type"] = ["application/json"]
    return {**event, "headers": headers, "multiValueHeaders": multi}


def document_id(value: str) -> UUID:
    """Parse a document id from a path; a malformed one is the caller's error (400)."""
    try:
        return UUID(value)
    except ValueError as exc:
        raise InvalidRequestError(f"document id {value!r} is not a UUID") from exc
