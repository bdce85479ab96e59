"""Retrieval: vector, keyword, and hybrid search fused with Reciprocal Rank Fusion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ragline.errors import InvalidRequestError

if TYPE_CHECKING:
    from ragline.embeddings import Embedder
    from ragline.store import RetrievedChunk, Store

RRF_K = 60  # the constant of Cormack et al. (2009); damps the weight of the very top ranks
MODES = ("hybrid", "vector", "keyword")


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


@dataclass(frozen=True)
class Retrieval:
    chunks: list[RetrievedChunk]
    embedding_tokens: int


class Retriever:
    """Runs searches against one store with one embedder."""

    def __init__(self, store: Store, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder

    def search(
        self,
        query: str,
        *,
        collection: str,
        top_k: int,
        mode: str = "hybrid",
        ef_search: int | None = None,
    ) -> Retrieval:
        """The top chunks for ``query``; ``ef_search`` overrides RAGLINE_HNSW_EF_SEARCH."""
        if mode not in MODES:
            raise InvalidRequestError(f"mode must be one of {', '.join(MODES)}")
        known = self.store.collection_model(collection)
        if known is None:
            return Retrieval([], 0)  # nothing ingested into this collection yet
        if mode == "keyword":
            return Retrieval(self.store.keyword_search(collection, query, top_k), 0)
        # A query vector from another model would be silently meaningless: refuse instead.
        self.store.ensure_collection(collection, self.embedder.name, self.embedder.dimensions)
        embedded = self.embedder.embed_query(query)
        vector = embedded.vectors[0]
        if mode == "vector":
            return Retrieval(
                self.store.vector_search(collection, vector, top_k, ef_search=ef_search),
                embedded.tokens,
            )
        depth = max(20, top_k * 4)
        fused = reciprocal_rank_fusion(
            [
                self.store.vector_search(collection, vector, depth, ef_search=ef_search),
                self.store.keyword_search(collection, query, depth),
            ],
            limit=top_k,
        )
        missing = [c.chunk_id for c in fused if c.similarity is None]
        if missing:
            known_similarity = self.store.similarities(missing, vector)
            fused = [
                c if c.similarity is not None
                else replace(c, similarity=known_similarity.get(c.chunk_id))
                for c in fused
            ]  # fmt: skip
        return Retrieval(fused, embedded.tokens)
