"""The answer use case: route, retrieve, fill the prompt template, ask the model, guard, cite.

When nothing relevant is retrieved the model is not called at all. The request's
profile (:mod:`ragline.answer.routing`) picks the model chain, the template and the
retrieval rules; :mod:`ragline.answer.guard` decides what the answer may say and cite;
:mod:`ragline.answer.responses` shapes what the caller gets.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from ragline.answer import responses
from ragline.answer.events import Answered, AnswerEvent, Failed, Retrieved, TextDelta
from ragline.answer.guard import check_answer, similar_enough
from ragline.answer.routing import Route, Router
from ragline.embeddings import get_embedder
from ragline.errors import (
    InvalidRequestError,
    ModelError,
    ModelUnavailableError,
    NotFoundError,
    RaglineError,
)
from ragline.identity import OPERATOR, Identity
from ragline.ledger import Costs, Ledger, get_ledger, query_record
from ragline.llm import Completion, GenerationRequest, StreamInterruptedError, Usage
from ragline.rerankers import get_reranker
from ragline.retrieval import Retriever
from ragline.schemas import Citation, Latency, QueryResponse, RetrieveResponse
from ragline.store import get_store

if TYPE_CHECKING:
    from ragline.answer.guard import Verdict
    from ragline.answer.routing import Profile
    from ragline.config import Settings
    from ragline.embeddings import Embedder
    from ragline.filters import Filter
    from ragline.rerankers import Reranker
    from ragline.retrieval import Retrieval
    from ragline.store import RetrievedChunk, Store
    from ragline.telemetry.pricing import Cost

# The package's name, not this module's: operators filter the answer log line on it.
logger = logging.getLogger("ragline.answer")


@dataclass(frozen=True)
class Reviewable:
    """An answer as a reviewer would see it: what :attr:`Answerer.review` is handed."""

    response: QueryResponse
    question: str
    collection: str
    passages: list[Citation]  # every passage the model was shown
    profile: Profile
    identity: Identity


# Called with each answer once it is recorded; returns the response to give (the review
# queue, ragline.reviews, adds a review id, or holds the answer back).
ReviewHook = Callable[[Reviewable], QueryResponse]


class Answerer:
    """Answers questions against the store through the routing profiles."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        embedder: Embedder,
        router: Router,
        ledger: Ledger | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.retriever = Retriever(
            store, embedder, reranker, rerank_depth=settings.rerank_depth,
            fusion=settings.fusion, vector_weight=settings.fusion_vector_weight,
        )  # fmt: skip
        self.router = router
        self.ledger = ledger
        self.costs = ledger.costs if ledger is not None else Costs.from_settings(settings)
        self.review: ReviewHook | None = None  # set by ragline.reviews.ReviewQueue.attach

    @classmethod
    def from_settings(cls, settings: Settings) -> Answerer:
        """Build every profile's models and templates now, so bad ones fail cold start."""
        return cls(
            settings,
            get_store(settings),
            get_embedder(settings),
            Router.from_settings(settings),
            get_ledger(settings),
            get_reranker(settings),
        )

    # --- validation shared by both routes ---------------------------------------------------

    def _collection(self, collection: str | None, identity: Identity) -> str:
        """The collection to search, once it is known to be the caller's tenant's. Another
        tenant's, or one nothing was ingested into (a typo would otherwise read as an
        honest abstention), is the same NotFoundError: existence is not told. The default
        collection is the default tenant's, empty until the first document arrives. A key
        without the ``query`` scope is 403 on its own tenant's."""
        default = self.settings.default_collection
        name = collection or default
        if self.store.collection_owner(name) != identity.tenant:
            raise NotFoundError(
                f"collection {name!r} does not exist: no document was ingested into "
                f"it (the default collection is {default!r})"
            )
        identity.require("query")
        return name

    def _top_k(self, top_k: int | None) -> int:
        value = top_k or self.settings.top_k
        if value > self.settings.max_top_k:
            raise InvalidRequestError(f"top_k must be at most {self.settings.max_top_k}")
        return value

    def _text(self, text: str, field: str) -> str:
        text = text.strip()
        if not text:
            raise InvalidRequestError(f"{field} must not be empty")
        if len(text) > self.settings.max_question_chars:
            raise InvalidRequestError(
                f"{field} is {len(text)} characters; "
                f"the limit is {self.settings.max_question_chars}"
            )
        return text

    # --- use cases --------------------------------------------------------------------------

    def retrieve(
        self, query: str, *, collection: str | None = None, top_k: int | None = None,
        mode: str = "hybrid", ef_search: int | None = None, where: Filter | None = None,
        identity: Identity = OPERATOR,
    ) -> RetrieveResponse:  # fmt: skip
        """Search without generating: the chunks a question would be answered from
        (``where``: of the documents this metadata filter matches), in a collection of
        the caller's tenant."""
        query = self._text(query, "query")
        retrieval = self.retriever.search(
            query,
            collection=self._collection(collection, identity),
            top_k=self._top_k(top_k),
            mode=mode,
            ef_search=ef_search,
            where=where,
        )
        reranking = retrieval.reranking
        rerank_cost = self.costs.rerank(reranking).usd
        return RetrieveResponse(
            results=[responses.retrieved_item(c) for c in retrieval.chunks],
            embedding_tokens=retrieval.embedding_tokens,
            reranker=responses.reranker(reranking),
            rerank_ms=0.0 if reranking is None else reranking.latency_ms,
            rerank_cost_usd=None if rerank_cost is None else round(rerank_cost, 10),
        )

    def answer(
        self,
        question: str,
        *,
        collection: str | None = None,
        top_k: int | None = None,
        profile: str | None = None,
        request_id: str | None = None,
        ef_search: int | None = None,
        where: Filter | None = None,
        identity: Identity = OPERATOR,
    ) -> QueryResponse:
        """Answer ``question`` from a collection of the caller's tenant, citing the
        passages used; its tokens and cost are recorded for that tenant.

        ``profile`` names a routing profile (None: the default one); an unknown name is
        InvalidRequestError. ``where``, a metadata filter, limits the passages to the
        documents it matches. When every model of the profile's chain fails,
        ModelUnavailableError carries the retrieved passages as citations.
        """
        events = self._events(
            question, collection=collection, top_k=top_k, profile=profile,
            request_id=request_id or str(uuid.uuid4()), ef_search=ef_search, where=where,
            stream=False, identity=identity,
        )  # fmt: skip
        for event in events:
            if isinstance(event, Answered):
                return event.response
        raise AssertionError("an answer's events end with the answer")  # pragma: no cover

    def stream(
        self,
        question: str,
        *,
        collection: str | None = None,
        top_k: int | None = None,
        profile: str | None = None,
        request_id: str | None = None,
        ef_search: int | None = None,
        where: Filter | None = None,
        identity: Identity = OPERATOR,
    ) -> Iterator[AnswerEvent]:
        """The answer as it is made (:mod:`ragline.answer.events`): :class:`Retrieved`,
        then :class:`TextDelta` as the model writes, then :class:`Answered` (what
        :meth:`answer` returns), or :class:`Failed` once the retrieval event is out.

        An invalid request, or a failing search, raises on the first ``next()`` as
        :meth:`answer` raises, before any event: the caller can still answer with a
        status. Closing the iterator stops the model call.
        """
        request_id = request_id or str(uuid.uuid4())
        events = self._events(
            question, collection=collection, top_k=top_k, profile=profile,
            request_id=request_id, ef_search=ef_search, where=where, stream=True,
            identity=identity,
        )  # fmt: skip
        yield next(events)
        try:
            yield from events
        except ModelUnavailableError as exc:
            yield Failed(
                exc.status_code, str(exc), request_id, citations=exc.citations,
                retry_after_seconds=exc.retry_after_seconds,
            )  # fmt: skip
        except RaglineError as exc:
            if exc.status_code >= 500:
                logger.exception("streamed answer %s failed", request_id)
            yield Failed(exc.status_code, str(exc), request_id)
        except Exception:  # a streamed body ends with an event, never cut off
            logger.exception("streamed answer %s failed", request_id)
            yield Failed(500, f"internal error (request id {request_id})", request_id)

    def _events(
        self,
        question: str,
        *,
        collection: str | None,
        top_k: int | None,
        profile: str | None,
        request_id: str,
        ef_search: int | None,
        where: Filter | None,
        stream: bool,
        identity: Identity,
    ) -> Iterator[AnswerEvent]:
        """The one path of both APIs: route, retrieve (validation and search run before
        the first event), generate (streamed or whole), guard, record."""
        route = self.router.route(profile)
        rules = route.profile
        started = time.perf_counter()
        question = self._text(question, "question")
        collection = self._collection(collection, identity)
        retrieval = self.retriever.search(
            question,
            collection=collection,
            top_k=self._top_k(top_k or rules.top_k),
            ef_search=ef_search,
            where=where,
        )
        retrieved_at = time.perf_counter()
        chunks = similar_enough(retrieval.chunks, rules.min_score)
        yield Retrieved(
            request_id, route.name, responses.citations(chunks), _ms(retrieved_at - started)
        )
        reranking = retrieval.reranking
        rerank_cost = self.costs.rerank(reranking)
        try:
            completion = yield from self._generate(
                route, question, chunks, stream=stream, show_text=stream and rules.streams_text
            )
        except StreamInterruptedError as exc:
            usage = responses.usage_info(
                exc.partial.usage,
                embedding_tokens=retrieval.embedding_tokens,
                cost=self._cost(exc.partial, retrieval, rerank_cost),
                rerank_cost=rerank_cost,
            )
            yield Failed(exc.status_code, str(exc), request_id, usage=usage)
            return
        finished = time.perf_counter()
        verdict = check_answer(
            completion.text,
            chunks,
            abstain_text=route.prompt.abstain,
            require_citations=rules.require_citations,
        )
        self._log(route, completion, verdict)
        response = responses.query_response(
            verdict,
            completion,
            profile=route.name,
            prompt=route.prompt.ref,
            needs_review=rules.review or verdict.review_reason is not None,
            embedding_tokens=retrieval.embedding_tokens,
            # no passages: no model was called
            cost=self._cost(completion if chunks else None, retrieval, rerank_cost),
            rerank_cost=rerank_cost,
            reranker=responses.reranker(reranking),
            latency=Latency(
                retrieve=_ms(retrieved_at - started),
                generate=_ms(finished - retrieved_at),
                total=_ms(finished - started),
                rerank=0.0 if reranking is None else reranking.latency_ms,
            ),
            request_id=request_id,
        )
        self._record(response, question, collection, retrieval, identity.tenant)
        if self.review is not None:
            passages = responses.citations(chunks)
            response = self.review(
                Reviewable(response, question, collection, passages, rules, identity)
            )
        yield Answered(response)

    def _cost(
        self, completion: Completion | None, retrieval: Retrieval, rerank_cost: Cost | None
    ) -> Cost:
        return self.costs.query(
            completion,
            embedder=self.retriever.embedder.name,
            embedding_tokens=retrieval.embedding_tokens,
            rerank=rerank_cost,
            embedding_seconds=retrieval.embedding_seconds,
        )

    def _generate(
        self,
        route: Route,
        question: str,
        chunks: list[RetrievedChunk],
        *,
        stream: bool,
        show_text: bool,
    ) -> Generator[TextDelta, None, Completion]:
        """The model's completion over the passages (its text as deltas when ``show_text``);
        the abstention, without a model call, when there is nothing to ground an answer on."""
        if not chunks:
            primary = route.chain.primary
            if show_text:
                yield TextDelta(route.prompt.abstain)
            return Completion(route.prompt.abstain, Usage(), primary.provider, primary.model)
        passages = responses.passages(chunks)
        values = {"question": question, "context": responses.format_context(passages)}
        # A template may leave a variable out (checked at cold start): fill what it declares.
        rendered = route.prompt.render(**{name: values[name] for name in route.prompt.variables})
        request = GenerationRequest(
            system=rendered.system,
            user=rendered.user,
            question=question,
            passages=passages,
            abstain_text=route.prompt.abstain,
            max_tokens=self.settings.max_output_tokens,
        )
        try:
            if not stream:
                return route.chain.generate(request)
            for item in route.chain.stream(request):
                if isinstance(item, Completion):
                    return item
                if show_text:
                    yield TextDelta(item)
        except ModelUnavailableError as exc:
            sources = [c.model_dump() for c in responses.citations(chunks)]
            raise exc.with_citations(sources) from exc
        raise ModelError(f"{route.chain.primary.spec}: the stream ended without an answer")

    def _record(
        self,
        response: QueryResponse,
        question: str,
        collection: str,
        retrieval: Retrieval,
        tenant: str,
    ) -> None:
        if self.ledger is None:
            return
        top = retrieval.chunks[0].similarity if retrieval.chunks else None
        record = query_record(
            response,
            question=question,
            collection=collection,
            chunks_retrieved=len(retrieval.chunks),
            top_score=top,
            reranking=retrieval.reranking,
            tenant=tenant,
        )
        try:
            self.ledger.query(record)
        except Exception:  # the answer stands even if the ledger cannot be written
            logger.exception("could not record query %s", response.request_id)

    @staticmethod
    def _log(route: Route, completion: Completion, verdict: Verdict) -> None:
        model, fallback = responses.model_spec(completion), responses.is_fallback(completion)
        if verdict.withheld:
            logger.warning(
                "profile %s: the answer of %s cites no passage; abstaining instead",
                route.name, model,
            )  # fmt: skip
        if verdict.review_reason is not None:
            logger.warning(
                "profile %s: the answer of %s needs review: %s",
                route.name, model, verdict.review_reason,
                extra={"profile": route.name, "model": model, "instruction_echo": True},
            )  # fmt: skip
        logger.info(
            "answered with profile %s, model %s, prompt %s%s",
            route.name, model, route.prompt.ref, " (fallback)" if fallback else "",
            extra={"profile": route.name, "model": model, "prompt": route.prompt.ref,
                   "fallback": fallback, "abstained": verdict.abstained},
        )  # fmt: skip


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


@lru_cache(maxsize=4)
def get_answerer(settings: Settings | None = None) -> Answerer:
    """The process's answerer, created once (at cold start in the query Lambda)."""
    from ragline.config import get_settings

    return Answerer.from_settings(settings or get_settings())
