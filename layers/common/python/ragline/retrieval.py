"""Retrieval: vector, keyword, and hybrid search fused with Reciprocal Rank Fusion, by
relative scores, or adaptively (relative scores weighted by how sure each list is), and
optionally reranked. Results whose text is the same in several documents count once."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import TYPE_CHECKING

from ragline.errors import InvalidRequestError, ModelError

if TYPE_CHECKING:
    from ragline.embeddings import Embedder
    from ragline.filters import Filter
    from ragline.rerankers import Reranker
    from ragline.store import RetrievedChunk, Store
    from ragline.store.records import Selection

logger = logging.getLogger(__name__)

RRF_K = 60  # the constant of Cormack et al. (2009); damps the weight of the very top ranks
MODES = ("hybrid", "vector", "keyword")
FUSIONS = ("rrf", "relative", "adaptive")
# Adaptive fusion, calibrated on git's manual with MiniLM (bench/fusion_lists.py), then
# checked on the Python docs and the PDF manuals: how much a list's confidence moves its
# weight (0: plain relative fusion), and the place a confident list's best hit keeps.
CONFIDENCE_POWER = 1.0
KEEP_TOP_WITHIN = 2
KEEP_TOP_CONFIDENCE = 0.5
# How many results past top_k vector and keyword search read, so that near-duplicates
# collapsed into one leave their places to other results.
DUPLICATE_ROOM = 5


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


def confidence(scores: Sequence[float]) -> float:
    """How far a list's best score stands out, 0..1: the lead of the first over the mean
    of the others, as a share of the list's whole span. One clear winner over a flat field
    is near 1; a list declining evenly is about 0.5; a crowded top with a tail below, low."""
    if len(scores) < 2:
        return 1.0 if scores else 0.0
    best, low = max(scores), min(scores)
    if best <= low:
        return 0.0
    rest = sorted(scores, reverse=True)[1:]
    return (best - sum(rest) / len(rest)) / (best - low)


def adaptive_fusion(
    vector: Sequence[RetrievedChunk],
    keyword: Sequence[RetrievedChunk],
    *,
    vector_weight: float = 0.6,
    power: float = CONFIDENCE_POWER,
    keep_within: int = KEEP_TOP_WITHIN,
    keep_confidence: float = KEEP_TOP_CONFIDENCE,
    limit: int | None = None,
) -> list[RetrievedChunk]:
    """Relative score fusion whose weights follow each query's lists, not one constant.

    Each list's weight (``vector_weight`` and its complement) is scaled by the list's
    :func:`confidence` raised to ``power``: a keyword list whose top hit towers over the
    rest (a rare term matched) outweighs a vector list of near ties, and the reverse.
    Then what either list was sure of keeps a place: a list's first hit, when its
    confidence is at least ``keep_confidence``, is moved up to place ``keep_within`` if
    the fused order put it lower.
    """

    def sure(ranking: Sequence[RetrievedChunk], value: Callable[[RetrievedChunk], float]) -> float:
        return confidence([value(c) for c in ranking])

    by_vector = sure(vector, _vector_score)
    by_keyword = sure(keyword, lambda c: c.score)
    v, k = vector_weight * by_vector**power, (1 - vector_weight) * by_keyword**power
    weight = v / (v + k) if v + k > 0 else vector_weight
    fused = relative_score_fusion(vector, keyword, vector_weight=weight)
    if keep_within > 0:
        for ranking, sureness in ((vector, by_vector), (keyword, by_keyword)):
            if not ranking or sureness < keep_confidence:
                continue
            top = ranking[0].chunk_id
            place = next(i for i, c in enumerate(fused) if c.chunk_id == top)
            if place >= keep_within:
                fused.insert(keep_within - 1, fused.pop(place))
    return fused[:limit] if limit is not None else fused


def _vector_score(chunk: RetrievedChunk) -> float:
    return chunk.similarity if chunk.similarity is not None else chunk.score


_NORMAL = re.compile(r"[\W_]+")


def _normalized(text: str) -> str:
    return _NORMAL.sub(" ", text.lower()).strip()


def collapse_duplicates(chunks: Sequence[RetrievedChunk]) -> list[RetrievedChunk]:
    """Chunks whose text is the same once case, punctuation and spacing are set aside
    count once, at the place of the first; the sources of the others go to its
    ``also_in`` (each once, in order, never its own)."""
    kept: list[RetrievedChunk] = []
    places: dict[str, int] = {}
    for chunk in chunks:
        key = _normalized(chunk.text)
        if key not in places:
            places[key] = len(kept)
            kept.append(chunk)
            continue
        first = kept[places[key]]
        sources = (*first.also_in, *chunk.also_in, _cited_source(chunk))
        also = tuple(dict.fromkeys(s for s in sources if s != _cited_source(first)))
        kept[places[key]] = replace(first, also_in=also)
    return kept


def _cited_source(chunk: RetrievedChunk) -> str:
    page = chunk.match_page or chunk.page
    return chunk.source if page is None else f"{chunk.source}#page={page}"


def match_page(chunk: RetrievedChunk, query: str) -> int | None:
    """The page of ``chunk`` that holds its match to ``query``: of the pages a chunk
    printed on several pages spans, the one whose text holds the most of the query's
    content words (the extractive model's: stemmed, stopwords aside), the earliest of
    equals. A chunk on one page, or without pages, keeps its first page."""
    if not chunk.page_breaks or chunk.page is None:
        return chunk.page
    from ragline.llm.extractive import content_terms

    words = set(content_terms(query))
    if not words:
        return chunk.page
    cuts = [(0, chunk.page), *chunk.page_breaks, (len(chunk.text), -1)]
    best: tuple[float, int] = (0.0, 0)
    chosen = chunk.page
    for (start, page), (end, _) in pairwise(cuts):
        found = content_terms(chunk.text[start:end])
        score = (sum(found.get(w, 0.0) > 0 for w in words), -page)
        if score[0] > best[0]:
            best, chosen = score, page
    return chosen


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
        fusion: str = "adaptive",
        vector_weight: float | None = None,
        parallel: bool = True,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.reranker = reranker
        self.rerank_depth = rerank_depth
        self.fusion = fusion
        self.vector_weight = vector_weight  # None: the embedder's own, calibrated for it
        # Hybrid search's keyword half on a thread of its own (RAGLINE_HYBRID_PARALLEL),
        # started on first use and kept: its connection (the store's are per thread) is
        # reused from one search to the next, as the calling thread's is.
        self.parallel = parallel
        self._worker: ThreadPoolExecutor | None = None
        self._worker_lock = threading.Lock()

    def _keyword_later(
        self, collection: str, query: str, limit: int, selection: Selection | None
    ) -> Future[list[RetrievedChunk]]:
        """The keyword search, started on the retriever's worker thread."""
        with self._worker_lock:
            if self._worker is None:
                self._worker = ThreadPoolExecutor(1, thread_name_prefix="ragline-keyword")
        return self._worker.submit(
            self.store.keyword_search, collection, query, limit, selection=selection
        )

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
        # Deeper than top_k: the near-duplicates a list holds leave room for others.
        deeper = top_k + DUPLICATE_ROOM
        if mode == "keyword":
            found = self.store.keyword_search(collection, query, deeper, selection=selection)
            return Retrieval(_finished(query, found, top_k), 0)
        depth = max(20, top_k * 4)  # hybrid: each list this deep (>= deeper)
        pending = None
        if mode == "hybrid" and self.parallel:
            # The keyword half needs no query vector: it runs while the query is embedded
            # and the vector half runs, both waiting on the database (or the model) at once.
            pending = self._keyword_later(collection, query, depth, selection)
        try:
            return self._with_vector(
                query, collection, top_k, mode, ef_search, selection, deeper, depth, pending
            )
        finally:
            if pending is not None and not pending.done():
                pending.exception()  # a failed vector half waits for its keyword half

    def _with_vector(
        self,
        query: str,
        collection: str,
        top_k: int,
        mode: str,
        ef_search: int | None,
        selection: Selection | None,
        deeper: int,
        depth: int,
        pending: Future[list[RetrievedChunk]] | None,
    ) -> Retrieval:
        """Vector or hybrid search (``pending``: the hybrid's keyword half, under way)."""

        def by_keyword(limit: int) -> list[RetrievedChunk]:
            if pending is None:
                return self.store.keyword_search(collection, query, limit, selection=selection)
            # BM25's ranking is exact (score, then chunk id): its first ``limit`` of a
            # deeper ranking are the ranking of ``limit``.
            return pending.result()[:limit]

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
            found = by_keyword(deeper)
            return Retrieval(_finished(query, found, top_k), embedded.tokens)
        if mode == "vector":
            found = self.store.vector_search(
                collection, vector, deeper, ef_search=ef_search, selection=selection
            )
            return Retrieval(
                _finished(query, found, top_k),
                embedded.tokens,
                embedding_seconds=embedded.seconds,
            )
        by_vector = self.store.vector_search(
            collection, vector, depth, ef_search=ef_search, selection=selection
        )
        by_keyword_found = by_keyword(depth)
        weight = self.vector_weight
        if weight is None:
            weight = self.embedder.fusion_weight
        if self.fusion == "adaptive":
            fused = adaptive_fusion(by_vector, by_keyword_found, vector_weight=weight)
        elif self.fusion == "relative":
            fused = relative_score_fusion(by_vector, by_keyword_found, vector_weight=weight)
        else:
            fused = reciprocal_rank_fusion([by_vector, by_keyword_found])
        fused = _finished(query, fused, top_k)
        missing = [c.chunk_id for c in fused if c.similarity is None]
        if missing:
            known_similarity = self.store.similarities(missing, vector)
            fused = [
                c if c.similarity is not None
                else replace(c, similarity=known_similarity.get(c.chunk_id))
                for c in fused
            ]  # fmt: skip
        return Retrieval(fused, embedded.tokens, embedding_seconds=embedded.seconds)


def _finished(query: str, chunks: Sequence[RetrievedChunk], top_k: int) -> list[RetrievedChunk]:
    """A search's ``top_k``: each chunk citing the page that holds its match, and chunks
    of the same text counted once."""
    cited = [replace(c, match_page=match_page(c, query)) if c.page_breaks else c for c in chunks]
    return collapse_duplicates(cited)[:top_k]


def _rerank_text(chunk: RetrievedChunk) -> str:
    """A candidate as the reranker reads it: heading path, then text (as the model will)."""
    heading = " — ".join(part for part in (chunk.title, chunk.section) if part)
    return f"{heading}\n{chunk.text}" if heading else chunk.text
