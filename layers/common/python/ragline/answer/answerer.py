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
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from ragline.answer import responses
from ragline.answer.conversation import Condenser, Conversation, Rewrite, recent
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
from ragline.llm import (
    Completion,
    GenerationRequest,
    StreamInterruptedError,
    StreamProgress,
    Usage,
)
from ragline.outcomes import QueryRecord
from ragline.rerankers import get_reranker
from ragline.retrieval import Retriever
from ragline.schemas import (
    Citation,
    Latency,
    QueryResponse,
    RetrieveResponse,
    RewriteInfo,
    UsageInfo,
)
from ragline.store import get_store
from ragline.telemetry.pricing import Cost

if TYPE_CHECKING:
    from ragline.answer.conversation import Message, Role
    from ragline.answer.guard import Verdict
    from ragline.answer.routing import Profile
    from ragline.config import Settings
    from ragline.embeddings import Embedder
    from ragline.filters import Filter
    from ragline.rerankers import Reranker
    from ragline.retrieval import Retrieval
    from ragline.store import RetrievedChunk, Store

# The package's name, not this module's: operators filter the answer log line on it.
logger = logging.getLogger("ragline.answer")
# The query-log status of a streamed answer whose client went away before its end (the
# status nginx logs for a request its client closed): its usage so far is recorded.
CUT_OFF_BY_CLIENT = 499


@dataclass(frozen=True)
class Reviewable:
    """An answer as a reviewer would see it: what :attr:`Answerer.review` is handed."""

    response: QueryResponse
    question: str
    collection: str
    passages: list[Citation]  # every passage the model was shown
    profile: Profile
    identity: Identity


# What a session remembers of an answer held for review (the caller has not seen it).
HELD_TURN = "(This answer is held for review and has not been given.)"

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
            parallel=settings.hybrid_parallel,
        )  # fmt: skip
        self.router = router
        self.condenser = Condenser(
            router.condenser,
            history_tokens=settings.history_tokens,
            max_question_chars=settings.max_question_chars,
        )
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
        session_id: str | None = None,
        history: Sequence[tuple[Role, str]] | None = None,
    ) -> QueryResponse:
        """Answer ``question`` from a collection of the caller's tenant, citing the
        passages used; its tokens and cost are recorded for that tenant.

        ``profile`` names a routing profile (None: the default one); an unknown name is
        InvalidRequestError. ``where``, a metadata filter, limits the passages to the
        documents it matches. When every model of the profile's chain fails,
        ModelUnavailableError carries the retrieved passages as citations.

        A follow-up comes with the conversation before it: ``session_id``, a session the
        server keeps (of the caller's tenant: another's is NotFoundError), or ``history``,
        the (role, text) messages the caller kept. It is searched for as rewritten
        (:mod:`ragline.answer.conversation`) and answered with the recent turns.
        """
        events = self._events(
            question, collection=collection, top_k=top_k, profile=profile,
            request_id=request_id or str(uuid.uuid4()), ef_search=ef_search, where=where,
            stream=False, identity=identity, session_id=session_id, history=history,
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
        session_id: str | None = None,
        history: Sequence[tuple[Role, str]] | None = None,
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
            identity=identity, session_id=session_id, history=history,
        )  # fmt: skip
        try:
            yield next(events)
        except GeneratorExit:  # closed after the retrieval event: the answer is accounted
            events.close()
            raise
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
        session_id: str | None = None,
        history: Sequence[tuple[Role, str]] | None = None,
    ) -> Generator[AnswerEvent, None, None]:
        """The one path of both APIs: route, rewrite a follow-up, retrieve (validation,
        the rewrite and the search run before the first event), generate (streamed or
        whole), guard, record, remember the turn.

        Closed before its answer (the client of a stream went away), the usage so far is
        recorded as a query cut off by the client (:data:`CUT_OFF_BY_CLIENT`); a model
        failing mid-stream is recorded with its usage so far and its error status."""
        route = self.router.route(profile)
        rules = route.profile
        started = time.perf_counter()
        question = self._text(question, "question")
        collection = self._collection(collection, identity)
        conversation = self._conversation(session_id, history, identity)
        rewrite = self.condenser.rewrite(question, conversation)
        rewrite_ms = _ms(time.perf_counter() - started)
        rewrite_cost = (
            Cost(0.0) if rewrite.completion is None else self.costs.generation(rewrite.completion)
        )
        retrieval = self.retriever.search(
            rewrite.query,
            collection=collection,
            top_k=self._top_k(top_k or rules.top_k),
            ef_search=ef_search,
            where=where,
        )
        retrieved_at = time.perf_counter()
        chunks = similar_enough(retrieval.chunks, rules.min_score)
        reranking = retrieval.reranking
        rerank_cost = self.costs.rerank(reranking)
        turns = recent(conversation.messages, self.settings.history_tokens)
        progress = StreamProgress()
        cut = _Cut(route, question, collection, retrieval, chunks, identity.tenant, request_id)
        try:
            yield Retrieved(
                request_id, route.name, responses.citations(chunks), _ms(retrieved_at - started),
                rewritten_query=None if rewrite.method is None else rewrite.query,
                session_id=conversation.session_id,
            )  # fmt: skip
            completion = yield from self._generate(
                route,
                # without the turns before it, the prompt asks the follow-up as rewritten
                question if turns or rewrite.method is None else rewrite.query,
                chunks,
                stream=stream,
                show_text=stream and rules.streams_text,
                search_query=rewrite.query,
                history=turns,
                progress=progress,
            )
        except StreamInterruptedError as exc:
            cost = self._cost(exc.partial, retrieval, rerank_cost) + rewrite_cost
            usage = _with_rewrite(
                responses.usage_info(
                    exc.partial.usage,
                    embedding_tokens=retrieval.embedding_tokens,
                    cost=cost,
                    rerank_cost=rerank_cost,
                ),
                rewrite,
                rewrite_cost,
            )
            self._record_cut(cut, exc.partial, cost, started, retrieved_at, exc.status_code)
            yield Failed(exc.status_code, str(exc), request_id, usage=usage)
            return
        except GeneratorExit:
            partial = progress.partial()
            cost = self._cost(partial, retrieval, rerank_cost) + rewrite_cost
            self._record_cut(cut, partial, cost, started, retrieved_at, CUT_OFF_BY_CLIENT)
            raise
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
            cost=self._cost(completion if chunks else None, retrieval, rerank_cost) + rewrite_cost,
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
        response = _conversation_response(response, conversation, rewrite, rewrite_cost, rewrite_ms)
        self._record(response, question, collection, retrieval, identity.tenant)
        # A held answer is not the caller's yet: its turn keeps the question, not the text
        # nobody has approved, so no follow-up builds on it.
        held = self.review is not None and rules.hold
        self._remember(conversation, identity, response, question, rewrite.query, held=held)
        if self.review is not None:
            passages = responses.citations(chunks)
            response = self.review(
                Reviewable(response, question, collection, passages, rules, identity)
            )
        yield Answered(response)

    def _conversation(
        self,
        session_id: str | None,
        history: Sequence[tuple[Role, str]] | None,
        identity: Identity,
    ) -> Conversation:
        """The turns before the question: the session's (started now if it is new), the
        caller's ``history``, or none. Another tenant's session is NotFoundError."""
        if session_id is not None and history is not None:
            raise InvalidRequestError(
                "send session_id (a conversation the server keeps) or history (one you "
                "keep), not both"
            )
        if history is not None:  # its size is the body's; the prompts take what fits
            return Conversation.from_history(history, self.settings.max_history_turns)
        if session_id is None:
            return Conversation()
        try:
            session_id = str(uuid.UUID(session_id))
        except ValueError:
            raise InvalidRequestError("session_id must be a UUID") from None
        turns = self.store.open_session(
            session_id,
            tenant=identity.tenant,
            ttl_hours=self.settings.session_ttl_hours,
            turns=self.settings.max_history_turns,
        )
        if turns is None:
            raise NotFoundError(f"session {session_id} does not exist")
        return Conversation.from_session(session_id, turns)

    def _remember(
        self,
        conversation: Conversation,
        identity: Identity,
        response: QueryResponse,
        question: str,
        search_query: str,
        *,
        held: bool = False,
    ) -> None:
        """Add the answered turn to its session (the answer stands if that fails); a held
        answer's turn carries :data:`HELD_TURN` in place of its text."""
        if conversation.session_id is None:
            return
        try:
            self.store.append_turn(
                conversation.session_id, tenant=identity.tenant,
                request_id=response.request_id, question=question,
                search_query=search_query, answer=HELD_TURN if held else response.answer,
                ttl_hours=self.settings.session_ttl_hours,
            )  # fmt: skip
        except Exception:
            logger.exception("could not add turn %s to its session", response.request_id)

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
        search_query: str | None = None,
        history: tuple[Message, ...] = (),
        progress: StreamProgress | None = None,
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
            # what a model reading the passages directly (extractive) looks for
            question=search_query or question,
            passages=passages,
            abstain_text=route.prompt.abstain,
            max_tokens=self.settings.max_output_tokens,
            history=tuple((m.role, m.text) for m in history),
        )
        try:
            if not stream:
                return route.chain.generate(request)
            for item in route.chain.stream(request, progress):
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

    def _record_cut(
        self,
        cut: _Cut,
        partial: Completion | None,
        cost: Cost,
        started: float,
        retrieved_at: float,
        status_code: int,
    ) -> None:
        """Record an answer that ended early with what it consumed: the search, and the
        model's tokens so far (estimated) when one had started, priced. Never raises."""
        if self.ledger is None:
            return
        finished = time.perf_counter()
        chunks = cut.retrieval.chunks
        model = partial or Completion("", Usage(), cut.route.chain.primary.provider,
                                      cut.route.chain.primary.model)  # fmt: skip
        record = QueryRecord(
            request_id=cut.request_id,
            status_code=status_code,
            collection=cut.collection,
            profile=cut.route.name,
            provider=model.provider,
            model=model.model,
            prompt=cut.route.prompt.ref,
            input_tokens=model.usage.input_tokens,
            output_tokens=model.usage.output_tokens,
            cached_input_tokens=model.usage.cached_input_tokens,
            embedding_tokens=cut.retrieval.embedding_tokens,
            cost_usd=None if cost.usd is None else round(cost.usd, 10),
            # tokens counted here, not reported by the provider: so is their cost
            cost_estimated=cost.estimated or model.usage.estimated,
            retrieve_ms=_ms(retrieved_at - started),
            generate_ms=_ms(finished - retrieved_at),
            total_ms=_ms(finished - started),
            chunks_retrieved=len(chunks),
            top_score=_rounded(chunks[0].similarity if chunks else None),
            abstained=False,
            needs_review=False,
            fallback=responses.is_fallback(model),
            sources=sorted({c.source for c in responses.citations(cut.chunks)}),
            question=cut.question,
            tenant=cut.tenant,
        )
        logger.info(
            "answer %s ended early (status %d) after %d output tokens",
            cut.request_id, status_code, model.usage.output_tokens,
            extra={"profile": cut.route.name, "status_code": status_code},
        )  # fmt: skip
        try:
            self.ledger.query(record)
        except Exception:  # the stream is over either way
            logger.exception("could not record query %s", cut.request_id)

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


@dataclass(frozen=True)
class _Cut:
    """What an answer that ends early is recorded with."""

    route: Route
    question: str
    collection: str
    retrieval: Retrieval
    chunks: list[RetrievedChunk]
    tenant: str
    request_id: str


def _rounded(score: float | None) -> float | None:
    return None if score is None else round(score, 6)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _with_rewrite(usage: UsageInfo, rewrite: Rewrite, cost: Cost) -> UsageInfo:
    """The usage with the rewrite's own line (its cost is already a part of cost_usd)."""
    if rewrite.completion is None:
        return usage
    tokens = rewrite.completion.usage
    return usage.model_copy(
        update={
            "rewrite_input_tokens": tokens.input_tokens,
            "rewrite_output_tokens": tokens.output_tokens,
            "rewrite_cost_usd": None if cost.usd is None else round(cost.usd, 10),
        }
    )


def _conversation_response(
    response: QueryResponse,
    conversation: Conversation,
    rewrite: Rewrite,
    rewrite_cost: Cost,
    rewrite_ms: float,
) -> QueryResponse:
    """The response with its session, the query it was searched for and what that cost."""
    if rewrite.method is None and conversation.session_id is None:
        return response
    completion = rewrite.completion
    info = None
    if rewrite.method is not None:
        info = RewriteInfo(
            method=rewrite.method,
            model=None if completion is None else responses.model_spec(completion),
            prompt=rewrite.prompt,
        )
    return response.model_copy(
        update={
            "session_id": conversation.session_id,
            "rewritten_query": None if rewrite.method is None else rewrite.query,
            "rewrite": info,
            "usage": _with_rewrite(response.usage, rewrite, rewrite_cost),
            "latency_ms": response.latency_ms.model_copy(update={"rewrite": rewrite_ms}),
        }
    )


@lru_cache(maxsize=4)
def get_answerer(settings: Settings | None = None) -> Answerer:
    """The process's answerer, created once (at cold start in the query Lambda)."""
    from ragline.config import get_settings

    return Answerer.from_settings(settings or get_settings())
