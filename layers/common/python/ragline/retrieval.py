"""Retrieval: vector, keyword, and hybrid search fused with Reciprocal Rank Fusion or by
relative scores, and optionally reranked."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ragline.errors import InvalidRequestError, ModelError

if TYPE_CHECKING:
    from ragline.embeddings import Embedder
    from ragline.filters import Filter
    from ragline.rerankers import Reranker
    from ragline.store import RetrievedChunk, Store

logger = logging.getLogger(__name__)

RRF_K = 60  # the constant of Cormack et al. (2009); damps the weight of the very top ranks
MODES = ("hybrid", "vector", "keyword")
FUSIONS = ("rrf", "relative")


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[RetrievedChunk]], *, k: int = RRF_K, limit: int | None = None
) -> list[RetrievedChunk]:
    """Fuse ranked lists: each chunk scores the sum of 1 / (k + rank) over the lists.

    Ties keep the order of first appearance. The returned chunks carry the fused score
    and the best cosine similarity any list knew for them.
    """
    scores: dict[int, float] = {}
    first: dict[int, RetrievedChunk] = {}
    similarity: dict[int, float] = {}
    for ranking in rankings:
        for rank, chunk in enumerate(ranking, start=1):
            scores[chunk.chunk_id] = scores.get(chunk.chunk_id, 0.0) + 1.0 / (k + rank)
            first.setdefault(chunk.chunk_id, chunk)
            if chunk.similarity is not None:
                similarity[chunk.chunk_id] = max(
                    similarity.get(chunk.chunk_id, -1.0), chunk.similarity
                )
    order = sorted(scores, key=lambda cid: -scores[cid])  # stable: first appearance wins ties
    fused = [
        replace(first[cid], score=round(scores[cid], 6), similarity=similarity.get(cid))
        for cid in order
    ]
    return fused[:limit] if limit is not None else fused


def relative_score_fusion(
    vector: Sequence[RetrievedChunk],
    keyword: Sequence[RetrievedChunk],
    *,
    vector_weight: float = 0.5,
    limit: int | None = None,
) -> list[RetrievedChunk]:
    """Fuse by score, not rank: each list's scores scaled to 0..1 (min-max within the list;
    a chunk a list did not return counts 0 there), then weighted and summed.

    Unlike RRF, a clear winner of one list keeps its lead: a passage far more similar
    than the rest is not pulled down to the level of the other list's weak matches.
    The returned chunks carry the fused score and the cosine similarity when known.
    """

    def scaled(
        ranking: Sequence[RetrievedChunk], value: Callable[[RetrievedChunk], float]
    ) -> dict[int, float]:
        values = [value(chunk) for chunk in ranking]
        if not values:
            return {}
        low, high = min(values), max(values)
        span = high - low
        return {
            c.chunk_id: (v - low) / span if span > 0 else 1.0
            for c, v in zip(ranking, values, strict=True)
        }

    by_vector = scaled(vector, lambda c: c.similarity if c.similarity is not None else c.score)
    by_keyword = scaled(keyword, lambda c: c.score)
    first: dict[int, RetrievedChunk] = {}
    for chunk in (*vector, *keyword):
        first.setdefault(chunk.chunk_id, chunk)
    similarity = {c.chunk_id: c.similarity for c in vector if c.similarity is not None}
    scores = {
        cid: vector_weight * by_vector.get(cid, 0.0)
        + (1 - vector_weight) * by_keyword.get(cid, 0.0)
        for cid in first
    }
    order = sorted(first, key=lambda cid: -scores[cid])  # stable: first appearance wins ties
    fused = [
        replace(first[cid], score=round(scores[cid], 6), similarity=similarity.get(cid))
        for cid in order
    ]
    return fused[:limit] if limit is not None else fused


@dataclass(frozen=True)
class Reranking:
    """What the reranker did for one search: which one, how long it took, how many
    documents it read and the queries a per-query price counts. ``failed``: it did not
    answer (or answered nonsense), so the search's own order stands."""

    reranker: str
    latency_ms: float
    documents: int = 0
    queries: int = 0
    failed: bool = False


@dataclass(frozen=True)
class Retrieval:
    chunks: list[RetrievedChunk]
    embedding_tokens: int
    reranking: Reranking | None = None  # None: no reranker configured (or no candidates)
    embedding_seconds: float = 0.0  # endpoint time of the query's embedding (SageMaker)


class Retriever:
    """Runs searches against one store with one embedder, and the reranker if any."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        reranker: Reranker | None = None,
        *,
        rerank_depth: int = 20,
        fusion: str = "relative",
        vector_weight: float | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.reranker = reranker
        self.rerank_depth = rerank_depth
        self.fusion = fusion
        self.vector_weight = vector_weight  # None: the embedder's own, calibrated for it

    def search(
        self,
        query: str,
        *,
        collection: str,
        top_k: int,
        mode: str = "hybrid",
        ef_search: int | None = None,
        where: Filter | None = None,
    ) -> Retrieval:
        """The ``top_k`` best chunks for ``query``: the search's own, or with a reranker,
        its order of the search's best ``rerank_depth`` candidates. ``ef_search``
        overrides RAGLINE_HNSW_EF_SEARCH; ``where``, a metadata filter, keeps the chunks
        of the documents it matches (the reranker sees only those)."""
        depth = top_k if self.reranker is None else max(top_k, self.rerank_depth)
        found = self.candidates(
            query, collection=collection, top_k=depth, mode=mode, ef_search=ef_search,
            where=where,
        )  # fmt: skip
        if self.reranker is None:
            return found
        return self.rerank(query, found, top_k)

    def rerank(self, query: str, found: Retrieval, top_k: int) -> Retrieval:
        """The reranker's ``top_k`` of ``found``, scored by the reranker (``similarity``
        stays the cosine similarity). A failing reranker costs the order, never the
        answer: the search's own top ``top_k`` come back, with a warning."""
        if self.reranker is None or not found.chunks:
            return replace(found, chunks=found.chunks[:top_k])
        name = self.reranker.name
        documents = [_rerank_text(chunk) for chunk in found.chunks]
        started = time.perf_counter()
        try:
            result = self.reranker.rerank(query, documents, top_k)
        except ModelError as exc:
            waited = round((time.perf_counter() - started) * 1000, 2)
            logger.warning(
                "reranker %s failed; keeping the search's order: %s", name, exc,
                extra={"reranker": name, "rerank_failed": True},
            )  # fmt: skip
            failed = Reranking(name, waited, len(documents), failed=True)
            return replace(found, chunks=found.chunks[:top_k], reranking=failed)
        chunks = [replace(found.chunks[r.index], score=round(r.score, 6)) for r in result.ranked]
        reranking = Reranking(name, result.latency_ms, result.documents, result.queries)
        return replace(found, chunks=chunks[:top_k], reranking=reranking)

    def candidates(
        self,
        query: str,
        *,
        collection: str,
        top_k: int,
        mode: str = "hybrid",
        ef_search: int | None = None,
        where: Filter | None = None,
    ) -> Retrieval:
        """The search itself: ``top_k`` chunks by vector, keyword or fused hybrid search,
        among the chunks of the documents ``where`` matches (None: all)."""
        if mode not in MODES:
            raise InvalidRequestError(f"mode must be one of {', '.join(MODES)}")
        known = self.store.collection_model(collection)
        if known is None:
            return Retrieval([], 0)  # nothing ingested into this collection yet
        # Which chunks may be returned, and how selective that is: both searches honour
        # it before their limit, so a filter never leaves fewer than top_k that exist.
        selection = self.store.select(collection, known[1], where)
        if mode == "keyword":
            return Retrieval(
                self.store.keyword_search(collection, query, top_k, selection=selection), 0
            )
        # A query vector from another model would be silently meaningless: refuse instead.
        self.store.ensure_collection(collection, self.embedder.name, self.embedder.dimensions)
        embedded = self.embedder.embed_query(query)
        vector = embedded.vectors[0]
        if not vector.any():
            # A query with nothing the embedder can read ("!!!") embeds as the zero vector,
            # whose cosine distance to every chunk is undefined (NaN): no chunk is near it.
            # Vector search finds nothing; hybrid search is the keyword search alone.
            if mode == "vector":
                return Retrieval([], embedded.tokens)
            return Retrieval(
                self.store.keyword_search(collection, query, top_k, selection=selection),
                embedded.tokens,
            )
        if mode == "vector":
            return Retrieval(
                self.store.vector_search(
                    collection, vector, top_k, ef_search=ef_search, selection=selection
                ),
                embedded.tokens,
                embedding_seconds=embedded.seconds,
            )
        depth = max(20, top_k * 4)
        by_vector = self.store.vector_search(
            collection, vector, depth, ef_search=ef_search, selection=selection
        )
        by_keyword = self.store.keyword_search(collection, query, depth, selection=selection)
        if self.fusion == "relative":
            weight = self.vector_weight
            if weight is None:
                weight = self.embedder.fusion_weight
            fused = relative_score_fusion(by_vector, by_keyword, vector_weight=weight, limit=top_k)
        else:
            fused = reciprocal_rank_fusion([by_vector, by_keyword], limit=top_k)
        missing = [c.chunk_id for c in fused if c.similarity is None]
        if missing:
            known_similarity = self.store.similarities(missing, vector)
            fused = [
                c if c.similarity is not None
                else replace(c, similarity=known_similarity.get(c.chunk_id))
                for c in fused
            ]  # fmt: skip
        return Retrieval(fused, embedded.tokens, embedding_seconds=embedded.seconds)


def _rerank_text(chunk: RetrievedChunk) -> str:
    """A candidate as the reranker reads it: heading path, then text (as the model will)."""
    heading = " — ".join(part for part in (chunk.title, chunk.section) if part)
    return f"{heading}\n{chunk.text}" if heading else chunk.text
