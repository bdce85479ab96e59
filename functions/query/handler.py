"""Query Lambda: the REST API behind API Gateway.

Routes: POST /query, POST /retrieve, POST /feedback, GET /documents, GET/DELETE
/documents/{id}, GET /health, the OpenAI-compatible POST /v1/chat/completions and GET
/v1/models, and the OpenAPI document with Swagger UI at /swagger.
POST /query/stream always answers with events (the deployed API's STREAM route).
``POST /query`` with ``"stream": true`` (or ``Accept: text/event-stream``) answers with
server-sent events: ``stream_handler`` hands their frames to a streaming integration as
they come, ``lambda_handler`` (buffered) in one body.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated, Any
from uuid import UUID

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from ragline.answer import AnswerEvent, Failed, Role, get_answerer
from ragline.answer import chat_completions as chat
from ragline.api import (
    RestResolver,
    as_json_request,
    authentication,
    buffered,
    caller,
    deeply_nested_body_response,
    documented_errors,
    event_stream_response,
    handle_errors,
    oversized_body_response,
    rejected_query,
    sse_frame,
    undecodable_body_response,
    wants_event_stream,
)
from ragline.catalog import get_catalog
from ragline.config import get_settings
from ragline.identity import Identity
from ragline.ledger import get_ledger
from ragline.reviews import HeldAnswer, get_review_queue
from ragline.reviews.routes import HELD, after_feedback, held_or_answer, review_routes
from ragline.schemas import (
    COLLECTION_PATTERN,
    CURSOR_PATTERN,
    DOCUMENT_STATUS_PATTERN,
    ChatCompletionRequest,
    FeedbackRequest,
    QueryRequest,
    QueryResponse,
    RetrieveRequest,
    RetrieveResponse,
)
from ragline.telemetry.tracing import trace_handler

settings = get_settings()
logger = Logger(service=f"{settings.service_name}-query")
answerer, catalog, ledger = get_answerer(settings), get_catalog(settings), get_ledger(settings)
auth = authentication(settings)  # API keys, IAM principals or Cognito claims
app = RestResolver(profiles=list(answerer.router.routes), auth=settings.api_auth)
app.enable_swagger(path="/swagger", title="ragline", version="0.1.0")
handle_errors(app, logger)
app.include_router(review_routes(settings))  # /reviews (ragline.reviews.routes)
get_review_queue(settings).attach(answerer)  # answers needing review enter the queue
# Streamed answers: the same validation and errors, a body of events (not in OpenAPI).
streams = RestResolver()
handle_errors(streams, logger)


def who(resolver: RestResolver = app) -> Identity:
    """The caller, as its authorizer named it (ragline.api.caller): every route but /health
    acts for it, and the use cases see its tenant's data only and check its scopes."""
    return caller(resolver.current_event.raw_event, auth)


def conversation(body: QueryRequest) -> list[tuple[Role, str]] | None:
    """The request's ``history`` as (role, text) pairs."""
    return None if body.history is None else [(t.role, t.content) for t in body.history]


@app.post(
    "/query", responses={**documented_errors(404, 409, 413, 502, streams=QueryResponse), **HELD}
)
def query(body: QueryRequest) -> QueryResponse | HeldAnswer:
    request_id = app.current_event.request_context.request_id
    response = answerer.answer(
        body.question, collection=body.collection, top_k=body.top_k, profile=body.profile,
        request_id=request_id, ef_search=body.ef_search, where=body.filter,
        identity=who(), session_id=body.session_id, history=conversation(body),
    )  # fmt: skip
    return held_or_answer(response)  # type: ignore[return-value]  # a held one: 202


# No return annotation: Powertools would validate (and so read out) the body iterator.
@streams.post("/query")
@streams.post("/query/stream")  # the deployed API's STREAM route (docs/deploy.md)
def query_stream(body: QueryRequest):
    event = streams.current_event
    events = answerer.stream(
        body.question, collection=body.collection, top_k=body.top_k, profile=body.profile,
        request_id=event.request_context.request_id, ef_search=body.ef_search, where=body.filter,
        identity=who(streams), session_id=body.session_id, history=conversation(body),
    )  # fmt: skip
    first = next(events)  # an invalid request or a failed search raises: a status, no stream
    return event_stream_response(_frames(first, events, event.raw_event))


def _frames(
    first: AnswerEvent, events: Iterator[AnswerEvent], event: dict[str, Any]
) -> Iterator[bytes]:
    started = time.perf_counter()
    yield sse_frame(first.name, first.data())
    for answer_event in events:
        # logged as the buffered error status would be; one with usage is already recorded
        if isinstance(answer_event, Failed) and answer_event.usage is None:
            status = {"statusCode": answer_event.status_code}
            rejected = rejected_query(event, status, auth)
            if rejected is not None:
                ledger.rejected_query(**rejected, total_ms=(time.perf_counter() - started) * 1000)
        yield sse_frame(answer_event.name, answer_event.data())


# The OpenAI-compatible door (ragline.answer.chat_completions): the same use case.
@app.get(chat.MODELS_PATH, responses=documented_errors())
def list_models() -> dict[str, Any]:
    who()
    return chat.models(answerer.router)


@app.post(chat.CHAT_PATH, responses=chat.documented_responses())
def chat_completion(body: ChatCompletionRequest) -> dict[str, Any]:
    question, history = chat.conversation(body)
    response = answerer.answer(
        question, profile=chat.profile(body.model), history=history,
        request_id=app.current_event.request_context.request_id, identity=who(),
    )  # fmt: skip
    return chat.completion(response, body.model)


@streams.post(chat.CHAT_PATH)
def chat_completion_stream(body: ChatCompletionRequest):
    question, history = chat.conversation(body)
    events = answerer.stream(
        question, profile=chat.profile(body.model), history=history,
        request_id=streams.current_event.request_context.request_id, identity=who(streams),
    )  # fmt: skip
    first = next(events)
    include_usage = body.stream_options is not None and body.stream_options.include_usage
    return event_stream_response(
        chat.chunks(first, events, model=body.model, include_usage=include_usage)
    )


@app.post("/retrieve", responses=documented_errors(404, 409, 413, 502))
def retrieve(body: RetrieveRequest) -> RetrieveResponse:
    return answerer.retrieve(
        body.query, collection=body.collection, top_k=body.top_k, mode=body.mode,
        ef_search=body.ef_search, where=body.filter, identity=who(),
    )  # fmt: skip


@app.post("/feedback", responses=documented_errors(413))
def feedback(body: FeedbackRequest) -> dict[str, Any]:
    identity = who()
    ledger.feedback(body.request_id, body.rating, body.comment, identity=identity)
    queued = after_feedback(settings, body.request_id, body.rating, body.comment, identity)
    return {"request_id": body.request_id, "rating": body.rating, **queued}


@app.get("/documents", responses=documented_errors())
def list_documents(
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512, pattern=CURSOR_PATTERN)] = None,
    collection: Annotated[str | None, Query(pattern=COLLECTION_PATTERN)] = None,
    status: Annotated[str | None, Query(pattern=DOCUMENT_STATUS_PATTERN)] = None,
) -> dict[str, Any]:
    return catalog.list(
        collection=collection, status=status, limit=limit, cursor=cursor,
        identity=who(),
    )  # fmt: skip


@app.get("/documents/<id>", responses=documented_errors())
def get_document(id: Annotated[UUID, Path()]) -> dict[str, Any]:
    return catalog.get(str(id), identity=who())


@app.delete("/documents/<id>", responses=documented_errors())
def delete_document(id: Annotated[UUID, Path()]) -> dict[str, Any]:
    return catalog.delete(str(id), identity=who())


@app.get("/health", responses=documented_errors(secured=False))
def health() -> dict[str, Any]:
    return catalog.health()


def _respond(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.perf_counter()
    response = oversized_body_response(event, settings.max_body_bytes)
    response = response or undecodable_body_response(event) or deeply_nested_body_response(event)
    if response is None:
        streamed = wants_event_stream(event) or wants_event_stream(event, path=chat.CHAT_PATH)
        resolver = streams if streamed else app
        response = resolver.resolve(as_json_request(event), context)
    # the /v1 routes' errors in OpenAI's shape too, the body checks' above included
    response = chat.openai_errors(event.get("path") or "", response)
    rejected = rejected_query(event, response, auth)  # answered questions log themselves
    if rejected is not None:
        ledger.rejected_query(**rejected, total_ms=(time.perf_counter() - started) * 1000)
    return response


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@trace_handler(settings)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return buffered(_respond(event, context))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@trace_handler(settings)
def stream_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The entry point for a streaming integration: a streamed answer's ``body`` is an
    iterator of server-sent event frames, to write as they come; other bodies are text."""
    return _respond(event, context)
