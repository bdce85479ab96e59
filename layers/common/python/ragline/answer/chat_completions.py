"""The OpenAI-compatible door: ``POST /v1/chat/completions`` and ``GET /v1/models`` on
the answer use case, so any OpenAI client or chat UI can ask ragline.

* The routing profiles are the models (``ragline`` names the default profile).
* The messages are the conversation: the last one, a user's, is the question; the user
  and assistant messages before it are the history (the follow-up is rewritten for the
  search as on ``POST /query``); system and developer messages are ignored, since the
  profile's template is the system prompt.
* The answer's text carries the numbered markers ``[n]`` the model wrote; ``citations``,
  an extra field beside ``choices``, lists the passages they number (on the first chunk of
  a stream). ``ragline`` carries the rest of ``POST /query``'s response: request id,
  profile, cost, rewritten query, review flags.
* ``usage`` is the models' own count: the answer's tokens plus the follow-up's rewrite's.
* ``stream: true`` sends ``chat.completion.chunk`` events (``data:`` lines), then, with
  ``stream_options.include_usage``, a chunk with no choices and the usage, then
  ``data: [DONE]``. An error after the first chunk is a ``data: {"error": ...}`` line.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from ragline.answer.events import Answered, Failed, Retrieved, TextDelta
from ragline.api import EVENT_STREAM, EVENT_STREAM_BODY, documented_errors, to_json
from ragline.errors import InvalidRequestError
from ragline.schemas import DEFAULT_MODEL

if TYPE_CHECKING:
    from collections.abc import Iterator

    from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

    from ragline.answer.conversation import Role
    from ragline.answer.events import AnswerEvent
    from ragline.answer.routing import Router
    from ragline.schemas import ChatCompletionRequest, ChatMessage, QueryResponse

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
OWNER = "ragline"
# Roles that are not the conversation's turns: the profile's template is the system prompt.
_IGNORED_ROLES = ("system", "developer")
# OpenAI's error types by status, for the error bodies of the /v1 routes.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def documented_responses() -> dict[int, OpenAPIResponse]:
    """What ``POST /v1/chat/completions`` answers, for the OpenAPI document: OpenAI's
    ``chat.completion``, or (``stream: true``) its chunks as server-sent events."""
    responses = documented_errors(404, 413, 502)
    responses[200] = {
        "description": "OpenAI's chat.completion; with stream: true, chat.completion.chunk "
        "events, then data: [DONE]",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            EVENT_STREAM: EVENT_STREAM_BODY,  # type: ignore[dict-item]
        },
    }
    return responses


def models(router: Router) -> dict[str, Any]:
    """``GET /v1/models``: the answer profiles as models, and ``ragline`` (the default)."""
    names = [DEFAULT_MODEL, *sorted(router.routes)]
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": OWNER} for name in names
        ],
    }


def profile(model: str) -> str | None:
    """The routing profile a request's ``model`` names (None: the default)."""
    return None if model == DEFAULT_MODEL else model


def _text(message: ChatMessage, index: int) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if part.type != "text" or part.text is None:
            raise InvalidRequestError(
                f"messages[{index}].content: only text parts are read (got {part.type!r})"
            )
        texts.append(part.text)
    return "\n".join(texts)


def conversation(request: ChatCompletionRequest) -> tuple[str, list[tuple[Role, str]]]:
    """The question (the last message, a user's) and the user and assistant messages
    before it. InvalidRequestError names what does not fit."""
    turns: list[tuple[Role, str]] = []
    last = len(request.messages) - 1
    for index, message in enumerate(request.messages):
        if message.role in _IGNORED_ROLES:
            continue
        if message.role not in ("user", "assistant"):
            raise InvalidRequestError(
                f"messages[{index}].role: {message.role!r} is not served (no tools); "
                "send user and assistant messages"
            )
        text = _text(message, index)
        if index == last:
            if message.role != "user":
                raise InvalidRequestError(
                    f"messages[{index}]: the last message must be the user's question"
                )
            if not text.strip():
                raise InvalidRequestError(f"messages[{index}].content: must not be empty")
            return text, turns
        if text.strip():  # an assistant message with tool calls only has no text
            turns.append(("user" if message.role == "user" else "assistant", text))
    raise InvalidRequestError(f"messages[{last}]: the last message must be the user's question")


def _usage(response: QueryResponse) -> dict[str, Any]:
    usage = response.usage
    prompt = usage.input_tokens + usage.rewrite_input_tokens
    completion = usage.output_tokens + usage.rewrite_output_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
    }


def _extras(response: QueryResponse) -> dict[str, Any]:
    """What ``POST /query`` says beyond the text, under ``ragline``."""
    return {
        "request_id": response.request_id,
        "profile": response.profile,
        "model": response.model.model_dump(mode="json"),
        "abstained": response.abstained,
        "needs_review": response.needs_review,
        "review_reason": response.review_reason,
        # a holding profile's answer is empty until reviewed: GET /reviews/{review_id}
        "review_id": response.review_id,
        "held": response.held,
        "rewritten_query": response.rewritten_query,
        "cost_usd": response.usage.cost_usd,
        "embedding_tokens": response.usage.embedding_tokens,
        "latency_ms": response.latency_ms.model_dump(mode="json"),
    }


def completion(response: QueryResponse, model: str, created: int | None = None) -> dict[str, Any]:
    """The ``chat.completion`` of a buffered answer."""
    return {
        "id": f"chatcmpl-{response.request_id}",
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": response.answer, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(response),
        "citations": [c.model_dump(mode="json") for c in response.citations],
        "ragline": _extras(response),
    }


def _data(payload: dict[str, Any] | str) -> bytes:
    return f"data: {payload if isinstance(payload, str) else to_json(payload)}\n\n".encode()


def chunks(
    first: AnswerEvent,
    events: Iterator[AnswerEvent],
    *,
    model: str,
    include_usage: bool,
    created: int | None = None,
) -> Iterator[bytes]:
    """The answer's events as ``chat.completion.chunk`` lines, then ``[DONE]``."""
    created = int(time.time()) if created is None else created
    chunk_id = "chatcmpl-"
    wrote_text = False

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return _data(
            {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [choice],
                **extra,
            }
        )

    for event in _chain(first, events):
        if isinstance(event, Retrieved):
            chunk_id = f"chatcmpl-{event.request_id}"
            citations = [c.model_dump(mode="json") for c in event.citations]
            yield chunk({"role": "assistant", "content": ""}, citations=citations)
        elif isinstance(event, TextDelta):
            wrote_text = wrote_text or bool(event.text)
            yield chunk({"content": event.text})
        elif isinstance(event, Answered):
            response = event.response
            if not wrote_text:  # a profile that checks the whole answer before sending it
                yield chunk({"content": response.answer})
            yield chunk({}, "stop", ragline=_extras(response))
            if include_usage:
                yield _data(
                    {
                        "id": chunk_id,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": _usage(response),
                    }
                )
        elif isinstance(event, Failed):
            yield _data({"error": error_object(event.status_code, event.message)})
    yield _data("[DONE]")


def _chain(first: AnswerEvent, events: Iterator[AnswerEvent]) -> Iterator[AnswerEvent]:
    yield first
    yield from events


def error_object(status: int, message: str) -> dict[str, Any]:
    """OpenAI's error object: a message, a type, and the status as its code."""
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"message": message, "type": kind, "param": None, "code": str(status)}


def openai_errors(path: str, response: dict[str, Any]) -> dict[str, Any]:
    """A /v1 route's JSON error response with OpenAI's ``error`` object beside ragline's
    ``message``, so OpenAI clients show the reason; other responses as they are."""
    status = int(response.get("statusCode", 200))
    body = response.get("body")
    if not path.startswith("/v1/") or status < 400 or not isinstance(body, str):
        return response
    try:
        data = json.loads(body)
    except ValueError:
        return response
    if not isinstance(data, dict) or not isinstance(data.get("message"), str):
        return response
    data["error"] = error_object(status, data["message"])
    return {**response, "body": to_json(data)}
