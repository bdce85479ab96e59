"""Request and response shapes of the REST API, shared by the handler and the use cases.

Requests are strict (``"5"`` or ``true`` is not a number) and refuse unknown fields.
Text fields refuse NUL characters, which PostgreSQL cannot store or compare: refused
here, by the schema the OpenAPI document shows, every route is covered.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError

from ragline.config import MAX_TOP_K
from ragline.filters import Filter, FilterError, parse_filter

COLLECTION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
TEXT_PATTERN = r"^[^\x00]*$"  # any text without a NUL character
# The cursor a listing hands out: {"after": ...} as URL-safe base64 (store/documents.py).
CURSOR_PATTERN = r"^eyJhZnRlciI6(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2}==|[A-Za-z0-9_-]{3}=)?$"
PROFILE_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
DOCUMENT_STATUS_PATTERN = "^(pending|ingested|skipped|failed)$"

EF_SEARCH = Field(
    default=None,
    ge=10,
    le=1000,
    description="HNSW candidates per vector search (default RAGLINE_HNSW_EF_SEARCH): "
    "higher finds more of the exact nearest chunks and takes longer.",
)
TOP_K = Field(
    default=None,
    ge=1,
    le=MAX_TOP_K,
    description=f"Passages to return (default RAGLINE_TOP_K); at most {MAX_TOP_K}, or "
    "RAGLINE_MAX_TOP_K where it is set lower.",
)


def _filter(value: Any) -> Filter | None:
    """The parsed filter; a FilterError becomes a validation error naming the bad part
    (``filter.and[1].gte.value: must be a number or an ISO date``)."""
    if value is None:
        return None
    try:
        return parse_filter(value)
    except FilterError as exc:
        raise PydanticCustomError(
            "filter_invalid", "{path}: {reason}", {"path": exc.path, "reason": exc.reason}
        ) from exc


METADATA_FILTER = Annotated[
    Filter | None,
    PlainValidator(_filter),
    WithJsonSchema(
        {
            "anyOf": [{"$ref": "#/components/schemas/MetadataFilter"}, {"type": "null"}],
            "description": "Only passages of documents whose attributes match (see the "
            'README, "Metadata and filters").',
        }
    ),
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="before")
    @classmethod
    def _integral_numbers_are_integers(cls, value: Any) -> Any:
        """JSON Schema's integer: a number with no fraction (``5.0`` is 5). Strings and
        booleans stay what they are, and strict mode turns them away from integer fields
        (lax mode would read ``"5"`` and ``true`` as numbers)."""
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value


SESSION_PATTERN = (
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)
# Prior turns a request may carry (RAGLINE_MAX_HISTORY_TURNS bounds what is used).
MAX_HISTORY_MESSAGES = 200


class HistoryTurn(_Request):
    """One earlier message of the conversation, oldest first."""

    role: Literal["user", "assistant"]
    content: str = Field(min_length=1, pattern=TEXT_PATTERN)


class QueryRequest(_Request):
    question: str = Field(min_length=1, pattern=TEXT_PATTERN, description="The question to answer.")
    collection: str | None = Field(default=None, pattern=COLLECTION_PATTERN)
    top_k: int | None = TOP_K
    profile: str | None = Field(default=None, pattern=PROFILE_PATTERN)
    ef_search: int | None = EF_SEARCH
    filter: METADATA_FILTER = None
    stream: bool = Field(
        default=False,
        description="Answer with server-sent events (retrieval, text deltas, the final "
        "answer) instead of one JSON body; so does `Accept: text/event-stream`.",
    )
    session_id: str | None = Field(
        default=None,
        pattern=SESSION_PATTERN,
        description="A conversation kept by the server: a UUID you choose (uuid4); the "
        "first request with it starts the session, later ones are its follow-ups. It "
        "expires RAGLINE_SESSION_TTL_HOURS after its last turn; another tenant's is a 404.",
    )
    history: list[HistoryTurn] | None = Field(
        default=None,
        max_length=MAX_HISTORY_MESSAGES,
        description="The conversation so far, kept by the caller instead of a session: "
        "user and assistant messages, oldest first. Not with session_id.",
    )


class RetrieveRequest(_Request):
    query: str = Field(min_length=1, pattern=TEXT_PATTERN)
    top_k: int | None = TOP_K
    mode: Literal["hybrid", "vector", "keyword"] = "hybrid"
    collection: str | None = Field(default=None, pattern=COLLECTION_PATTERN)
    ef_search: int | None = EF_SEARCH
    filter: METADATA_FILTER = None


class FeedbackRequest(_Request):
    request_id: str = Field(min_length=1, max_length=128, pattern=TEXT_PATTERN)
    rating: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=2000, pattern=TEXT_PATTERN)


class ErrorBody(BaseModel):
    """Every error: a readable message, and whatever else the caller can still use."""

    message: str = Field(description="What went wrong, in a sentence.")
    statusCode: int | None = Field(default=None, description="The HTTP status, repeated.")
    citations: list[dict[str, object]] | None = Field(
        default=None,
        description="503 from /query when no model answered: the passages retrieved.",
    )


class _Response(BaseModel):
    # NaN is not JSON: a score that is not a number fails here, not in the client's parser.
    model_config = ConfigDict(allow_inf_nan=False)


# A passage's pages, for citations and search results alike.
FirstPage = Annotated[
    int | None,
    Field(
        description="The page the passage cites (PDF): of the pages it is printed on, the "
        "one holding the match to the query (its first page when it is printed on one, or "
        "none matches better); null for formats without pages. source then ends in #page=N."
    ),
]
LastPage = Annotated[
    int | None, Field(description="The page the passage ends on (PDF); null without pages.")
]
Pages = Annotated[
    list[int] | None,
    Field(
        description="Every page the passage is printed on, the page it cites first "
        "(a passage on pages 12-13 whose match is on 13: [13, 12]); null without pages."
    ),
]
AlsoIn = Annotated[
    list[str],
    Field(
        description="The sources (with #page=N for a paged document) of other passages "
        "whose text is the same as this one's once case, punctuation and spacing are set "
        "aside: counted once, here, instead of filling several places."
    ),
]


class Citation(_Response):
    n: int
    document_id: str
    source: str
    title: str | None
    chunk_id: int
    score: float
    text: str
    section: str = ""
    page: FirstPage = None
    last_page: LastPage = None
    pages: Pages = None
    also_in: AlsoIn = Field(default_factory=list)


class ModelInfo(_Response):
    provider: str
    name: str
    prompt: str


class UsageInfo(_Response):
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    embedding_tokens: int = 0
    cost_usd: float | None = 0.0
    cost_estimated: bool = False
    estimated: bool = False
    rerank_cost_usd: float | None = Field(
        default=0.0, description="The reranker's part of cost_usd (null when unpriced)."
    )
    rewrite_input_tokens: int = Field(
        default=0, description="The follow-up's rewrite: its model's prompt tokens."
    )
    rewrite_output_tokens: int = Field(
        default=0, description="The follow-up's rewrite: its model's output tokens."
    )
    rewrite_cost_usd: float | None = Field(
        default=0.0, description="The rewrite's part of cost_usd (null when unpriced)."
    )


class Latency(_Response):
    retrieve: float
    generate: float
    total: float
    rerank: float = Field(default=0.0, description="The reranker's part of retrieve.")
    rewrite: float = Field(
        default=0.0, description="The follow-up's rewrite into a search query, part of retrieve."
    )


class RewriteInfo(_Response):
    method: Literal["model", "fallback"] = Field(
        description="model: the condense profile's model wrote the search query; fallback: "
        "the deterministic rewrite did (no generative model, or the model failed)."
    )
    model: str | None = Field(
        default=None, description="provider:model of the model called; null when none was."
    )
    prompt: str | None = Field(default=None, description="The template, for method model.")


class QueryResponse(_Response):
    answer: str
    citations: list[Citation]
    abstained: bool
    profile: str = Field(description="The routing profile that served the question.")
    needs_review: bool = Field(
        default=False, description="The profile asks a person to review this answer."
    )
    fallback: bool = Field(
        default=False,
        description="A fallback model answered because the profile's model failed; "
        "model names the one that answered.",
    )
    model: ModelInfo
    usage: UsageInfo
    latency_ms: Latency
    request_id: str
    reranker: str | None = Field(
        default=None,
        description="The reranker that ordered the passages; null when none is configured "
        "or it failed (the passages are then in the search's order).",
    )
    review_reason: str | None = Field(
        default=None,
        description="Why this answer needs review beyond its profile's rule, such as an "
        "instruction from a passage that the answer repeats; null when there is none.",
    )
    session_id: str | None = Field(
        default=None, description="The session this turn was added to; null without one."
    )
    rewritten_query: str | None = Field(
        default=None,
        description="A follow-up question (one with a session or history) rewritten as "
        "the standalone query the passages were searched for; null for a first question.",
    )
    rewrite: RewriteInfo | None = Field(
        default=None, description="How rewritten_query was written; null without one."
    )
    review_id: str | None = Field(
        default=None,
        description="The review queue's item for this answer (GET /reviews/{id}); null "
        "when it was not queued.",
    )
    held: bool = Field(
        default=False,
        description="The profile holds answers until a person reviews them: answer is "
        "empty and the reviewed one comes from GET /reviews/{review_id} (/query's 202).",
    )


class RetrievedItem(_Response):
    chunk_id: int
    document_id: str
    source: str
    title: str | None
    section: str
    text: str
    score: float
    similarity: float | None = None
    page: FirstPage = None
    last_page: LastPage = None
    pages: Pages = None
    also_in: AlsoIn = Field(default_factory=list)


class RetrieveResponse(_Response):
    results: list[RetrievedItem]
    embedding_tokens: int = 0
    reranker: str | None = Field(
        default=None, description="The reranker that ordered the results, as in /query."
    )
    rerank_ms: float = 0.0
    rerank_cost_usd: float | None = 0.0


# --- the OpenAI-compatible door (POST /v1/chat/completions) ---------------------------------


class _OpenAIRequest(_Request):
    """OpenAI's request shapes: strict about the fields ragline reads, and ignoring the
    many others a client may send (temperature, user, seed...), as OpenAI-compatible
    servers do, so any client works unchanged."""

    model_config = ConfigDict(extra="ignore", strict=True)


class ChatContentPart(_OpenAIRequest):
    type: str = Field(description='"text" parts are read; others are refused.')
    text: str | None = Field(default=None, pattern=TEXT_PATTERN)


class ChatMessage(_OpenAIRequest):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Annotated[str, Field(pattern=TEXT_PATTERN)] | list[ChatContentPart] | None = Field(
        default=None, description="Text, or a list of text parts."
    )


class ChatStreamOptions(_OpenAIRequest):
    include_usage: bool = Field(
        default=False, description="End the stream with a chunk carrying the usage."
    )


# The model name of the default profile on the OpenAI-compatible door.
DEFAULT_MODEL = "ragline"


class ChatCompletionRequest(_OpenAIRequest):
    model: str = Field(
        min_length=1,
        max_length=64,
        description="A routing profile (GET /v1/models lists them), or `ragline` for the "
        "default one.",
    )
    messages: list[ChatMessage] = Field(
        min_length=1,
        max_length=MAX_HISTORY_MESSAGES + 1,
        description="The conversation: its last message is the user's question, the user "
        "and assistant messages before it are the history; system messages are ignored "
        "(the profile's template is the system prompt).",
    )
    stream: bool = Field(
        default=False, description="Stream chat.completion.chunk events, then `[DONE]`."
    )
    stream_options: ChatStreamOptions | None = None
    n: int | None = Field(default=None, ge=1, le=1, description="One choice only.")
