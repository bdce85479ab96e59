"""Helpers for the REST handler: the resolver, error bodies, the error-to-status mapping,
what the OpenAPI document says about errors, request limits, and server-sent events."""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.shared.json_encoder import Encoder

from ragline.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    ForbiddenError,
    InvalidRequestError,
    ModelUnavailableError,
    RaglineError,
    UnauthorizedError,
)
from ragline.filters import openapi_schemas
from ragline.identity import Authentication, Identity
from ragline.schemas import COLLECTION_PATTERN, CURSOR_PATTERN, TEXT_PATTERN, ErrorBody

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.event_handler.openapi.models import OpenAPI
    from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

    from ragline.config import Settings

# NaN and Infinity are not JSON: a response carrying one fails loudly (a 500 naming the
# request id, or an integration error) rather than reaching a client that cannot parse it.
to_json = partial(json.dumps, separators=(",", ":"), cls=Encoder, allow_nan=False)

ERRORS: dict[int, str] = {
    400: "The request is invalid: the message says which field and why.",
    401: "No API key in the x-api-key header, or one that is malformed, unknown, revoked or "
    "expired (with api_auth iam or cognito: no signature or token).",
    403: "The caller lacks the scope this route needs (on a resource of its own tenant), or "
    "its IAM principal or token names no tenant.",
    404: "No such route, document or collection, or one of another tenant (never told apart).",
    409: "The collection was embedded with another model than the one configured.",
    413: "The request body is over RAGLINE_MAX_BODY_BYTES.",
    502: "The embedding model failed (no answer is written without the search), or no "
    "configured model exists at its provider (a misconfiguration: retrying will not help; "
    "/query then carries the retrieved passages as citations).",
    503: "The database, or every model of the profile, is unavailable; retry later.",
}


# A streamed answer's body (docs/api.md, "Streamed answers"): server-sent events, each an
# `event:` line naming it and a `data:` line of JSON.
EVENT_STREAM_BODY = {
    "schema": {
        "type": "string",
        "description": "server-sent events: retrieval, delta..., then final (the JSON "
        "response) or error",
    }
}


def documented_errors(
    *statuses: int,
    ok: str = "Successful Response",
    secured: bool = True,
    streams: type | None = None,
) -> dict[int, OpenAPIResponse]:
    """A route's responses for the OpenAPI document: 200 (its return type) and the
    error statuses it can answer, each with the error body. 400 and 503 go on every
    route: any input can be invalid, and any route reads the database; 401, 403 and 404
    on every ``secured`` one (a key, its scopes, and the tenant's own resources)."""
    responses: dict[int, OpenAPIResponse] = {200: {"description": ok}}
    if streams is not None:  # the JSON response, or (asked for) its events
        responses[200] = {
            "description": ok,
            "content": {
                content_types.APPLICATION_JSON: {"model": streams},
                "text/event-stream": EVENT_STREAM_BODY,  # type: ignore[dict-item]
            },
        }
    for status in sorted({400, 503, *statuses, *((401, 403, 404) if secured else ())}):
        responses[status] = {
            "description": ERRORS[status],
            "content": {content_types.APPLICATION_JSON: {"model": ErrorBody}},
        }
    return responses


# What API Gateway answers before the function runs, on the deployed API (`ragline dev`
# has no gateway): its bodies are {"message": ...}, the error body without statusCode.
GATEWAY_ERRORS: dict[int, str] = {
    403: "API Gateway: refused before the function ran (with api_auth=iam, a request not "
    "signed or signed wrongly).",
    429: "API Gateway: over the key's throttle (rate, burst) or its daily quota; retry later.",
}
API_KEY_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": "x-api-key",
    "description": "An API key of a tenant (`ragline keys create`); its scopes decide the "
    "routes: query (/query, /retrieve, /feedback), read (GET /documents...), write "
    "(DELETE /documents/{id}). `ragline dev` prints its development key; the deployed API's "
    "authorizer checks the same keys.",
}
# The scheme the document declares, by how the API identifies callers (RAGLINE_API_AUTH).
SECURITY_SCHEMES: dict[str, tuple[str, dict[str, str]]] = {
    "key": ("apiKey", API_KEY_SCHEME),
    "iam": (
        "sigv4",
        {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "An AWS Signature Version 4 of an IAM principal the stack maps to a "
            "tenant and scopes (iam_principals); scopes as for API keys.",
        },
    ),
    "cognito": (
        "cognito",
        {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "A token of the stack's Cognito user pool; its tenant claim "
            "(custom:tenant unless configured) names the tenant, its ragline/<scope> scopes "
            "and ragline-<scope> groups the scopes.",
        },
    ),
}
# Operations API Gateway serves without a key (stacks/api.py, OPEN_ROUTES).
OPEN_OPERATIONS = {("/health", "get")}


class RestResolver(APIGatewayRestResolver):
    """Powertools' REST resolver with validation on, JSON without NaN, and an OpenAPI
    document that shows the errors the API really answers.

    Powertools documents a 422 for every validated route; ragline answers invalid
    requests with 400 (see ``handle_errors``), which the routes document themselves.
    The document also states what API Gateway adds in front: the security scheme of
    ``auth`` (the ``x-api-key`` of ragline's keys by default; SigV4 or a Cognito token)
    and its 403 and 429. ``profiles`` are the routing profiles a request may name.
    """

    def __init__(self, profiles: Sequence[str] = (), auth: str = "key") -> None:
        super().__init__(enable_validation=True, serializer=to_json)
        self.profiles = tuple(profiles)
        self.security_scheme = SECURITY_SCHEMES[auth]  # how callers are identified

    def enable_swagger(self, *, path: str = "/swagger", **options: Any) -> None:
        """Powertools' Swagger UI and OpenAPI document at ``path``, set up by its first
        request: Powertools imports the document's models when the route is added, about
        50 ms of every cold start for a page few requests ask for."""
        swagger: list[Callable[..., Any]] = []

        @self.get(path, include_in_schema=False)
        def lazy_swagger() -> Any:
            if not swagger:
                routes = len(self._static_routes)
                with warnings.catch_warnings():  # "already registered": this route, meant
                    warnings.simplefilter("ignore", UserWarning)
                    super(RestResolver, self).enable_swagger(path=path, **options)
                added = self._static_routes[routes:]  # Powertools' route, behind this one
                del self._static_routes[routes:]
                swagger.append(added[0].func)
            return swagger[0]()

    def get_openapi_schema(self, **kwargs: Any) -> OpenAPI:
        """The OpenAPI document, without the 422 responses no route ever sends."""
        # Imported here: only /swagger needs the document's models, not the cold start.
        from aws_lambda_powertools.event_handler.openapi.models import OpenAPI

        spec = super().get_openapi_schema(**kwargs)
        document = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
        for path, item in document.get("paths", {}).items():
            for method, operation in item.items():
                if isinstance(operation, dict):
                    self._gateway(path, method, operation)
        components = document.setdefault("components", {})
        name, scheme = self.security_scheme
        components.setdefault("securitySchemes", {})[name] = scheme
        document["security"] = [{name: []}]
        schemas = components.get("schemas", {})
        if "#/components/schemas/MetadataFilter" in json.dumps(schemas):
            schemas.update(openapi_schemas())  # recursive: referenced, not inlined
        profile = schemas.get("QueryRequest", {}).get("properties", {}).get("profile")
        if profile and self.profiles:  # only the configured names are served
            profile["anyOf"][0] = {"type": "string", "enum": sorted(self.profiles)}
        paths = json.dumps(document.get("paths", {}))
        for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
            if f'/{unused}"' not in paths:
                schemas.pop(unused, None)
        return OpenAPI.model_validate(document)

    @staticmethod
    def _gateway(path: str, method: str, operation: dict[str, Any]) -> None:
        """One operation as deployed: no 422; API Gateway's 429, and its key and 403
        unless the route is open."""
        responses = operation.setdefault("responses", {})
        responses.pop("422", None)
        open_route = (path, method) in OPEN_OPERATIONS
        for status, description in GATEWAY_ERRORS.items():
            if status == 403 and open_route:
                continue
            responses.setdefault(
                str(status),
                {
                    "description": description,
                    "content": {
                        content_types.APPLICATION_JSON: {
                            "schema": {"$ref": "#/components/schemas/ErrorBody"}
                        }
                    },
                },
            )
        if open_route:
            operation["security"] = []

    def allowed_methods(self, path: str) -> list[str]:
        """The methods some route serves on ``path``; empty when no route has the path."""
        routes = self._static_routes + self._dynamic_routes
        return sorted({route.method for route in routes if route.rule.match(path)})


KEYS = Authentication()  # ragline's API keys: the key authorizer, or ragline dev's gateway


def authentication(settings: Settings) -> Authentication:
    """How the function identifies callers (RAGLINE_API_AUTH and what it needs), checked
    at cold start: ConfigurationError names a bad RAGLINE_IAM_PRINCIPALS entry."""
    if settings.api_auth == "iam":
        try:
            return Authentication.iam(
                {arn: (tenant, scopes) for arn, tenant, scopes in settings.iam_principals}
            )
        except InvalidRequestError as exc:
            raise ConfigurationError(f"invalid RAGLINE_IAM_PRINCIPALS: {exc}") from exc
    return Authentication(settings.api_auth, tenant_claim=settings.tenant_claim)


def caller(event: dict[str, Any], auth: Authentication = KEYS) -> Identity:
    """The caller's identity, read from the request's context the way ``auth`` says: the
    authorizer's ``tenant`` and ``scopes`` (ragline's API keys, on AWS through the Lambda
    authorizer, locally through ``ragline dev``'s gateway), the SigV4 principal
    (``identity.userArn``) or the Cognito token's ``claims``. UnauthorizedError (401)
    without a credential, ForbiddenError (403) for one that names no tenant of ours."""
    context = event.get("requestContext")
    return auth.identify(context if isinstance(context, dict) else None)


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response[str]:
    """A JSON error body with a readable message, never a stack trace.

    ``extra`` adds fields the caller can still use, such as the citations retrieved
    for a question no model could answer.
    """
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=to_json({"message": message, "statusCode": status, **extra}),
        headers=headers,
    )


# pydantic's messages, reworded where they would puzzle a caller (by error type); the
# templates read the error's context (``le``, ``ge``).
READABLE_ERRORS: dict[str, str] = {
    "json_invalid": "request body: is not valid JSON",
    "missing": "{where}: is required",
    "string_unicode": "{where}: is not valid Unicode text",
    "uuid_parsing": "{where}: is not a UUID",
    "uuid_type": "{where}: is not a UUID",
    "int_type": "{where}: must be an integer (a JSON number, not a string or a boolean)",
    "extra_forbidden": "{where}: is not a known field",
    "less_than_equal": "{where} must be at most {le}",
    "greater_than_equal": "{where} must be at least {ge}",
    "filter_invalid": "{where}{path}: {reason}",  # the path inside the filter
}
# What a value failing one of the schemas' patterns should have been.
PATTERN_ERRORS: dict[str, str] = {
    TEXT_PATTERN: "must not contain NUL characters (\\u0000)",
    COLLECTION_PATTERN: "must be 1 to 64 letters, digits, '_', '.' or '-', "
    "starting with a letter or a digit",
    CURSOR_PATTERN: "is not a cursor a listing returned",
}
WHERE = ("body", "query", "path", "header")  # where a value was, in pydantic's locations


def validation_message(errors: Sequence[Any]) -> str:
    """One readable sentence from pydantic's validation errors."""
    parts = []
    for error in errors:
        location = [str(p) for p in error.get("loc", ())]
        if location and location[0] in WHERE:
            location = location[1:]  # the field's name, not where it was sent
        where = ".".join(location) or "request body"
        kind, context = error.get("type"), error.get("ctx") or {}
        message = f"{where}: {error.get('msg', 'is invalid')}"
        if kind == "string_pattern_mismatch" and context.get("pattern") in PATTERN_ERRORS:
            message = f"{where}: {PATTERN_ERRORS[context['pattern']]}"
        elif kind in READABLE_ERRORS:
            message = READABLE_ERRORS[kind].format(where=where, **context)
        parts.append(message)
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
        "body": to_json(
            {"message": f"request body is {size} bytes; the limit is {limit}", "statusCode": 413}
        ),
        "isBase64Encoded": False,
    }


# JSON nesting a request body may have: the deepest valid body (a filter six levels of
# and / or / not deep) nests 14; parsing and validating a body nested about a thousand
# levels would exhaust Python's recursion limit (a 500).
MAX_BODY_DEPTH = 32
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')  # a string, or a bracket


def json_depth(text: str) -> int:
    """How deep ``text`` (JSON, or what claims to be) nests arrays and objects, counted
    without parsing it; brackets inside strings do not count."""
    depth = deepest = 0
    for token in _JSON_TOKEN.finditer(text):
        bracket = token.group()
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif bracket in "]}":
            depth -= 1
    return deepest


def deeply_nested_body_response(event: dict[str, Any]) -> dict[str, Any] | None:
    """A 400 proxy response when the body nests deeper than :data:`MAX_BODY_DEPTH`, else
    None. Call it after :func:`undecodable_body_response` (the body is then text)."""
    body = event.get("body") or ""
    text = base64.b64decode(body).decode() if event.get("isBase64Encoded") else body
    depth = json_depth(text)
    if depth <= MAX_BODY_DEPTH:
        return None
    message = f"request body nests {depth} levels deep; the limit is {MAX_BODY_DEPTH}"
    return {
        "statusCode": 400,
        "headers": {"Content-Type": "application/json"},
        "body": to_json({"message": message, "statusCode": 400}),
        "isBase64Encoded": False,
    }


def undecodable_body_response(event: dict[str, Any]) -> dict[str, Any] | None:
    """A 400 proxy response when the body is not UTF-8 text (JSON always is), else None.

    API Gateway hands such a body over base64-encoded; decoding it as text would fail
    deep in the resolver, as a 500.
    """
    body = event.get("body")
    if not body or not event.get("isBase64Encoded"):
        return None
    try:
        base64.b64decode(body, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        message = "request body is not UTF-8 text; send JSON"
        return {
            "statusCode": 400,
            "headers": {"Content-Type": "application/json"},
            "body": to_json({"message": message, "statusCode": 400}),
            "isBase64Encoded": False,
        }
    return None


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
        allowed = app.allowed_methods(event.path) if isinstance(app, RestResolver) else []
        if allowed:  # the path exists, the method does not
            message = (
                f"{event.http_method} is not allowed on {event.path}; use {', '.join(allowed)}"
            )
            return error_response(405, message, headers={"Allow": ", ".join(allowed)})
        return error_response(404, f"no route for {event.http_method} {event.path}")

    @app.exception_handler(RequestValidationError)
    def handle_validation(error: RequestValidationError) -> Response[str]:
        return error_response(400, validation_message(error.errors()))

    @app.exception_handler(ModelUnavailableError)
    def handle_no_model(error: ModelUnavailableError) -> Response[str]:
        # 503 (502 when misconfigured) with the sources: the caller can show them though
        # no model wrote an answer.
        logger.error("no model answered", extra={"failures": dict(error.failures)})
        response = error_response(error.status_code, str(error), citations=error.citations)
        if error.retry_after_seconds is not None:  # a model is starting: when to come back
            response.headers["Retry-After"] = str(error.retry_after_seconds)
        return response

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


def rejected_query(
    event: dict[str, Any], response: dict[str, Any], auth: Authentication = KEYS
) -> dict[str, Any] | None:
    """For ``POST /query`` (or its events' route) answered with an error status, what the
    query log keeps of it:
    ``request_id``, ``status_code``, and the ``collection`` and ``profile`` asked for (None
    when not given, "" when not a plausible name), and the caller's ``tenant``, in whose
    log it goes. None for other requests, for a caller without an identity (401, or 403
    for a principal of no tenant: no tenant's log is theirs) and for a database outage,
    which cannot be written to the database it is about."""
    status = int(response.get("statusCode", 200))
    asked = event.get("httpMethod") == "POST" and event.get("path") in ("/query", STREAM_PATH)
    if not asked or status < 400:
        return None
    try:
        identity = caller(event, auth)
    except (UnauthorizedError, ForbiddenError):
        return None
    if status == DatabaseUnavailableError.status_code and _message(response) == str(
        DatabaseUnavailableError()
    ):
        return None
    raw = event.get("body") or "{}"
    try:
        body = json.loads(base64.b64decode(raw) if event.get("isBase64Encoded") else raw)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, not base64, too deep
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
        "tenant": identity.tenant,
    }


def _message(response: dict[str, Any]) -> str | None:
    try:
        message = json.loads(response.get("body") or "{}").get("message")
    except (ValueError, AttributeError):
        return None
    return message if isinstance(message, str) else None


# --- server-sent events -----------------------------------------------------------------------

EVENT_STREAM = "text/event-stream"
# The route that always answers with events: the deployed API's STREAM integration serves
# it (stacks/api.py), as API Gateway cannot route POST /query by its body.
STREAM_PATH = "/query/stream"


def wants_event_stream(event: dict[str, Any], method: str = "POST", path: str = "/query") -> bool:
    """Whether a request to the streamed route asks for server-sent events: ``Accept:
    text/event-stream``, or ``"stream": true`` in its JSON body; a POST to
    :data:`STREAM_PATH` always does."""
    if event.get("httpMethod") == "POST" and event.get("path") == STREAM_PATH:
        return True
    if event.get("httpMethod") != method or event.get("path") != path:
        return False
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    if EVENT_STREAM in str(headers.get("accept", "")).lower():
        return True
    raw = event.get("body") or ""
    if '"stream"' not in raw and not event.get("isBase64Encoded"):
        return False  # the usual buffered question: no need to parse the body twice
    try:
        body = json.loads(base64.b64decode(raw) if event.get("isBase64Encoded") else raw)
    except ValueError:  # the resolver answers the 400
        return False
    return isinstance(body, dict) and body.get("stream") is True


def sse_frame(name: str, data: dict[str, Any]) -> bytes:
    """One server-sent event: its name and its data as one line of JSON."""
    return f"event: {name}\ndata: {to_json(data)}\n\n".encode()


def event_stream_response(frames: Iterator[bytes]) -> Response[Iterator[bytes]]:
    """A 200 whose body is written frame by frame as ``frames`` yields them (the
    streaming entry point passes the iterator on; :func:`buffered` joins it)."""
    return Response(
        status_code=200,
        content_type=EVENT_STREAM,
        body=frames,
        headers={"Cache-Control": "no-cache"},
    )


def buffered(response: dict[str, Any]) -> dict[str, Any]:
    """The proxy response with a streamed body read to its end, for an integration that
    cannot stream: the same events, in one body."""
    body = response.get("body")
    if not isinstance(body, Iterator):
        return response
    return {**response, "body": b"".join(body).decode("utf-8")}
