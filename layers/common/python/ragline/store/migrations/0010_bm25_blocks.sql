-- BM25 postings in blocks: a term's postings as arrays of up to 128, not a row each.
--
-- bm25_postings (0003) held a row per (lexeme, chunk) with its index entry: 5.0 KB per
-- chunk at 5k-200k chunks of the scale corpus, more than the chunks table itself, and
-- writing them was most of a bulk load's time. Here a term (bm25_terms, which gains an
-- id) keeps its postings in blocks: the chunk ids ascending, with each chunk's term
-- frequency and length, up to 128 to a block. The blocks of a term cover disjoint ranges
-- of chunk ids, and a block is keyed by the last id of its range, so the block that holds
-- a chunk's posting, if any, is the term's first block ending at or after the chunk's id.
--
-- The triggers keep the blocks exact in the statement that writes or deletes chunks, as
-- they kept the rows: new postings go into the block whose range they fall in, and past
-- the last block into the last block while it has room, then into new blocks; a block
-- that gains postings is cut again into blocks of 128 within its own range. Chunk ids
-- grow, so new postings almost always land past the last block; a writer that committed
-- after a later one lands inside a range, which stays correct.
--
-- Scoring is the same Okapi BM25, each term's share from 0006's bm25_term (a one-line SQL
-- function the planner inlines: no call per posting), over arrays read from the blocks.
-- bm25_postings stays as a view, for reading the postings one by one (tests, checks).

ALTER TABLE bm25_terms ADD COLUMN IF NOT EXISTS id bigint GENERATED ALWAYS AS IDENTITY;

CREATE TABLE IF NOT EXISTS bm25_blocks (
    term     bigint NOT NULL,    -- bm25_terms.id
    last_id  bigint NOT NULL,    -- the last chunk id of the block's range (>= every id it holds)
    ids      bigint[] NOT NULL,  -- ascending
    tfs      smallint[] NOT NULL,  -- a tsvector keeps at most 256 positions of a lexeme
    lengths  integer[] NOT NULL,
    PRIMARY KEY (term, last_id)
);

INSERT INTO bm25_blocks (term, last_id, ids, tfs, lengths)
SELECT s.term, max(s.chunk_id), array_agg(s.chunk_id ORDER BY s.chunk_id),
       array_agg(s.tf ORDER BY s.chunk_id), array_agg(s.length ORDER BY s.chunk_id)
FROM (
    SELECT t.id AS term, p.chunk_id, p.tf::smallint AS tf, p.length,
           (row_number() OVER (PARTITION BY t.id ORDER BY p.chunk_id) - 1) / 128 AS piece
    FROM bm25_postings p JOIN bm25_terms t USING (collection, lexeme)
) s
GROUP BY s.term, s.piece;

DROP TABLE bm25_postings;

CREATE VIEW bm25_postings AS
SELECT t.collection, t.lexeme, p.chunk_id, p.tf::integer AS tf, p.length
FROM bm25_terms t
JOIN bm25_blocks k ON k.term = t.id
CROSS JOIN LATERAL unnest(k.ids, k.tfs, k.lengths) AS p(chunk_id, tf, length);

CREATE OR REPLACE FUNCTION bm25_chunks_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Collection totals first, in collection order: the row lock serialises concurrent
    -- writers of one collection here, before either touches a term or a block, so their
    -- updates can never deadlock. A term's id is read once per term and statement, by its
    -- primary key (OFFSET 0 keeps the probe a probe: joined, the planner may read every
    -- term of the store into a hash), one statement after the terms were written.
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE bm25_collections s SET chunks = s.chunks - o.chunks, tokens = s.tokens - o.tokens
        FROM (SELECT collection, count(*) AS chunks, sum(bm25_length(tsv)) AS tokens
              FROM old_chunks GROUP BY collection) o
        WHERE s.collection = o.collection;
        -- Each removed posting taken out of its block (a block left empty goes).
        WITH gone AS MATERIALIZED (
            SELECT t.id AS term, g.ids
            FROM (SELECT o.collection, u.lexeme, array_agg(o.id) AS ids
                  FROM old_chunks o, unnest(o.tsv) u GROUP BY 1, 2) g
            CROSS JOIN LATERAL (
                SELECT t.id FROM bm25_terms t
                WHERE t.collection = g.collection AND t.lexeme = g.lexeme OFFSET 0
            ) t
        ), located AS (
            SELECT g.term, k.last_id, array_agg(x.id) AS gone
            FROM gone g
            CROSS JOIN LATERAL unnest(g.ids) AS x(id)
            CROSS JOIN LATERAL (
                SELECT e.last_id FROM bm25_blocks e
                WHERE e.term = g.term AND e.last_id >= x.id ORDER BY e.last_id LIMIT 1
            ) k
            GROUP BY 1, 2
        ), kept AS (
            SELECT l.term, l.last_id, r.ids, r.tfs, r.lengths
            FROM located l
            JOIN bm25_blocks e ON e.term = l.term AND e.last_id = l.last_id
            CROSS JOIN LATERAL (
                SELECT array_agg(p.id ORDER BY p.id) AS ids, array_agg(p.tf ORDER BY p.id) AS tfs,
                       array_agg(p.length ORDER BY p.id) AS lengths
                FROM unnest(e.ids, e.tfs, e.lengths) AS p(id, tf, length)
                WHERE p.id <> ALL (l.gone)
            ) r
        ), emptied AS (
            DELETE FROM bm25_blocks e USING kept k
            WHERE e.term = k.term AND e.last_id = k.last_id AND k.ids IS NULL
        )
        UPDATE bm25_blocks e SET ids = k.ids, tfs = k.tfs, lengths = k.lengths
        FROM kept k
        WHERE e.term = k.term AND e.last_id = k.last_id AND k.ids IS NOT NULL;
        UPDATE bm25_terms t SET df = t.df - d.df
        FROM (SELECT o.collection, u.lexeme, count(*) AS df
              FROM old_chunks o, unnest(o.tsv) u GROUP BY 1, 2) d
        WHERE t.collection = d.collection AND t.lexeme = d.lexeme;
        DELETE FROM bm25_terms t
        USING (SELECT DISTINCT o.collection, u.lexeme FROM old_chunks o, unnest(o.tsv) u) d
        WHERE t.collection = d.collection AND t.lexeme = d.lexeme AND t.df <= 0;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO bm25_collections AS s (collection, chunks, tokens)
        SELECT collection, count(*), sum(bm25_length(tsv)) FROM new_chunks
        GROUP BY collection ORDER BY collection
        ON CONFLICT (collection) DO UPDATE
        SET chunks = s.chunks + EXCLUDED.chunks, tokens = s.tokens + EXCLUDED.tokens;
        INSERT INTO bm25_terms AS t (collection, lexeme, df)
        SELECT n.collection, u.lexeme, count(*) FROM new_chunks n, unnest(n.tsv) u
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (collection, lexeme) DO UPDATE SET df = t.df + EXCLUDED.df;
        -- Per term: its new postings (ids ascending) and its last block. Postings past the
        -- last block that fit in it are appended to its arrays; the others are placed.
        WITH chunks AS MATERIALIZED (  -- each chunk's length, once
            SELECT id, collection, tsv, bm25_length(tsv) AS length FROM new_chunks
        ), fresh AS MATERIALIZED (
            SELECT t.id AS term, g.ids, g.tfs, g.lengths
            FROM (SELECT n.collection, u.lexeme, array_agg(n.id ORDER BY n.id) AS ids,
                         array_agg(coalesce(array_length(u.positions, 1), 1)::smallint
                                   ORDER BY n.id) AS tfs,
                         array_agg(n.length ORDER BY n.id) AS lengths
                  FROM chunks n, unnest(n.tsv) u
                  GROUP BY 1, 2) g
            CROSS JOIN LATERAL (
                SELECT t.id FROM bm25_terms t
                WHERE t.collection = g.collection AND t.lexeme = g.lexeme OFFSET 0
            ) t
        ), plan AS MATERIALIZED (
            SELECT f.term, f.ids, f.tfs, f.lengths, k.last_id, k.size,
                   coalesce(f.ids[1] > k.last_id AND k.size + cardinality(f.ids) <= 128, false)
                   AS fits
            FROM fresh f
            LEFT JOIN LATERAL (
                SELECT e.last_id, cardinality(e.ids) AS size FROM bm25_blocks e
                WHERE e.term = f.term ORDER BY e.last_id DESC LIMIT 1
            ) k ON true
        ), appended AS (
            UPDATE bm25_blocks e
            SET last_id = p.ids[cardinality(p.ids)], ids = e.ids || p.ids,
                tfs = e.tfs || p.tfs, lengths = e.lengths || p.lengths
            FROM plan p
            WHERE p.fits AND e.term = p.term AND e.last_id = p.last_id
        ), placed AS MATERIALIZED (  -- the block each other posting goes into (NULL: a new one)
            SELECT p.term, x.chunk_id, x.tf, x.length,
                   CASE WHEN p.last_id IS NULL THEN NULL
                        WHEN x.chunk_id > p.last_id THEN CASE WHEN p.size < 128 THEN p.last_id END
                        ELSE (SELECT min(e.last_id) FROM bm25_blocks e
                              WHERE e.term = p.term AND e.last_id >= x.chunk_id)
                   END AS target
            FROM plan p
            CROSS JOIN LATERAL unnest(p.ids, p.tfs, p.lengths) AS x(chunk_id, tf, length)
            WHERE NOT p.fits
        ), reopened AS (
            DELETE FROM bm25_blocks e
            USING (SELECT DISTINCT term, target FROM placed WHERE target IS NOT NULL) p
            WHERE e.term = p.term AND e.last_id = p.target
            RETURNING e.term, e.last_id, e.ids, e.tfs, e.lengths
        ), merged AS (
            SELECT term, target, chunk_id, tf, length FROM placed
            UNION ALL
            SELECT r.term, r.last_id, p.id, p.tf, p.length
            FROM reopened r, unnest(r.ids, r.tfs, r.lengths) AS p(id, tf, length)
        )
        INSERT INTO bm25_blocks (term, last_id, ids, tfs, lengths)
        SELECT m.term, max(m.chunk_id), array_agg(m.chunk_id ORDER BY m.chunk_id),
               array_agg(m.tf ORDER BY m.chunk_id), array_agg(m.length ORDER BY m.chunk_id)
        FROM (SELECT *, (row_number() OVER (PARTITION BY term, target ORDER BY chunk_id) - 1)
                        / 128 AS piece
              FROM merged) m
        GROUP BY m.term, m.target, m.piece;
    END IF;
    RETURN NULL;
END
$$
-- Every join here reads a handful of rows of large tables through their keys, for each
-- term or block a statement touches: never a hash of all of them, whatever the planner
-- guesses of the transition tables and CTEs (a guess that read every block, 40 ms per
-- document at 100k chunks).
SET enable_hashjoin = off
SET enable_mergejoin = off;

DROP FUNCTION IF EXISTS bm25_score(
    text, text[], double precision[], bigint[], double precision, double precision,
    double precision
);
DROP FUNCTION IF EXISTS bm25_score_all(
    text, text[], double precision[], double precision, double precision, double precision
);

-- BM25 of each of `candidates` for the terms `terms` (bm25_terms ids) with their IDFs:
-- for each term and candidate, the one block that may hold the posting (an index probe),
-- and the candidate's place in it (width_bucket: a binary search of the sorted ids).
CREATE OR REPLACE FUNCTION bm25_score(
    terms bigint[], idfs double precision[], candidates bigint[],
    avg_length double precision, k1 double precision, b double precision
) RETURNS TABLE (chunk_id bigint, score double precision)
LANGUAGE sql STABLE AS $$
    SELECT c.id,
           sum(bm25_term(q.idf, p.tf, p.length, avg_length, k1, b))
    FROM unnest(terms, idfs) AS q(term, idf)
    CROSS JOIN unnest(candidates) AS c(id)
    CROSS JOIN LATERAL (
        SELECT e.tfs[x.i] AS tf, e.lengths[x.i] AS length
        FROM (SELECT k.ids, k.tfs, k.lengths FROM bm25_blocks k
              WHERE k.term = q.term AND k.last_id >= c.id ORDER BY k.last_id LIMIT 1) e
        CROSS JOIN LATERAL (SELECT width_bucket(c.id, e.ids) AS i) x
        WHERE x.i > 0 AND e.ids[x.i] = c.id
    ) p
    GROUP BY c.id
$$;

-- BM25 of every chunk holding one of the terms `terms`, on those terms alone: every
-- block of each term, unrolled.
CREATE OR REPLACE FUNCTION bm25_score_all(
    terms bigint[], idfs double precision[],
    avg_length double precision, k1 double precision, b double precision
) RETURNS TABLE (chunk_id bigint, score double precision)
LANGUAGE sql STABLE AS $$
    SELECT p.id,
           sum(bm25_term(q.idf, p.tf, p.length, avg_length, k1, b))
    FROM unnest(terms, idfs) AS q(term, idf)
    CROSS JOIN LATERAL (
        SELECT unnest(k.ids) AS id, unnest(k.tfs) AS tf, unnest(k.lengths) AS length
        FROM bm25_blocks k WHERE k.term = q.term
    ) p
    GROUP BY p.id
$$;

-- The pruned exact search of 0006, on term ids and blocks.
CREATE OR REPLACE FUNCTION bm25_search(
    p_collection text, p_query text, p_limit integer,
    k1 double precision DEFAULT 1.2, b double precision DEFAULT 0.75
) RETURNS TABLE (chunk_id bigint, score double precision)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    n_chunks    double precision;
    avg_length  double precision;
    terms       bigint[];            -- the query's terms present in the collection,
    idfs        double precision[];  -- commonest first
    frequencies integer[];
    n_terms     integer;
    rare        integer := 0;        -- terms[n_terms - rare + 1:] make the first floor
    seen        bigint := 0;
    floor_score double precision := 0;
    optional    integer := 0;        -- terms[1:optional] are optional
    bound       double precision := 0;  -- their bounds, summed
    ids         bigint[];
    partials    double precision[];
    n           integer;
    i           integer;
    term_id     bigint;
    weight      double precision;
    raised      double precision;
    -- Scores are sums of floats: a chunk exactly at the floor must never be dropped.
    slack       constant double precision := 1e-9;
BEGIN
    SELECT s.chunks, s.tokens::double precision / greatest(s.chunks, 1)
    INTO n_chunks, avg_length
    FROM bm25_collections s WHERE s.collection = p_collection;
    IF n_chunks IS NULL OR n_chunks = 0 OR p_limit <= 0 THEN
        RETURN;
    END IF;
    SELECT array_agg(t.id ORDER BY t.df DESC, t.lexeme),
           array_agg(ln(1 + (n_chunks - t.df + 0.5) / (t.df + 0.5)) ORDER BY t.df DESC, t.lexeme),
           array_agg(t.df ORDER BY t.df DESC, t.lexeme)
    INTO terms, idfs, frequencies
    FROM bm25_terms t
    WHERE t.collection = p_collection AND t.df > 0
      AND t.lexeme IN (SELECT q.lexeme FROM unnest(to_tsvector('english', p_query)) q);
    IF terms IS NULL THEN
        RETURN;
    END IF;
    n_terms := array_length(terms, 1);

    -- 1. A first floor from the rarest terms (0006).
    FOR i IN REVERSE n_terms..1 LOOP
        rare := rare + 1;
        seen := seen + frequencies[i];
        EXIT WHEN seen >= p_limit AND (i = 1 OR seen + frequencies[i - 1] > 2000 + 4 * p_limit);
    END LOOP;
    IF rare < n_terms THEN
        SELECT min(s.score) INTO floor_score FROM (
            SELECT f.score
            FROM bm25_score(terms, idfs,
                            ARRAY(SELECT e.chunk_id
                                  FROM bm25_score_all(terms[n_terms - rare + 1:],
                                                      idfs[n_terms - rare + 1:], avg_length, k1, b) e
                                  ORDER BY e.score DESC, e.chunk_id LIMIT 4 * p_limit),
                            avg_length, k1, b) f
            ORDER BY 1 DESC LIMIT p_limit
        ) s HAVING count(*) >= p_limit;
        floor_score := coalesce(floor_score, 0);  -- fewer chunks than p_limit: no floor
    END IF;

    -- 2. The optional terms: the commonest, whose bounds sum below the floor.
    FOR i IN 1..n_terms LOOP
        EXIT WHEN bound + idfs[i] * (k1 + 1) >= floor_score;
        bound := bound + idfs[i] * (k1 + 1);
        optional := i;
    END LOOP;

    -- 3. Every chunk holding an essential term, with its score on those terms.
    SELECT array_agg(e.chunk_id), array_agg(e.score)
    INTO ids, partials
    FROM bm25_score_all(terms[optional + 1:], idfs[optional + 1:], avg_length, k1, b) e;
    IF ids IS NULL THEN
        RETURN;
    END IF;
    IF optional = 0 THEN  -- the essential terms are all the terms: these are the scores
        RETURN QUERY SELECT u.id, u.score FROM unnest(ids, partials) AS u(id, score)
                     ORDER BY 2 DESC, 1 LIMIT p_limit;
        RETURN;
    END IF;

    -- 4. Raise the floor: the p_limit-th best full score of the best partial scorers.
    SELECT min(s.score) INTO raised FROM (
        SELECT f.score
        FROM bm25_score(terms, idfs,
                        ARRAY(SELECT u.id FROM unnest(ids, partials) AS u(id, partial)
                              ORDER BY u.partial DESC, u.id LIMIT 4 * p_limit),
                        avg_length, k1, b) f
        ORDER BY 1 DESC LIMIT p_limit
    ) s HAVING count(*) >= p_limit;
    floor_score := greatest(floor_score, coalesce(raised, 0));

    -- 5. The optional terms one at a time, rarest first.
    FOR i IN REVERSE optional..1 LOOP
        SELECT array_agg(u.id), array_agg(u.partial) INTO ids, partials
        FROM unnest(ids, partials) AS u(id, partial)
        WHERE u.partial + bound >= floor_score - slack;
        n := coalesce(array_length(ids, 1), 0);
        EXIT WHEN n = 0;
        term_id := terms[i];
        weight := idfs[i];
        bound := bound - weight * (k1 + 1);
        IF n * 8 < frequencies[i] THEN  -- few survivors: look each one up
            SELECT array_agg(f.id), array_agg(f.partial + coalesce(f.contribution, 0))
            INTO ids, partials
            FROM (
                SELECT u.id, u.partial,
                       bm25_term(weight, p.tf, p.length, avg_length, k1, b) AS contribution
                FROM unnest(ids, partials) AS u(id, partial)
                LEFT JOIN LATERAL (
                    SELECT e.tfs[x.i] AS tf, e.lengths[x.i] AS length
                    FROM (SELECT k.ids, k.tfs, k.lengths FROM bm25_blocks k
                          WHERE k.term = term_id AND k.last_id >= u.id
                          ORDER BY k.last_id LIMIT 1) e
                    CROSS JOIN LATERAL (SELECT width_bucket(u.id, e.ids) AS i) x
                    WHERE x.i > 0 AND e.ids[x.i] = u.id
                ) p ON true
            ) f;
        ELSE  -- many: one pass over the term's blocks, joined by hash
            SELECT array_agg(u.id),
                   array_agg(u.partial + coalesce(
                       bm25_term(weight, p.tf, p.length, avg_length, k1, b), 0))
            INTO ids, partials
            FROM unnest(ids, partials) AS u(id, partial)
            LEFT JOIN (
                SELECT unnest(k.ids) AS id, unnest(k.tfs) AS tf, unnest(k.lengths) AS length
                FROM bm25_blocks k WHERE k.term = term_id
            ) p ON p.id = u.id;
        END IF;
        IF n >= p_limit THEN
            SELECT greatest(floor_score, x) INTO floor_score
            FROM unnest(partials) x ORDER BY x DESC OFFSET p_limit - 1 LIMIT 1;
        END IF;
    END LOOP;
    RETURN QUERY SELECT u.id, u.partial FROM unnest(ids, partials) AS u(id, partial)
                 ORDER BY 2 DESC, 1 LIMIT p_limit;
END
$$;

-- 0005's filtered search, on term ids.
CREATE OR REPLACE FUNCTION bm25_search_among(
    p_collection text, p_query text, p_limit integer, p_chunks bigint[],
    k1 double precision DEFAULT 1.2, b double precision DEFAULT 0.75
) RETURNS TABLE (chunk_id bigint, score double precision)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    n_chunks    double precision;
    avg_length  double precision;
    terms       bigint[];
    idfs        double precision[];
BEGIN
    SELECT s.chunks, s.tokens::double precision / greatest(s.chunks, 1)
    INTO n_chunks, avg_length
    FROM bm25_collections s WHERE s.collection = p_collection;
    IF n_chunks IS NULL OR n_chunks = 0 OR p_limit <= 0 OR cardinality(p_chunks) = 0 THEN
        RETURN;
    END IF;
    SELECT array_agg(t.id ORDER BY t.df DESC, t.lexeme),
           array_agg(ln(1 + (n_chunks - t.df + 0.5) / (t.df + 0.5)) ORDER BY t.df DESC, t.lexeme)
    INTO terms, idfs
    FROM bm25_terms t
    WHERE t.collection = p_collection AND t.df > 0
      AND t.lexeme IN (SELECT q.lexeme FROM unnest(to_tsvector('english', p_query)) q);
    IF terms IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT f.chunk_id, f.score
    FROM bm25_score(terms, idfs, p_chunks, avg_length, k1, b) f
    ORDER BY 2 DESC, 1 LIMIT p_limit;
END
$$;
