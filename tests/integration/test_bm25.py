"""Keyword search is Okapi BM25 in PostgreSQL: the same ranking as a reference
implementation, and statistics that stay exact under concurrent writes and deletes."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from ragline.config import Settings
from ragline.ingest import Ingestor
from ragline.store import ChunkWrite, DocumentWrite, Selection, Store, bm25
from ragline.store import search as store_search
from rank_bm25 import BM25Okapi

from tests.support.databases import create_database

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
    return drift_of(store.connection())


def drift_of(conn: Any) -> dict[str, list[Any]]:
    """``_drift`` on a connection, with the blocks' own rules: each holds 1 to 128
    postings, ids ascending, none past its key, and a term's blocks cover disjoint ranges
    (each block's first id past the previous block's key); no block of a deleted term."""
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
        "blocks": "SELECT k.term, k.last_id FROM bm25_blocks k,"
        " LATERAL (SELECT ARRAY(SELECT p.id FROM bm25_unpack(k.postings) p) AS ids) a"
        " WHERE octet_length(k.postings) % 14 <> 0"
        " OR cardinality(a.ids) NOT BETWEEN 1 AND 128"
        " OR a.ids[cardinality(a.ids)] > k.last_id"
        " OR a.ids <> ARRAY(SELECT DISTINCT i FROM unnest(a.ids) i ORDER BY i)"
        " OR a.ids[1] <= coalesce((SELECT max(e.last_id) FROM bm25_blocks e"
        " WHERE e.term = k.term AND e.last_id < k.last_id), 0)"
        " OR NOT EXISTS (SELECT 1 FROM bm25_terms t WHERE t.id = k.term)",
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


def _insert(conn: Any, collection: str, document: Any, rows: list[tuple[int, str]]) -> None:
    """Chunks with the ids given, in one statement (as a writer that took its ids before
    another writer committed later ones would land them); each id's low 31 bits are its
    ordinal."""
    conn.execute(
        "INSERT INTO chunks (id, document_id, collection, ordinal, text, token_count,"
        " dimensions, embedding) OVERRIDING SYSTEM VALUE"
        " SELECT r.id, %s, %s, r.id %% 2147483648, r.text, 1, 4, '[1,1,1,1]'"
        " FROM unnest(%s::bigint[], %s::text[]) AS r(id, text)",
        (document, collection, [i for i, _ in rows], [t for _, t in rows]),
    )


def test_postings_landing_inside_earlier_blocks_keep_them_exact(store: Store) -> None:
    # GIVEN 400 chunks with even ids, all holding "shared" (four blocks of its postings)
    rng = random.Random(3)
    store.ensure_collection("ranges", "test:4", 4)
    _save(store, "ranges", "s3://b/ranges/doc.txt", ["seed"])
    conn = store.connection()
    found = conn.execute(
        "SELECT id FROM documents WHERE source = 's3://b/ranges/doc.txt'"
    ).fetchone()
    assert found is not None
    document = found[0]
    base = 10_000_000
    words = [f"w{n}" for n in range(60)]

    def text() -> str:
        return " ".join(["shared", *rng.choices(words, k=rng.randint(2, 12))])

    _insert(conn, "ranges", document, [(base + 2 * n, text()) for n in range(400)])
    # WHEN the odd ids in between arrive later (every block's range gains postings, past
    # 128), then ids below them all, then some go and some are rewritten
    _insert(conn, "ranges", document, [(base + 2 * n + 1, text()) for n in range(0, 400, 3)])
    _insert(conn, "ranges", document, [(base - n, text()) for n in range(1, 150)])
    conn.execute(
        "DELETE FROM chunks WHERE collection = 'ranges' AND id %% 7 = 0 AND id > %s", (base,)
    )
    conn.execute(
        "UPDATE chunks SET text = text || ' w1 rewritten' WHERE collection = 'ranges'"
        " AND id %% %s = 0",
        (5,),
    )
    # THEN every posting is where the blocks' rules put it, and counts match the chunks
    assert drift_of(conn) == {name: [] for name in drift_of(conn)}
    blocks = conn.execute(
        "SELECT count(*) FROM bm25_blocks k JOIN bm25_terms t ON t.id = k.term"
        " WHERE t.collection = 'ranges' AND t.lexeme = 'share'"
    ).fetchone()
    assert blocks is not None and blocks[0] >= 5
    # AND the ranking is still the exhaustive one
    corpus = tokens_of(store, "ranges")
    for question in ["shared w1", "w3 w7 rewritten", "w59 shared w0", "seed"]:
        got = [(c.chunk_id, c.score) for c in store.keyword_search("ranges", question, 20)]
        assert_same_ranking(got, reference_top(corpus, query_terms(store, question), 20))


def test_postings_written_before_the_blocks_move_into_them(
    postgres_server: str,
) -> None:
    # GIVEN a database at migration 0009, with postings one row each
    from ragline.store.migrate import apply_migrations, available_migrations

    url = create_database(postgres_server, "bm25_blocks_upgrade")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, name, text in available_migrations():
            if version <= 9:
                conn.execute(text.encode())
                conn.execute("INSERT INTO schema_migrations VALUES (%s, %s)", (version, name))
        conn.execute("INSERT INTO collections (name, embedding_model, dimensions)"
                     " VALUES ('old', 'test:4', 4)")  # fmt: skip
        conn.execute("INSERT INTO documents (collection, source, status)"
                     " VALUES ('old', 's3://b/old.txt', 'ingested')")  # fmt: skip
        rng = random.Random(5)
        texts = [text for document in _zipf_corpus(rng, 40) for text in document]
        conn.execute(
            "INSERT INTO chunks (document_id, collection, ordinal, text, token_count,"
            " dimensions, embedding) SELECT d.id, 'old', r.n, r.text, 1, 4, '[1,1,1,1]'"
            " FROM documents d, unnest(%s::text[]) WITH ORDINALITY AS r(text, n)",
            (texts,),
        )
        questions = ["w0 w17 w230", "w3", "w1 w2 w5 w8 w13 w21 w34"]
        before = [
            conn.execute("SELECT * FROM bm25_search('old', %s, 10)", (q,)).fetchall()
            for q in questions
        ]
        # WHEN the remaining migrations are applied
        assert 10 in apply_migrations(conn)
        # THEN the postings are in blocks, exact, and every ranking is unchanged
        assert drift_of(conn) == {name: [] for name in drift_of(conn)}
        assert conn.execute("SELECT count(*) FROM bm25_blocks").fetchone() != (0,)
        after = [
            conn.execute("SELECT * FROM bm25_search('old', %s, 10)", (q,)).fetchall()
            for q in questions
        ]
        assert after == before and all(before)


def test_blocks_packed_by_0012_keep_every_posting_and_ranking(postgres_server: str) -> None:
    # GIVEN a database at migration 0011 whose blocks were cut and emptied by its trigger:
    # chunks in id order, ids landing inside earlier ranges, deletes and rewrites
    from ragline.store.migrate import apply_migrations, available_migrations

    url = create_database(postgres_server, "bm25_packed_upgrade")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, name, text in available_migrations():
            if version <= 11:
                conn.execute(text.encode())
                conn.execute("INSERT INTO schema_migrations VALUES (%s, %s)", (version, name))
        conn.execute("INSERT INTO collections (name, embedding_model, dimensions)"
                     " VALUES ('old', 'test:4', 4)")  # fmt: skip
        found = conn.execute(
            "INSERT INTO documents (collection, source, status)"
            " VALUES ('old', 's3://b/old.txt', 'ingested') RETURNING id"
        ).fetchone()
        assert found is not None
        rng = random.Random(12)
        texts = iter(text for document in _zipf_corpus(rng, 200) for text in document)
        _insert(conn, "old", found[0], [(2 * n + 2, next(texts)) for n in range(500)])
        _insert(conn, "old", found[0], [(2 * n + 1, next(texts)) for n in range(0, 500, 4)])
        conn.execute("DELETE FROM chunks WHERE id % 9 = 0 OR id BETWEEN 300 AND 420")
        conn.execute("UPDATE chunks SET text = text || ' w399 w1' WHERE id % 11 = 0")
        postings = "SELECT * FROM bm25_postings ORDER BY collection, lexeme, chunk_id"
        before_postings = conn.execute(postings).fetchall()
        questions = ["w0 w17 w230", "w3", "w1 w2 w5 w8 w13 w21 w34", "w0 w1 w2 w399", "w250"]
        searches = [
            ("SELECT * FROM bm25_search('old', %s, %s)", (q, limit))
            for q in questions
            for limit in (1, 10, 100)
        ] + [
            ("SELECT * FROM bm25_search_among('old', %s, 10, %s)", (q, list(range(1, 999, 3))))
            for q in questions
        ]
        before = [conn.execute(query, args).fetchall() for query, args in searches]
        # WHEN migration 0012 packs the blocks
        assert apply_migrations(conn) == [12]
        # THEN every posting is the one it was, the blocks keep their rules, and every
        # ranking has the same chunks with the same scores, to the bit
        assert conn.execute(postings).fetchall() == before_postings
        assert drift_of(conn) == {name: [] for name in drift_of(conn)}
        after = [conn.execute(query, args).fetchall() for query, args in searches]
        assert after == before and all(before)
        assert conn.execute("SELECT to_regclass('bm25_blocks_packed')").fetchone() == (None,)
        # AND run again (by hand, before a deploy), it leaves the packed blocks as they are
        conn.execute(next(t for v, _, t in available_migrations() if v == 12).encode())
        assert conn.execute(postings).fetchall() == before_postings


def test_a_block_emptied_by_deletes_goes(store: Store) -> None:
    # GIVEN a word in 384 chunks: three full blocks of its postings
    store.ensure_collection("emptied", "test:4", 4)
    _save(store, "emptied", "s3://b/emptied/doc.txt", ["seed"])
    conn = store.connection()
    found = conn.execute(
        "SELECT id FROM documents WHERE source = 's3://b/emptied/doc.txt'"
    ).fetchone()
    assert found is not None
    base = 20_000_000
    _insert(conn, "emptied", found[0], [(base + n, f"lantern w{n % 7}") for n in range(384)])
    blocks = (
        "SELECT k.last_id, octet_length(k.postings) / 14 FROM bm25_blocks k"
        " JOIN bm25_terms t ON t.id = k.term"
        " WHERE t.collection = 'emptied' AND t.lexeme = 'lantern' ORDER BY k.last_id"
    )
    assert conn.execute(blocks).fetchall() == [
        (base + 127, 128),
        (base + 255, 128),
        (base + 383, 128),
    ]
    # WHEN every chunk of the middle block goes, and one of the last
    conn.execute(
        "DELETE FROM chunks WHERE id BETWEEN %s AND %s OR id = %s",
        (base + 128, base + 255, base + 300),
    )
    # THEN the middle block is gone, the last lost one posting, and all is exact
    assert conn.execute(blocks).fetchall() == [(base + 127, 128), (base + 383, 127)]
    assert drift_of(conn) == {name: [] for name in drift_of(conn)}
    corpus = tokens_of(store, "emptied")
    for question in ["lantern w3", "w6", "w2 w5"]:
        got = [(c.chunk_id, c.score) for c in store.keyword_search("emptied", question, 20)]
        assert_same_ranking(got, reference_top(corpus, query_terms(store, question), 20))


def test_a_chunk_id_spelled_across_another_posting_is_found(store: Store) -> None:
    # GIVEN two chunks holding "kayak", the second's id spelled, in a block's bytes,
    # by the first's posting off a record's start: the first's id ends 00 01, its tf is
    # 1 (00 01) and its length 5 (00 00 00 05), and the second's id is 0x0001000100000005
    store.ensure_collection("spelled", "test:4", 4)
    _save(store, "spelled", "s3://b/spelled/doc.txt", ["seed"])
    conn = store.connection()
    found = conn.execute(
        "SELECT id FROM documents WHERE source = 's3://b/spelled/doc.txt'"
    ).fetchone()
    assert found is not None
    first, second = 2**48 + 1, 2**48 + 2**32 + 5
    _insert(
        conn,
        "spelled",
        found[0],
        [(first, "kayak canoe river otter heron"), (second, "kayak lake")],
    )
    at = (
        "SELECT position(int8send(%s) IN k.postings) FROM bm25_blocks k"
        " JOIN bm25_terms t ON t.id = k.term WHERE t.collection = 'spelled' AND t.lexeme = %s"
    )
    assert conn.execute(at, (second, "kayak")).fetchone() == (7,)  # inside the first record
    assert conn.execute(at, (second, "cano")).fetchone() == (7,)
    # WHEN each is looked up in those blocks, by bm25_score (a filtered search) and the
    # client scorer
    among = "SELECT * FROM bm25_search_among('spelled', %s, 10, %s)"
    kayak = conn.execute(among, ("kayak", [second])).fetchall()
    canoe = conn.execute(among, ("canoe", [second])).fetchall()
    # THEN the second is found where it holds the word, and not where it does not
    corpus = tokens_of(store, "spelled")
    assert_same_ranking(kayak, [r for r in reference_top(corpus, ["kayak"], 10) if r[0] == second])
    assert kayak and canoe == []
    for question in ["kayak", "canoe lake", "kayak heron"]:
        got = [(c.chunk_id, c.score) for c in store.keyword_search("spelled", question, 5)]
        assert_same_ranking(got, reference_top(corpus, query_terms(store, question), 5))


PYTHON_DOCS = Path(__file__).resolve().parents[2].parent / "shared" / "corpora" / "python-docs"


# The query's term ids and IDFs, commonest first, as bm25_search takes them, and the
# collection's average length (in SQL: the Data API driver passes no arrays).
QUERY_TERMS = (
    "WITH q AS (SELECT array_agg(t.id ORDER BY t.df DESC, t.lexeme) AS terms,"
    " array_agg(ln(1 + (s.chunks - t.df + 0.5) / (t.df + 0.5)) ORDER BY t.df DESC, t.lexeme)"
    " AS idfs, s.tokens::double precision / s.chunks AS avg_length"
    " FROM bm25_terms t JOIN bm25_collections s USING (collection)"
    " WHERE t.collection = %(c)s AND t.df > 0"
    " AND t.lexeme IN (SELECT lexeme FROM unnest(to_tsvector('english', %(t)s)))"
    " GROUP BY s.chunks, s.tokens) "
)


def test_pruned_search_is_exhaustive_scorings_top_on_real_docs(store: Store) -> None:
    # GIVEN 2,000-odd chunks of the Python documentation (code identifiers, prose, tables)
    if not PYTHON_DOCS.is_dir():
        pytest.skip("the shared python-docs corpus is not on this machine")
    rng = random.Random(23)
    store.ensure_collection("pydocs", "test:4", 4)
    passages: list[str] = []
    for path in sorted((PYTHON_DOCS / "library").glob("*.rst.txt"))[:60]:
        words = path.read_text(errors="replace").split()
        texts = [" ".join(words[n : n + 50]) for n in range(0, len(words), 50)]
        _save(store, "pydocs", f"s3://b/pydocs/{path.name}", texts)
        passages.extend(texts)
    corpus = tokens_of(store, "pydocs")
    assert len(corpus) > 2000
    # WHEN long strings of words lifted from passages (8-14 of them, identifiers included)
    # are ranked by bm25_search, and every chunk holding one of their terms is scored
    conn = store.connection()
    for _ in range(60):
        words = rng.choice(passages).split()
        start = rng.randrange(max(len(words) - 14, 1))
        question, limit = " ".join(words[start : start + rng.randint(8, 14)]), rng.choice([5, 10])
        asked = {"c": "pydocs", "t": question}
        everything = conn.execute(
            QUERY_TERMS + "SELECT e.chunk_id, e.score FROM q,"
            f" bm25_score_all(q.terms, q.idfs, q.avg_length, {K1}, {B}) e"
            " ORDER BY 2 DESC, 1",
            asked,
        ).fetchall()
        top = [(chunk_id, score) for chunk_id, score in everything[:limit]]
        got = [(c.chunk_id, c.score) for c in store.keyword_search("pydocs", question, limit)]
        # THEN the pruned search's top-k is the exhaustive one, and the reference's
        assert_same_ranking(got, top)
        assert_same_ranking(got, reference_top(corpus, query_terms(store, question), limit))
        # AND so is each scorer's, bm25_search in SQL and (psycopg) the client's, whose
        # scores are bm25_search's to the bit
        ranked = {
            scorer: [(c.chunk_id, c.score) for c in store_search.keyword_search(
                conn, "pydocs", question, limit, scorer=scorer)]
            for scorer in scorers(store)
        }  # fmt: skip
        for scorer in ranked.values():
            assert_same_ranking(scorer, top)
        if "client" in ranked:
            assert ranked["client"] == ranked["sql"]
            # (reading the commonest terms' blocks on demand, as at a million chunks)
            postings = bm25.fetch(conn, "pydocs", question, whole_max_df=50)  # type: ignore[arg-type]
            assert postings is not None
            ids, scores = bm25.rank(postings, limit)
            assert list(zip(ids.tolist(), scores.tolist(), strict=True)) == ranked["client"]


def scorers(store: Store) -> list[str]:
    """The BM25 scorers a store's driver offers: the client's needs psycopg."""
    return ["sql", "client"] if store.settings.database_driver == "psycopg" else ["sql"]


@pytest.mark.parametrize("store_settings", ["psycopg"], indirect=True)  # binary results
def test_the_client_scorer_ranks_as_bm25_search_at_the_edges(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the example handbook and a skewed vocabulary in one collection (psycopg: the
    # client scorer reads binary results), one document of it then deleted
    settings = Settings(
        database_url=store.settings.database_url, default_collection="edges",
        chunk_tokens=64, chunk_overlap=8,
    )  # fmt: skip
    ingestor = Ingestor(settings, store, Ingestor.from_settings(settings).embedder)
    for path in sorted(EXAMPLES.iterdir()):
        ingestor.ingest_file(path)
    dimensions = ingestor.embedder.dimensions
    rng = random.Random(5)
    vectors = np.ones((1, dimensions), dtype=np.float32)
    for n, texts in enumerate(_zipf_corpus(rng, 40)):
        chunks = [ChunkWrite(i, "", t, len(t.split())) for i, t in enumerate(texts)]
        store.save_document(DocumentWrite("edges", f"s3://b/edges/{n}.txt"), chunks,
                            np.repeat(vectors, len(chunks), axis=0),
                            embedding_model=ingestor.embedder.name)  # fmt: skip
    conn = store.connection()
    gone = {row[0] for row in conn.execute(
        "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id"
        " WHERE d.source = 's3://b/edges/0.txt'")}  # fmt: skip
    assert gone and store.delete_by_source("s3://b/edges/0.txt") is not None

    def both(question: str, limit: int, **kw: Any) -> dict[str, list[tuple[int, float]]]:
        return {
            scorer: [(c.chunk_id, c.score) for c in store_search.keyword_search(
                conn, "edges", question, limit, scorer=scorer, **kw)]
            for scorer in ("sql", "client")
        }  # fmt: skip

    # WHEN each scorer ranks empty, unknown, one-word, stop-word-only, repeated and
    # mixed questions, for 1 to more chunks than match
    questions = ["", "   ", "zzyzx qwxv", "the of and", "w0", "w399", "kayak",
                 "rental rental", "w0 w1 w2 w3 w5 w8 w13", "life jacket safety w0 w1",
                 "refund w7 zzyzx"]  # fmt: skip
    for whole_max_df in (bm25.WHOLE_MAX_DF, 40, 0):  # the common terms' blocks on demand
        monkeypatch.setattr(bm25, "WHOLE_MAX_DF", whole_max_df)
        for question in questions:
            for limit in (1, 3, 10, 5000):
                ranked = both(question, limit)
                # THEN they agree: the same chunks in the same order, the same scores
                assert ranked["client"] == ranked["sql"], (question, limit, whole_max_df)
    assert both("", 10)["client"] == [] and both("zzyzx", 10)["client"] == []
    many = both("w0", 5000)["client"]
    assert len(many) > 100  # more than a block of postings, fewer than the limit
    assert len(both("w0 kayak", 0)["client"]) == 0
    # AND the deleted document's chunks are in neither
    assert not gone & {chunk_id for chunk_id, _ in many}
    # AND among a selection of documents, scored whole or read deeper, they agree too
    documents = [row[0] for row in conn.execute(
        "SELECT id FROM documents WHERE collection = 'edges' ORDER BY source LIMIT 12"
    )]  # fmt: skip
    chunks, total = conn.execute(
        "SELECT count(*) FILTER (WHERE document_id = ANY(%s)), count(*) FROM chunks"
        " WHERE collection = 'edges'",
        (documents,),
    ).fetchall()[0]
    selection = Selection(chunks, documents, total, total)
    for whole_max_df in (bm25.WHOLE_MAX_DF, 0):
        monkeypatch.setattr(bm25, "WHOLE_MAX_DF", whole_max_df)
        for question in ("w0 w1 w4", "w3 vacation days", "zzyzx", "w2"):
            for exact_max_chunks in (0, 100_000):
                kw = {"selection": selection, "exact_max_chunks": exact_max_chunks}
                ranked = both(question, 10, **kw)
                assert ranked["client"] == ranked["sql"], (question, exact_max_chunks)


@pytest.mark.parametrize("store_settings", ["psycopg"], indirect=True)  # binary results
def test_the_client_scorer_reads_one_snapshot_while_chunks_are_written(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a collection whose terms' blocks are all read on demand (psycopg), and a
    # writer that adds documents holding the query's words between the client scorer's
    # first statement and its block reads
    rng = random.Random(17)
    store.ensure_collection("snapshot", "test:4", 4)
    for n, texts in enumerate(_zipf_corpus(rng, 30)):
        _save(store, "snapshot", f"s3://b/snapshot/{n}.txt", texts)
    question = "w0 w1 w3 w9 w27"
    conn = store.connection()
    before = [(c.chunk_id, c.score) for c in store_search.keyword_search(
        conn, "snapshot", question, 10, scorer="sql")]  # fmt: skip
    monkeypatch.setattr(bm25, "WHOLE_MAX_DF", 0)
    writer = Store(store.settings)
    reads = bm25.Postings._rows
    written: list[int] = []

    def write_then_read(self: bm25.Postings, query: str, params: Any) -> Any:
        if not written:  # before the first read of blocks
            texts = [" ".join(["w0 w1 w3 w9 w27"] * 3)] * 40
            _save(writer, "snapshot", "s3://b/snapshot/late.txt", texts)
            written.append(1)
        return reads(self, query, params)

    monkeypatch.setattr(bm25.Postings, "_rows", write_then_read)
    # WHEN the client scorer ranks the question
    got = [(c.chunk_id, c.score) for c in store_search.keyword_search(
        conn, "snapshot", question, 10, scorer="client")]  # fmt: skip
    writer.database.close()
    # THEN it ranked the collection as it was when it began, as bm25_search did then
    assert written
    assert got == before
    # AND afterwards, the new chunks rank (and the connection is back to its defaults)
    monkeypatch.setattr(bm25.Postings, "_rows", reads)
    after = [(c.chunk_id, c.score) for c in store_search.keyword_search(
        conn, "snapshot", question, 10, scorer="client")]  # fmt: skip
    assert after != before
    assert after == [(c.chunk_id, c.score) for c in store_search.keyword_search(
        conn, "snapshot", question, 10, scorer="sql")]  # fmt: skip
    assert (conn.isolation_level, conn.read_only) == (None, None)  # type: ignore[union-attr]
