-- BM25 postings packed: a block's postings as one bytea of fixed 14-byte records (issue 23).
--
-- 0010 kept a block's postings as three arrays (chunk ids, term frequencies, lengths).
-- The client scorer (store/bm25.py) reads a term's blocks concatenated server-side, and
-- array_send, which it used for that, calls the element type's send function, with an
-- allocation, per element: 32.7 ms for a term in 206k of a million chunks, against
-- 2.6 ms for the same postings stored as one bytea a block (string_agg of the blocks).
-- Here a block holds `postings`: per posting, in chunk id order, the chunk id (int8), its
-- term frequency (int2) and the chunk's length (int4), big-endian as int8send, int2send
-- and int4send write them, 14 bytes a posting and no header (bm25_pack), so numpy reads a
-- run of them with one dtype.
--
-- SQL reads a block through bm25_unpack (get_byte at each record's offsets; a one-query
-- SQL function the planner inlines: no call per posting). A candidate's posting, which
-- 0010 found by a binary search of the block's ids (width_bucket), is found by
-- bm25_posting: position() of the id's 8 bytes in the block, then that one record
-- decoded. The first match is the record's when it starts a record; one elsewhere (bytes
-- of a tf, a length and the next id that happen to spell the id) sends it to the whole
-- block, decoded and matched, so the lookup stays exact.
--
-- The blocks are rewritten from the arrays in chunk id order; the view, the trigger and
-- the search functions are 0010's on the packed column (an append is `||`), with the same
-- postings, the same scores and the same rankings.

-- A posting's 14 bytes.
CREATE OR REPLACE FUNCTION bm25_pack(id bigint, tf integer, length integer) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT int8send(id) || int2send(tf::smallint) || int4send(length)
$$;

-- A block's postings, in its order. Not STRICT (a strict function is not inlined);
-- NULL gives no rows. The id is read as two int4 halves (fewer calls than eight int8
-- shifts); each shift is parenthesised, as | and << share one precedence. The offsets
-- come from generate_series in a target list (no tuplestore per block), and OFFSET 0
-- keeps the decoding here: pulled up into the caller, a sort or a join above it carried
-- each posting's whole block (a sort of 432 MB for a query's 242k postings at 1M).
CREATE OR REPLACE FUNCTION bm25_unpack(postings bytea)
RETURNS TABLE (id bigint, tf integer, length integer)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (((get_byte(postings, o) << 24) | (get_byte(postings, o + 1) << 16)
             | (get_byte(postings, o + 2) << 8) | get_byte(postings, o + 3))::bigint << 32)
           | (((get_byte(postings, o + 4) << 24) | (get_byte(postings, o + 5) << 16)
               | (get_byte(postings, o + 6) << 8) | get_byte(postings, o + 7))::bigint
              & 4294967295),
           (get_byte(postings, o + 8) << 8) | get_byte(postings, o + 9),
           (get_byte(postings, o + 10) << 24) | (get_byte(postings, o + 11) << 16)
           | (get_byte(postings, o + 12) << 8) | get_byte(postings, o + 13)
    FROM (SELECT generate_series(0, octet_length(postings) - 14, 14) AS o) AS s
    OFFSET 0
$$;

-- The posting of chunk `chunk` in a block, if it holds one.
CREATE OR REPLACE FUNCTION bm25_posting(postings bytea, chunk bigint)
RETURNS TABLE (tf integer, length integer)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p.tf, p.length
    FROM (SELECT position(int8send(chunk) IN postings) - 1 AS at OFFSET 0) m
    CROSS JOIN LATERAL bm25_unpack(
        CASE WHEN m.at % 14 = 0 THEN substring(postings FROM m.at + 1 FOR 14)
             WHEN m.at > 0 THEN postings END  -- off a record's start: the whole block
    ) p
    WHERE p.id = chunk
$$;

-- The blocks rewritten once: a database whose blocks are packed already (this file run
-- by hand first, see docs/deploy.md) keeps them.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'bm25_blocks'
                     AND column_name = 'ids') THEN
        RETURN;
    END IF;
    DROP VIEW bm25_postings;
    CREATE TABLE bm25_blocks_packed (
        term      bigint NOT NULL,  -- bm25_terms.id
        last_id   bigint NOT NULL,  -- the last chunk id of the block's range (>= each id in it)
        -- 1 to 128 postings (bm25_pack), chunk ids ascending; at most 1,792 bytes, kept
        -- in the row as they are (a compressed value would be decompressed by each get_byte)
        postings  bytea STORAGE PLAIN NOT NULL CHECK (
            octet_length(postings) BETWEEN 14 AND 1792 AND octet_length(postings) % 14 = 0
        )
    );
    INSERT INTO bm25_blocks_packed (term, last_id, postings)
    SELECT k.term, k.last_id,
           (SELECT string_agg(bm25_pack(p.id, p.tf, p.length), ''::bytea ORDER BY p.id)
            FROM unnest(k.ids, k.tfs, k.lengths) AS p(id, tf, length))
    FROM bm25_blocks k;
    DROP TABLE bm25_blocks;
    ALTER TABLE bm25_blocks_packed RENAME TO bm25_blocks;
    ALTER TABLE bm25_blocks ADD CONSTRAINT bm25_blocks_pkey PRIMARY KEY (term, last_id);
    ALTER TABLE bm25_blocks RENAME CONSTRAINT bm25_blocks_packed_postings_check
        TO bm25_blocks_postings_check;
END
$$;

CREATE OR REPLACE VIEW bm25_postings AS
SELECT t.collection, t.lexeme, p.id AS chunk_id, p.tf, p.length
FROM bm25_terms t
JOIN bm25_blocks k ON k.term = t.id
CROSS JOIN LATERAL bm25_unpack(k.postings) AS p;

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
            SELECT l.term, l.last_id, r.postings
            FROM located l
            JOIN bm25_blocks e ON e.term = l.term AND e.last_id = l.last_id
            CROSS JOIN LATERAL (
                SELECT string_agg(bm25_pack(p.id, p.tf, p.length), ''::bytea ORDER BY p.id)
                       AS postings
                FROM bm25_unpack(e.postings) AS p
                WHERE p.id <> ALL (l.gone)
            ) r
        ), emptied AS (
            DELETE FROM bm25_blocks e USING kept k
            WHERE e.term = k.term AND e.last_id = k.last_id AND k.postings IS NULL
        )
        UPDATE bm25_blocks e SET postings = k.postings
        FROM kept k
        WHERE e.term = k.term AND e.last_id = k.last_id AND k.postings IS NOT NULL;
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
        -- Per term: its new postings (packed, ids ascending) and its last block. Postings
        -- past the last block that fit in it are appended to it; the others are placed.
        WITH chunks AS MATERIALIZED (  -- each chunk's length, once
            SELECT id, collection, tsv, bm25_length(tsv) AS length FROM new_chunks
        ), fresh AS MATERIALIZED (
            SELECT t.id AS term, g.postings, g.first_id, g.last_id, g.size
            FROM (SELECT n.collection, u.lexeme,
                         string_agg(bm25_pack(n.id, coalesce(array_length(u.positions, 1), 1),
                                              n.length), ''::bytea ORDER BY n.id) AS postings,
                         min(n.id) AS first_id, max(n.id) AS last_id, count(*) AS size
                  FROM chunks n, unnest(n.tsv) u
                  GROUP BY 1, 2) g
            CROSS JOIN LATERAL (
                SELECT t.id FROM bm25_terms t
                WHERE t.collection = g.collection AND t.lexeme = g.lexeme OFFSET 0
            ) t
        ), plan AS MATERIALIZED (
            SELECT f.term, f.postings, f.last_id AS fresh_last_id, k.last_id, k.size,
                   coalesce(f.first_id > k.last_id AND k.size + f.size <= 128, false) AS fits
            FROM fresh f
            LEFT JOIN LATERAL (
                SELECT e.last_id, octet_length(e.postings) / 14 AS size FROM bm25_blocks e
                WHERE e.term = f.term ORDER BY e.last_id DESC LIMIT 1
            ) k ON true
        ), appended AS (
            UPDATE bm25_blocks e
            SET last_id = p.fresh_last_id, postings = e.postings || p.postings
            FROM plan p
            WHERE p.fits AND e.term = p.term AND e.last_id = p.last_id
        ), placed AS MATERIALIZED (  -- the block each other posting goes into (NULL: a new one)
            SELECT p.term, x.id AS chunk_id, x.tf, x.length,
                   CASE WHEN p.last_id IS NULL THEN NULL
                        WHEN x.id > p.last_id THEN CASE WHEN p.size < 128 THEN p.last_id END
                        ELSE (SELECT min(e.last_id) FROM bm25_blocks e
                              WHERE e.term = p.term AND e.last_id >= x.id)
                   END AS target
            FROM plan p
            CROSS JOIN LATERAL bm25_unpack(p.postings) AS x
            WHERE NOT p.fits
        ), reopened AS (
            DELETE FROM bm25_blocks e
            USING (SELECT DISTINCT term, target FROM placed WHERE target IS NOT NULL) p
            WHERE e.term = p.term AND e.last_id = p.target
            RETURNING e.term, e.last_id, e.postings
        ), merged AS (
            SELECT term, target, chunk_id, tf, length FROM placed
            UNION ALL
            SELECT r.term, r.last_id, p.id, p.tf, p.length
            FROM reopened r CROSS JOIN LATERAL bm25_unpack(r.postings) AS p
        )
        INSERT INTO bm25_blocks (term, last_id, postings)
        SELECT m.term, max(m.chunk_id),
               string_agg(bm25_pack(m.chunk_id, m.tf, m.length), ''::bytea ORDER BY m.chunk_id)
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

-- BM25 of each of `candidates` for the terms `terms` (bm25_terms ids) with their IDFs:
-- for each term and candidate, the one block that may hold the posting (an index probe),
-- and the posting in it (bm25_posting).
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
        SELECT k.postings FROM bm25_blocks k
        WHERE k.term = q.term AND k.last_id >= c.id ORDER BY k.last_id LIMIT 1
    ) e
    CROSS JOIN LATERAL bm25_posting(e.postings, c.id) AS p
    GROUP BY c.id
$$;

-- BM25 of every chunk holding one of the terms `terms`, on those terms alone: every
-- block of each term, unpacked.
CREATE OR REPLACE FUNCTION bm25_score_all(
    terms bigint[], idfs double precision[],
    avg_length double precision, k1 double precision, b double precision
) RETURNS TABLE (chunk_id bigint, score double precision)
LANGUAGE sql STABLE AS $$
    SELECT p.id,
           sum(bm25_term(q.idf, p.tf, p.length, avg_length, k1, b))
    FROM unnest(terms, idfs) AS q(term, idf)
    CROSS JOIN LATERAL (
        SELECT x.id, x.tf, x.length
        FROM bm25_blocks k CROSS JOIN LATERAL bm25_unpack(k.postings) AS x
        WHERE k.term = q.term
    ) p
    GROUP BY p.id
$$;

-- 0010's search, on the packed blocks.
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
                    SELECT x.tf, x.length
                    FROM (SELECT k.postings FROM bm25_blocks k
                          WHERE k.term = term_id AND k.last_id >= u.id
                          ORDER BY k.last_id LIMIT 1) e
                    CROSS JOIN LATERAL bm25_posting(e.postings, u.id) AS x
                ) p ON true
            ) f;
        ELSE  -- many: one pass over the term's blocks, joined by hash
            SELECT array_agg(u.id),
                   array_agg(u.partial + coalesce(
                       bm25_term(weight, p.tf, p.length, avg_length, k1, b), 0))
            INTO ids, partials
            FROM unnest(ids, partials) AS u(id, partial)
            LEFT JOIN (
                SELECT x.id, x.tf, x.length
                FROM bm25_blocks k CROSS JOIN LATERAL bm25_unpack(k.postings) AS x
                WHERE k.term = term_id
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
