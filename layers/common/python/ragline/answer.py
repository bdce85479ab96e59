"""The answer use case: route, retrieve, fill the prompt template, ask the model, cite.

An answer is grounded in the numbered passages it cites as [n], or it is the template's
abstention sentence. When nothing relevant is retrieved the model is not called at all.
The request's profile (:mod:`ragline.routing`) picks the model chain, the template and
the retrieval rules: how many passages, how similar they must be, whether an answer must
cite them and whether it goes to review.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from functools import lru_cache
from typing import TYPE_CHECKING

from ragline.embeddings import Embedder, get_embedder
from ragline.errors import InvalidRequestError, ModelUnavailableError
from ragline.llm import ChatModel, Completion, GenerationRequest, Passage, Usage
from ragline.prompts import PromptTemplate
from ragline.retrieval import Retriever
from ragline.routing import Route, Router
from ragline.schemas import (
    Citation,
    Latency,
    ModelInfo,
    QueryResponse,
    RetrievedItem,
    RetrieveResponse,
    UsageInfo,
)
from ragline.store import RetrievedChunk, Store, get_store
from ragline.telemetry.pricing import Cost, get_price_table
from ragline.telemetry.recorder import QueryContext, Recorder, get_recorder

if TYPE_CHECKING:
    from ragline.config import Settings

logger = logging.getLogger(__name__)
_CITATION = re.compile(r"\[(\d+)\]")


def format_context(passages: tuple[Passage, ...]) -> str:
    """The passages as the model reads them: number, title and section, then the text."""
    blocks = []
    for passage in passages:
        heading = " — ".join(p for p in (passage.title, passage.section) if p)
        blocks.append(f"[{passage.n}] {heading}\n{passage.text}".strip())
    return "\n\n".join(blocks)


def is_abstention(text: str, abstain_text: str) -> bool:
    def normalize(value: str) -> str:
        return re.sub(r"[^a-z ]", "", value.lower()).strip()

    return normalize(text).startswith(normalize(abstain_text))


class Answerer:
    """Answers questions against the store through the routing profiles.

    Built with one model and one template (and no router), it serves them as the only
    profile; :meth:`from_settings` routes every configured profile.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        embedder: Embedder,
        model: ChatModel,
        prompt: PromptTemplate,
        router: Router | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.retriever = Retriever(store, embedder)
        self.model = model
        self.prompt = prompt
        self.router = router or Router.single(settings, model, prompt)
        self.recorder = recorder
        self.prices = get_price_table(settings.prices_file)

    @classmethod
    def from_settings(cls, settings: Settings) -> Answerer:
        """Build every profile's models and templates now, so bad ones fail cold start."""
        router = Router.from_settings(settings)
        default = router.default
        return cls(
            settings,
            get_store(settings),
            get_embedder(settings),
            default.chain.primary,
            default.prompt,
            router,
            get_recorder(settings),
        )

    # --- validation shared by both routes ---------------------------------------------------

    def _collection(self, collection: str | None) -> str:
        return collection or self.settings.default_collection

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
        mode: str = "hybrid",
    ) -> RetrieveResponse:  # fmt: skip
        """Search without generating: the chunks a question would be answered from."""
        retrieval = self.retriever.search(
            self._text(query, "query"),
            collection=self._collection(collection),
            top_k=self._top_k(top_k),
            mode=mode,
        )
        return RetrieveResponse(
            results=[_item(c) for c in retrieval.chunks],
            embedding_tokens=retrieval.embedding_tokens,
        )

    def answer(
        self,
        question: str,
        *,
        collection: str | None = None,
        top_k: int | None = None,
        profile: str | None = None,
        request_id: str | None = None,
    ) -> QueryResponse:
        """Answer ``question`` from the collection, citing the passages used.

        ``profile`` names a routing profile (None: the default one); an unknown name is
        InvalidRequestError. When every model of the profile's chain fails,
        ModelUnavailableError carries the retrieved passages as citations.
        """
        route = self.router.route(profile)
        rules = route.profile
        started = time.perf_counter()
        question = self._text(question, "question")
        collection = self._collection(collection)
        retrieval = self.retriever.search(
            question, collection=collection, top_k=self._top_k(top_k or rules.top_k)
        )
        retrieved_at = time.perf_counter()
        chunks = _similar_enough(retrieval.chunks, rules.min_score)
        passages = tuple(
            Passage(n, c.text, c.title, c.source, c.section) for n, c in enumerate(chunks, start=1)
        )
        if passages:
            try:
                completion = self._generate(route, question, passages)
            except ModelUnavailableError as exc:
                sources = [_citation(n, c).model_dump() for n, c in enumerate(chunks, start=1)]
                raise exc.with_citations(sources) from exc
        else:  # nothing to ground an answer on: do not pay for a model call
            primary = route.chain.primary
            completion = Completion(route.prompt.abstain, Usage(), primary.provider, primary.model)
        finished = time.perf_counter()

        text = completion.text.strip()
        abstained = is_abstention(text, route.prompt.abstain)
        cited = {int(n) for n in _CITATION.findall(text)}
        if rules.require_citations and not abstained and not cited & set(range(1, len(chunks) + 1)):
            # An answer that cites nothing cannot be checked against the sources: withhold it.
            logger.warning(
                "profile %s: the answer of %s cites no passage; abstaining instead",
                route.name, _spec(completion),
            )  # fmt: skip
            text, abstained = route.prompt.abstain, True
        chosen = [] if abstained else [
            (n, c) for n, c in enumerate(chunks, start=1) if not cited or n in cited
        ]  # fmt: skip
        fallback = bool(completion.details.get("fallback", False))
        logger.info(
            "answered with profile %s, model %s, prompt %s%s",
            route.name, _spec(completion), route.prompt.ref, " (fallback)" if fallback else "",
            extra={"profile": route.name, "model": _spec(completion), "prompt": route.prompt.ref,
                   "fallback": fallback, "abstained": abstained},
        )  # fmt: skip
        usage = completion.usage
        cost = self._cost(completion, retrieval.embedding_tokens, called=bool(passages))
        response = QueryResponse(
            answer=text,
            citations=[_citation(n, c) for n, c in chosen],
            abstained=abstained,
            profile=route.name,
            needs_review=rules.review,
            fallback=fallback,
            model=ModelInfo(
                provider=completion.provider, name=completion.model, prompt=route.prompt.ref
            ),
            usage=UsageInfo(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cached_input_tokens=usage.cached_input_tokens,
                embedding_tokens=retrieval.embedding_tokens,
                cost_usd=None if cost.usd is None else round(cost.usd, 10),
                cost_estimated=cost.estimated,
                estimated=usage.estimated,
            ),
            latency_ms=Latency(
                retrieve=_ms(retrieved_at - started),
                generate=_ms(finished - retrieved_at),
                total=_ms(finished - started),
            ),
            request_id=request_id or str(uuid.uuid4()),
        )
        if self.recorder is not None:
            top = retrieval.chunks[0].similarity if retrieval.chunks else None
            context = QueryContext(
                question=question,
                collection=collection,
                profile=route.name,
                chunks_retrieved=len(retrieval.chunks),
                top_score=None if top is None else round(top, 6),
                fallback=fallback,
                needs_review=rules.review,
                cost_estimated=cost.estimated,
            )
            try:
                self.recorder.query(response, context)
            except Exception:  # the answer stands even if the ledger cannot be written
                logger.exception("could not record query %s", response.request_id)
        return response

    def _cost(self, completion: Completion, embedding_tokens: int, *, called: bool) -> Cost:
        """Generation (none when no model was called) plus the question's embedding."""
        embedding = self.prices.embedding_cost(self.retriever.embedder.name, embedding_tokens)
        if not called:
            return Cost(0.0) + embedding
        seconds = completion.details.get("latency_ms")
        generation = self.prices.generation_cost(
            completion.provider,
            completion.model,
            completion.usage,
            seconds=None if seconds is None else float(seconds) / 1000,
            instance_type=self.settings.sagemaker_instance_type,
        )
        return generation + embedding

    def _generate(self, route: Route, question: str, passages: tuple[Passage, ...]) -> Completion:
        values = {"question": question, "context": format_context(passages)}
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
        return route.chain.generate(request)


def _similar_enough(chunks: list[RetrievedChunk], min_score: float | None) -> list[RetrievedChunk]:
    """The chunks at least ``min_score`` similar to the question (all when no bar is set);
    a chunk of unknown similarity does not clear a bar."""
    if min_score is None:
        return chunks
    return [c for c in chunks if c.similarity is not None and c.similarity >= min_score]


def _spec(completion: Completion) -> str:
    if completion.model == completion.provider:
        return completion.provider
    return f"{completion.provider}:{completion.model}"


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _item(chunk: RetrievedChunk) -> RetrievedItem:
    return RetrievedItem(
        chunk_id=chunk.chunk_id,
        document_id=str(chunk.document_id),
        source=chunk.source,
        title=chunk.title,
        section=chunk.section,
        text=chunk.text,
        score=chunk.score,
        similarity=chunk.similarity,
    )


def _citation(n: int, chunk: RetrievedChunk) -> Citation:
    return Citation(
        n=n,
        document_id=str(chunk.document_id),
        source=chunk.source,
        title=chunk.title,
        chunk_id=chunk.chunk_id,
        score=chunk.score,
        text=chunk.text,
        section=chunk.section,
    )


@lru_cache(maxsize=4)
def get_answerer(settings: Settings | None = None) -> Answerer:
    """The process's answerer, created once (at cold start in the query Lambda)."""
    from ragline.config import get_settings

    return Answerer.from_settings(settings or get_settings())
