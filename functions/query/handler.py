"""Query Lambda: the REST API behind API Gateway.

Routes: POST /query, POST /retrieve, GET /documents, GET/DELETE /documents/{id},
GET /health, and the OpenAPI document with Swagger UI at /swagger.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from ragline.answer import get_answerer
from ragline.api import (
    as_json_request,
    document_id,
    error_response,
    oversized_body_response,
    validation_message,
)
from ragline.config import get_settings
from ragline.errors import ModelUnavailableError, NotFoundError, RaglineError
from ragline.ledger import get_ledger
from ragline.schemas import (
    FeedbackRequest,
    QueryRequest,
    QueryResponse,
    RetrieveRequest,
    RetrieveResponse,
)
from ragline.telemetry.tracing import trace_handler

settings = get_settings()
logger = Logger(service=f"{settings.service_name}-query")
answerer = get_answerer(settings)
store = answerer.store
ledger = get_ledger(settings)
app = APIGatewayRestResolver(enable_validation=True)
app.enable_swagger(path="/swagger", title="ragline", version="0.1.0")


@app.post("/query")
def query(body: QueryRequest) -> QueryResponse:
    request_id = app.current_event.request_context.request_id
    return answerer.answer(
        body.question, collection=body.collection, top_k=body.top_k, profile=body.profile,
        request_id=request_id,
    )  # fmt: skip


@app.post("/retrieve")
def retrieve(body: RetrieveRequest) -> RetrieveResponse:
    return answerer.retrieve(
        body.query, collection=body.collection, top_k=body.top_k, mode=body.mode
    )


@app.post("/feedback")
def feedback(body: FeedbackRequest) -> dict[str, Any]:
    ledger.feedback(body.request_id, body.rating, body.comment)
    return {"request_id": body.request_id, "rating": body.rating}


@app.get("/documents")
def list_documents(
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    collection: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[str | None, Query(pattern="^(pending|ingested|skipped|failed)$")] = None,
) -> dict[str, Any]:
    documents, next_cursor = store.list_documents(
        collection=collection, status=status, limit=limit, cursor=cursor
    )
    return {"documents": [d.to_dict() for d in documents], "next_cursor": next_cursor}


@app.get("/documents/<id>")
def get_document(id: str) -> dict[str, Any]:
    document = store.get_document(document_id(id))
    if document is None:
        raise NotFoundError(f"no document with id {id}")
    return document.to_dict()


@app.delete("/documents/<id>")
def delete_document(id: str) -> dict[str, Any]:
    if not store.delete_document(document_id(id)):
        raise NotFoundError(f"no document with id {id}")
    return {"deleted": id}


@app.get("/health")
def health() -> dict[str, Any]:
    return {"status": "ok", "database": store.health()}


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


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@trace_handler(settings)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    too_large = oversized_body_response(event, settings.max_body_bytes)
    if too_large is not None:
        return too_large
    return app.resolve(as_json_request(event), context)
