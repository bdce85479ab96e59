"""Helpers for the REST handler: error bodies, the error-to-status mapping, request limits."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from ragline.errors import DatabaseUnavailableError, ModelUnavailableError, RaglineError

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver


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


def handle_errors(app: APIGatewayRestResolver, logger: Logger) -> None:
    """Map errors to responses: domain errors to their status codes, validation errors to
    400, unknown routes to 404, and anything else to a 500 naming the request id."""

    @app.not_found
    def handle_unknown_route(error: Exception) -> Response[str]:
        event = app.current_event
        return error_response(404, f"no route for {event.http_method} {event.path}")

    @app.exception_handler(RequestValidationError)
    def handle_validation(error: RequestValidationError) -> Response[str]:
        return error_response(400, validation_message(error.errors()))

    @app.exception_handler(ModelUnavailableError)
    def handle_no_model(error: ModelUnavailableError) -> Response[str]:
        # 503 with the sources: the caller can show them though no model wrote an answer.
        logger.error("no model answered", extra={"failures": dict(error.failures)})
        return error_response(503, str(error), citations=error.citations)

    @app.exception_handler(DatabaseUnavailableError)
    def handle_database_down(error: DatabaseUnavailableError) -> Response[str]:
        # The store logged why; the caller learns when to come back, not the driver's text.
        response = error_response(error.status_code, str(error))
        response.headers["Retry-After"] = str(error.retry_after_seconds)
        return response

    @app.exception_handler(RaglineError)
    def handle_domain_error(error: RaglineError) -> Response[str]:
        if error.status_code >= 500:
            logger.exception("request failed")
        return error_response(error.status_code, str(error))

    @app.exception_handler(Exception)
    def handle_unexpected(error: Exception) -> Response[str]:
        logger.exception("unexpected error")
        request_id = app.current_event.request_context.request_id
        return error_response(500, f"internal error (request id {request_id})")


def rejected_query(event: dict[str, Any], response: dict[str, Any]) -> dict[str, Any] | None:
    """For ``POST /query`` answered with an error status, what the query log keeps of it:
    ``request_id``, ``status_code``, and the ``collection`` and ``profile`` asked for (None
    when not given, "" when not a plausible name). None for other requests and for a
    database outage, which cannot be written to the database it is about."""
    status = int(response.get("statusCode", 200))
    if event.get("httpMethod") != "POST" or event.get("path") != "/query" or status < 400:
        return None
    if status == DatabaseUnavailableError.status_code and _message(response) == str(
        DatabaseUnavailableError()
    ):
        return None
    raw = event.get("body") or "{}"
    try:
        body = json.loads(base64.b64decode(raw) if event.get("isBase64Encoded") else raw)
    except ValueError:  # not JSON, not UTF-8, not base64
        body = {}
    if not isinstance(body, dict):
        body = {}

    def name(key: str) -> str | None:
        # What was refused may be anything; a name is kept only if it could be one.
        value = body.get(key)
        if value is None:
            return None
        plausible = isinstance(value, str) and len(value) <= 64 and value.isprintable()
        return value if plausible else ""

    return {
        # a request without an id (a hand-made event) still gets a row of its own
        "request_id": str(event.get("requestContext", {}).get("requestId") or uuid.uuid4()),
        "status_code": status,
        "collection": name("collection"),
        "profile": name("profile"),
    }


def _message(response: dict[str, Any]) -> str | None:
    try:
        message = json.loads(response.get("body") or "{}").get("message")
    except (ValueError, AttributeError):
        return None
    return message if isinstance(message, str) else None
