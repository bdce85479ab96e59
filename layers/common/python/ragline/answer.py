"""The answer use case: retrieve, fill the prompt template, ask the model, cite.

An answer is grounded in the numbered passages it cites as [n], or it is the template's
abstention sentence. When nothing relevant is retrieved the model is not called at all.
"""

from __future__ import annotations

import re
import time
import uuid
from functools import lru_cache
from typing import TYPE_CHECKING

from ragline.embeddings import Embedder, get_embedder
from ragline.errors import InvalidRequestError
from ragline.llm import ChatModel, Completion, GenerationRequest, Passage, Usage, create_model
from ragline.prompts import PromptTemplate, load_prompt
from ragline.retrieval import Retriever
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
from ragline.telemetry.pricing import cost_of

if TYPE_CHECKING:
    from ragline.config import Settings

_CITATION = re.compile(r"\[(\d+)\]")
DEFAULT_PROMPT = "answer@v1"


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
    """Answers questions against the store with one model and one prompt template."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        embedder: Embedder,
        model: ChatModel,
        prompt: PromptTemplate,
    ) -> None:
        self.settings = settings
        self.store = store
        self.retriever = Retriever(store, embedder)
        self.model = model
        self.prompt = prompt

    @classmethod
    def from_settings(cls, settings: Settings) -> Answerer:
        return cls(
            settings,
            get_store(settings),
            get_embedder(settings),
            create_model(settings.llm, settings),
            load_prompt(DEFAULT_PROMPT, settings.prompts_dir),
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
        """Answer ``question`` from the collection, citing the passages used."""
        started = time.perf_counter()
        question = self._text(question, "question")
        retrieval = self.retriever.search(
            question, collection=self._collection(collection), top_k=self._top_k(top_k)
        )
        retrieved_at = time.perf_counter()
        passages = tuple(
            Passage(n, c.text, c.title, c.source, c.section)
            for n, c in enumerate(retrieval.chunks, start=1)
        )
        if passages:
            completion = self._generate(question, passages)
        else:  # nothing to ground an answer on: do not pay for a model call
            completion = Completion(
                self.prompt.abstain, Usage(), self.model.provider, self.model.model
            )
        finished = time.perf_counter()

        abstained = is_abstention(completion.text, self.prompt.abstain)
        cited = {int(n) for n in _CITATION.findall(completion.text)}
        chosen = [] if abstained else [
            (n, c) for n, c in enumerate(retrieval.chunks, start=1) if not cited or n in cited
        ]  # fmt: skip
        usage = completion.usage
        return QueryResponse(
            answer=completion.text.strip(),
            citations=[_citation(n, c) for n, c in chosen],
            abstained=abstained,
            model=ModelInfo(
                provider=completion.provider, name=completion.model, prompt=self.prompt.ref
            ),
            usage=UsageInfo(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cached_input_tokens=usage.cached_input_tokens,
                embedding_tokens=retrieval.embedding_tokens,
                cost_usd=cost_of(
                    completion.provider,
                    completion.model,
                    usage,
                    embedder=self.retriever.embedder.name,
                    embedding_tokens=retrieval.embedding_tokens,
                ),
                estimated=usage.estimated,
            ),
            latency_ms=Latency(
                retrieve=_ms(retrieved_at - started),
                generate=_ms(finished - retrieved_at),
                total=_ms(finished - started),
            ),
            request_id=request_id or str(uuid.uuid4()),
        )

    def _generate(self, question: str, passages: tuple[Passage, ...]) -> Completion:
        rendered = self.prompt.render(question=question, context=format_context(passages))
        request = GenerationRequest(
            system=rendered.system,
            user=rendered.user,
            question=question,
            passages=passages,
            abstain_text=self.prompt.abstain,
            max_tokens=self.settings.max_output_tokens,
        )
        return self.model.generate(request)


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
