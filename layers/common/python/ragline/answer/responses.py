"""Response mapping: retrieved chunks as passages for the model, and as the API's
citations, search results and query responses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ragline.llm import Passage
from ragline.prompts.fencing import fence, new_fence
from ragline.schemas import Citation, Latency, ModelInfo, QueryResponse, RetrievedItem, UsageInfo

if TYPE_CHECKING:
    from ragline.answer.guard import Verdict
    from ragline.llm import Completion, Usage
    from ragline.retrieval import Reranking
    from ragline.store import RetrievedChunk
    from ragline.telemetry.pricing import Cost


def passages(chunks: list[RetrievedChunk]) -> tuple[Passage, ...]:
    """The chunks as the numbered passages a model reads (numbered from 1)."""
    return tuple(
        Passage(n, c.text, c.title, c.source, c.section, c.similarity)
        for n, c in enumerate(chunks, start=1)
    )


def format_context(passages: tuple[Passage, ...], fence_id: str | None = None) -> str:
    """The passages as the model reads them, each fenced (:mod:`ragline.prompts.fencing`):
    number, title and section, then the text. ``fence_id`` is new for each call unless
    given."""
    fence_id = fence_id or new_fence()
    blocks = []
    for passage in passages:
        heading = " — ".join(p for p in (passage.title, passage.section) if p)
        blocks.append(fence(passage.n, heading, passage.text, fence_id))
    return "\n\n".join(blocks)


def linked_source(chunk: RetrievedChunk) -> str:
    """The chunk's source, with ``#page=N`` for a paged document: the fragment PDF viewers
    open at that page, the one holding the match."""
    page = cited_page(chunk)
    return chunk.source if page is None else f"{chunk.source}#page={page}"


def cited_page(chunk: RetrievedChunk) -> int | None:
    """The page a passage cites: the one holding its match when known, else its first."""
    return chunk.match_page if chunk.match_page is not None else chunk.page


def pages(chunk: RetrievedChunk) -> list[int] | None:
    """Every page the chunk is printed on, the one it cites first."""
    if chunk.page is None:
        return None
    cited = chunk.match_page if chunk.match_page is not None else chunk.page
    span = range(chunk.page, (chunk.last_page or chunk.page) + 1)
    return [cited, *(p for p in span if p != cited)]


def retrieved_item(chunk: RetrievedChunk) -> RetrievedItem:
    """One search result."""
    return RetrievedItem(
        chunk_id=chunk.chunk_id,
        document_id=str(chunk.document_id),
        source=linked_source(chunk),
        title=chunk.title,
        section=chunk.section,
        text=chunk.text,
        score=chunk.score,
        similarity=chunk.similarity,
        page=cited_page(chunk),
        last_page=chunk.last_page,
        pages=pages(chunk),
        also_in=list(chunk.also_in),
    )


def citation(n: int, chunk: RetrievedChunk) -> Citation:
    """Passage ``n`` as the caller sees it cited."""
    return Citation(
        n=n,
        document_id=str(chunk.document_id),
        source=linked_source(chunk),
        title=chunk.title,
        chunk_id=chunk.chunk_id,
        score=chunk.score,
        text=chunk.text,
        section=chunk.section,
        page=cited_page(chunk),
        last_page=chunk.last_page,
        pages=pages(chunk),
        also_in=list(chunk.also_in),
    )


def citations(chunks: list[RetrievedChunk]) -> list[Citation]:
    """Every chunk as a citation, numbered from 1."""
    return [citation(n, c) for n, c in enumerate(chunks, start=1)]


def query_response(
    verdict: Verdict,
    completion: Completion,
    *,
    profile: str,
    prompt: str,
    needs_review: bool,
    embedding_tokens: int,
    cost: Cost,
    latency: Latency,
    request_id: str,
    rerank_cost: Cost | None = None,
    reranker: str | None = None,
) -> QueryResponse:
    """The API's answer: the guarded text, its citations, the model, usage and cost."""
    return QueryResponse(
        answer=verdict.text,
        citations=[citation(n, c) for n, c in verdict.sources],
        abstained=verdict.abstained,
        profile=profile,
        needs_review=needs_review,
        fallback=is_fallback(completion),
        model=ModelInfo(provider=completion.provider, name=completion.model, prompt=prompt),
        usage=usage_info(
            completion.usage, embedding_tokens=embedding_tokens, cost=cost, rerank_cost=rerank_cost
        ),
        latency_ms=latency,
        request_id=request_id,
        reranker=reranker,
        review_reason=verdict.review_reason,
    )


def usage_info(
    usage: Usage, *, embedding_tokens: int, cost: Cost, rerank_cost: Cost | None
) -> UsageInfo:
    """The tokens a query consumed and what they cost (the rerank cost apart, too)."""
    return UsageInfo(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        embedding_tokens=embedding_tokens,
        cost_usd=_usd(cost.usd),
        cost_estimated=cost.estimated,
        estimated=usage.estimated,
        rerank_cost_usd=_usd(rerank_cost.usd) if rerank_cost is not None else 0.0,
    )


def reranker(reranking: Reranking | None) -> str | None:
    """The reranker that ordered the passages: None when none is configured or it failed."""
    if reranking is None or reranking.failed:
        return None
    return reranking.reranker


def _usd(amount: float | None) -> float | None:
    return None if amount is None else round(amount, 10)


def is_fallback(completion: Completion) -> bool:
    """Whether a fallback model of the chain wrote the completion."""
    return bool(completion.details.get("fallback", False))


def model_spec(completion: Completion) -> str:
    """``provider:model`` of the model that wrote the completion (``provider`` alone when
    the two are the same, as for ``extractive``)."""
    if completion.model == completion.provider:
        return completion.provider
    return f"{completion.provider}:{completion.model}"
