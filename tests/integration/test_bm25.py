"""Keyword search is Okapi BM25 in PostgreSQL: the same ranking as a reference
implementation, and statistics that stay exact under concurrent writes and deletes."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ragline.config import Settings
from ragline.ingest import Ingestor
from ragline.store import ChunkWrite, DocumentWrite, Store
from rank_bm25 import BM25Okapi

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "docs"
K1, B = 1.2, 0.75


class LuceneBM25(BM25Okapi):
    """rank_bm25's Okapi BM25 with Lucene's IDF, ln(1 + (N - df + 0.5) / (df + 0.5)).

    BM25Okapi's own IDF goes negative for words in more than half the documents and is
    then floored at a fraction of the mean; ragline uses the IDF that never goes negative.
    """

    def _calc_idf(self, nd: dict[str, int]) -> None:
        for word, freq in nd.items():
            self.idf[word] = float(np.log(1 + (self.corpus_size - freq + 0.5) / (freq + 0.5)))


@pytest.fixture(scope="module")
def store(store_settings: Settings) -> Store:
    return Store(store_settings)


def tokens_of(store: Store, collection: str) -> dict[int, list[str]]:
    """Each chunk's tokens as PostgreSQL's English analyzer reads it (stemmed, no stop
    words): the reference ranks the same tokens, so only the ranking is compared."""
    rows = store.connection().execute(
        "SELECT c.id, u.lexeme, coalesce(array_length(u.positions, 1), 1)"
        " FROM chunks c, unnest(c.tsv) u WHERE c.collection = %s ORDER BY c.id, u.lexeme",
        (collection,),
    )
    tokens: dict[int, list[str]] = {}
    for chunk_id, lexeme, count in rows:
        tokens.setdefault(chunk_id, []).extend([lexeme] * count)
    ids = [row[0] for row in store.connection().execute(
        "SELECT id FROM chunks WHERE collection = %s", (collection,))]  # fmt: skip
    return {chunk_id: tokens.get(chunk_id, []) for chunk_id in ids}


def query_terms(store: Store, text: str) -> list[str]:
    rows = store.connection().execute(
        "SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', %s))", (text,)
    )
    return sorted(row[0] for row in rows)


def reference_top(
    corpus: dict[int, list[str]], terms: list[str], limit: int
) -> list[tuple[int, float]]:
    ids = sorted(corpus)
    scores = LuceneBM25([corpus[i] for i in ids], k1=K1, b=B).get_scores(terms)
    ranked = sorted(
        ((ids[n], float(s)) for n, s in enumerate(scores) if s > 0), key=lambda r: (-r[1], r[0])
    )
    return ranked[:limit]


def assert_same_ranking(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    assert [chunk_id for chunk_id, _ in got] == [chunk_id for chunk_id, _ in want]
    assert [score for _, score in got] == pytest.approx([score for _, score in want], rel=1e-9)


def test_the_handbook_ranks_as_the_reference_ranks_it(store: Store) -> None:
    # GIVEN the example handbook ingested (real prose, headings and lists)
    settings = Settings(
        database_url=store.settings.database_url, default_collection="handbook",
        chunk_tokens=64, chunk_overlap=8,
    )  # fmt: skip
    ingestor = Ingestor(settings, store, Ingestor.from_settings(settings).embedder)
    for path in sorted(EXAMPLES.iterdir()):
        ingestor.ingest_file(path)
    corpus = tokens_of(store, "handbook")
    assert len(corpus) >= 20
    questions = [
        "How many vacation days do employees get?",
        "Can I take a kayak out alone in bad weather?",
        "What is the refund policy for cancelled tours?",
        "safety equipment life jacket",
        "Who approves expenses for travel and meals?",
        "rental rental rental",  # a repeated word counts once
    ]
    for question in questions:
        # WHEN ragline ranks the chunks by BM25
        got = [(c.chunk_id, c.score) for c in store.keyword_search("handbook", question, 10)]
        # THEN it is the reference's top 10, scores included
        assert_same_ranking(got, reference_top(corpus, query_terms(store, question), 10))


def _zipf_corpus(rng: random.Random, documents: int) -> list[list[str]]:
    """Documents of chunks whose words follow a Zipf law, as words in prose do: a few
    words in most chunks, most words in few."""
    vocabulary = [f"w{n}" for n in range(400)]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    return [
        [
            " ".join(rng.choices(vocabulary, weights, k=rng.randint(3, 60)))
            for _ in range(rng.randint(1, 12))
        ]
        for _ in range(documents)
    ]


def _save(store: Store, collection: str, source: str, texts: list[str]) -> None:
    chunks = [ChunkWrite(n, "", text, len(text.split())) for n, text in enumerate(texts)]
    vectors = np.ones((len(chunks), 4), dtype=np.float32)
    store.save_document(
        DocumentWrite(collection, source), chunks, vectors, embedding_model="test:4"
    )


def test_pruned_search_is_exact_on_skewed_vocabularies(store: Store) -> None:
    # GIVEN 1,000-odd chunks whose common words sit in most of them
    rng = random.Random(7)
    store.ensure_collection("zipf", "test:4", 4)
    for n, texts in enumerate(_zipf_corpus(rng, 160)):
        _save(store, "zipf", f"s3://b/zipf/{n}.txt", texts)
    corpus = tokens_of(store, "zipf")
    assert len(corpus) > 600
    # WHEN queries mixing common and rare words ask for 1 to 50 chunks
    for _ in range(60):
        words = [*rng.sample([f"w{n}" for n in range(400)], rng.randint(1, 8)), "w0", "w1"]
        question, limit = " ".join(words), rng.choice([1, 2, 5, 10, 20, 50])
        got = [(c.chunk_id, c.score) for c in store.keyword_search("zipf", question, limit)]
        # THEN every answer is the exhaustive ranking's top, whatever was pruned
        assert_same_ranking(got, reference_top(corpus, query_terms(store, question), limit))


def test_exact_copies_tie_and_rank_in_chunk_order(store: Store) -> None:
    # GIVEN documents each stored five times over, as a bucket of copies would hold
    # them: every chunk has four exact twins, and every top is full of ties
    rng = random.Random(11)
    store.ensure_collection("copies", "test:4", 4)
    originals = _zipf_corpus(rng, 60)
    for copy in range(5):
        for n, texts in enumerate(originals):
            _save(store, "copies", f"s3://b/copies/{copy}/{n}.txt", texts)
    corpus = tokens_of(store, "copies")
    # WHEN queries mixing common and rare words ask for 1 to 80 chunks
    for _ in range(40):
        words = [*rng.sample([f"w{n}" for n in range(400)], rng.randint(1, 8)), "w0", "w2"]
        question, limit = " ".join(words), rng.choice([1, 3, 5, 10, 20, 80])
        got = [(c.chunk_id, c.score) for c in store.keyword_search("copies", question, limit)]
        # THEN twins score the same and come in the order of their ids, as exhaustive
        # scoring ranks them
        assert_same_ranking(got, reference_top(corpus, query_terms(store, question), limit))


def _drift(store: Store) -> dict[str, list[Any]]:
    """Differences between the BM25 statistics and a recount from the chunks themselves."""
    conn = store.connection()
    checks = {
        "postings": "(SELECT collection, lexeme, chunk_id, tf, length FROM bm25_postings)"
        " EXCEPT ALL (SELECT c.collection, u.lexeme, c.id,"
        " coalesce(array_length(u.positions, 1), 1), bm25_length(c.tsv)"
        " FROM chunks c, unnest(c.tsv) u)",
        "missing postings": "(SELECT c.collection, u.lexeme, c.id FROM chunks c, unnest(c.tsv) u)"
        " EXCEPT ALL (SELECT collection, lexeme, chunk_id FROM bm25_postings)",
        "terms": "(SELECT collection, lexeme, df FROM bm25_terms)"
        " EXCEPT ALL (SELECT c.collection, u.lexeme, count(*)::int"
        " FROM chunks c, unnest(c.tsv) u GROUP BY 1, 2)",
        "missing terms": "(SELECT c.collection, u.lexeme FROM chunks c, unnest(c.tsv) u"
        " GROUP BY 1, 2) EXCEPT ALL (SELECT collection, lexeme FROM bm25_terms)",
        "collections": "(SELECT collection, chunks, tokens FROM bm25_collections"
        " WHERE chunks > 0) EXCEPT ALL (SELECT collection, count(*), sum(bm25_length(tsv))"
        " FROM chunks GROUP BY collection)",
    }
    return {name: conn.execute(query).fetchall() for name, query in checks.items()}


def test_statistics_stay_exact_under_concurrent_writes_and_deletes(store: Store) -> None:
    # GIVEN four writers on one collection, sharing most words and some documents
    store.ensure_collection("busy", "test:4", 4)
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        worker = Store(store.settings)  # its own connection, as another Lambda has
        try:
            for step in range(40):
                source = f"s3://b/busy/{rng.randint(0, 9)}.txt"
                if rng.random() < 0.3:
                    worker.delete_by_source(source)
                else:  # a new document or a new version of one, replacing its chunks
                    _save(worker, "busy", source, _zipf_corpus(rng, 1)[0] + [f"step{step}"])
        except BaseException as exc:  # a deadlock or a lost update would land here
            errors.append(exc)
        finally:
            worker.database.close()

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(4)]
    # WHEN they all write, replace and delete at once
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN none failed, and every statistic equals a recount from the chunks
    assert errors == []
    assert store.connection().execute(
        "SELECT count(*) FROM chunks WHERE collection = 'busy'"
    ).fetchone() != (0,)
    assert _drift(store) == {name: [] for name in _drift(store)}


def test_a_deleted_collection_leaves_no_statistics(store: Store) -> None:
    # GIVEN a collection with chunks
    store.ensure_collection("gone", "test:4", 4)
    _save(store, "gone", "s3://b/gone/a.txt", ["kayak paddle", "paddle"])
    # WHEN its documents are deleted
    store.delete_by_source("s3://b/gone/a.txt")
    # THEN its terms are gone, its totals are zero, and keyword search finds nothing
    conn = store.connection()
    assert conn.execute("SELECT count(*) FROM bm25_terms WHERE collection = 'gone'").fetchone() == (
        0,
    )
    assert conn.execute(
        "SELECT chunks, tokens FROM bm25_collections WHERE collection = 'gone'"
    ).fetchone() == (0, 0)
    assert store.keyword_search("gone", "paddle", 5) == []
