-- Okapi BM25 keyword search over the chunks, per collection, with plain PostgreSQL.
--
-- Postings (lexeme, chunk, term frequency, chunk length), document frequencies and
-- collection totals are written by triggers in the very statement that writes or
-- deletes chunks, so they are exact in every snapshot: no batch job, no drift.
-- Tokens are the lexemes of the chunk's `tsv` (its section path and text, English
-- stemming, stop words dropped), the same that `to_tsvector('english', query)` yields.

-- Collection totals: how many chunks, and how many tokens they hold (for the mean length).
CREATE TABLE IF NOT EXISTS bm25_collections (
    collection text PRIMARY KEY,
    chunks     bigint NOT NULL DEFAULT 0,
    tokens     bigint NOT NULL DEFAULT 0
);

-- Document frequency: in how many chunks of the collection a lexeme occurs.
CREATE TABLE IF NOT EXISTS bm25_terms (
    collection text NOT NULL,
    lexeme     text NOT NULL,
    df         integer NOT NULL,
    PRIMARY KEY (collection, lexeme)
);

-- One row per (lexeme, chunk): the inverted index BM25 scores from. The chunk's length
-- is repeated here so that scoring reads the index alone.
CREATE TABLE IF NOT EXISTS bm25_postings (
    collection text NOT NULL,
    lexeme     text NOT NULL,
    chunk_id   bigint NOT NULL,
    tf         integer NOT NULL,
    length     integer NOT NULL,
    PRIMARY KEY (collection, lexeme, chunk_id) INCLUDE (tf, length)
);

-- Tokens in a tsvector: every position of every lexeme (a lexeme without positions
-- counts once).
CREATE OR REPLACE FUNCTION bm25_length(tsv tsvector) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(sum(coalesce(array_length(positions, 1), 1)), 0)::integer FROM unnest(tsv)
$$;

CREATE OR REPLACE FUNCTION bm25_chunks_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Collection totals first, in collection order: the row lock serialises concurrent
    -- writers of one collection here, before either touches a term, so their term
    -- updates can never deadlock.
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE bm25_collections s SET chunks = s.chunks - o.chunks, tokens = s.tokens - o.tokens
        FROM (SELECT collection, count(*) AS chunks, sum(bm25_length(tsv)) AS tokens
              FROM old_chunks GROUP BY collection) o
        WHERE s.collection = o.collection;
        DELETE FROM bm25_postings p
        USING (SELECT o.collection, u.lexeme, o.id FROM old_chunks o, unnest(o.tsv) u) d
        WHERE p.collection = d.collection AND p.lexeme = d.lexeme AND p.chunk_id = d.id;
        UPDATE bm25_terms t SET df = t.df - d.df
        FROM (SELECT o.collection, u.lexeme, count(*) AS df
              FROM old_chunks o, unnest(o.tsv) u GROUP BY 1, 2) d
        WHERE t.collection = d.collection AND t.lexeme = d.lexeme;
        DELETE FROM bm25_terms t
        USING (SELECT DISTINCT collection FROM old_chunks) c
        WHERE t.collection = c.collection AND t.df <= 0;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO bm25_collections AS s (collection, chunks, tokens)
        SELECT collection, count(*), sum(bm25_length(tsv)) FROM new_chunks
        GROUP BY collection ORDER BY collection
        ON CONFLICT (collection) DO UPDATE
        SET chunks = s.chunks + EXCLUDED.chunks, tokens = s.tokens + EXCLUDED.tokens;
        INSERT INTO bm25_postings (collection, lexeme, chunk_id, tf, length)
        SELECT n.collection, u.lexeme, n.id, coalesce(array_length(u.positions, 1), 1),
               bm25_length(n.tsv)
        FROM new_chunks n, unnest(n.tsv) u;
        INSERT INTO bm25_terms AS t (collection, lexeme, df)
        SELECT n.collection, u.lexeme, count(*) FROM new_chunks n, unnest(n.tsv) u
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (collection, lexeme) DO UPDATE SET df = t.df + EXCLUDED.df;
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS bm25_chunks_inserted ON chunks;
CREATE TRIGGER bm25_chunks_inserted AFTER INSERT ON chunks
    REFERENCING NEW TABLE AS new_chunks
    FOR EACH STATEMENT EXECUTE FUNCTION bm25_chunks_changed();
DROP TRIGGER IF EXISTS bm25_chunks_deleted ON chunks;
CREATE TRIGGER bm25_chunks_deleted AFTER DELETE ON chunks
    REFERENCING OLD TABLE AS old_chunks
    FOR EACH STATEMENT EXECUTE FUNCTION bm25_chunks_changed();
DROP TRIGGER IF EXISTS bm25_chunks_updated ON chunks;
CREATE TRIGGER bm25_chunks_updated AFTER UPDATE ON chunks
    REFERENCING OLD TABLE AS old_chunks NEW TABLE AS new_chunks
    FOR EACH STATEMENT EXECUTE FUNCTION bm25_chunks_changed();

-- Chunks written before this migration.
INSERT INTO bm25_collections (collection, chunks, tokens)
SELECT collection, count(*), sum(bm25_length(tsv)) FROM chunks GROUP BY collection
ON CONFLICT (collection) DO NOTHING;
INSERT INTO bm25_postings (collection, lexeme, chunk_id, tf, length)
SELECT c.collection, u.lexeme, c.id, coalesce(array_length(u.positions, 1), 1), bm25_length(c.tsv)
FROM chunks c, unnest(c.tsv) u
ON CONFLICT DO NOTHING;
INSERT INTO bm25_terms (collection, lexeme, df)
SELECT collection, lexeme, count(*) FROM bm25_postings GROUP BY 1, 2
ON CONFLICT DO NOTHING;

-- BM25 of each of `candidates` for the query terms `lexemes` with their IDFs, reading
-- just these chunks' postings through the primary key.
CREATE OR REPLACE FUNCTION bm25_score(
    p_collection text, lexemes text[], idfs double precision[], candidates bigint[],
    avg_length double precision, k1 double precision, b double precision
) RETURNS TABLE (chunk_id bigint, score double precision)
LANGUAGE sql STABLE AS $$
    SELECT p.chunk_id,
           sum(q.idf * p.tf * (k1 + 1) / (p.tf + k1 * (1 - b + b * p.length / avg_length)))
    FROM unnest(lexemes, idfs) AS q(lexeme, idf)
    CROSS JOIN LATERAL (
        -- One index range per term, whatever the planner guesses of the candidates
        -- (OFFSET 0 keeps the subquery from being flattened into one scan of them all).
        SELECT e.chunk_id, e.tf, e.length FROM bm25_postings e
        WHERE e.collection = p_collection AND e.lexeme = q.lexeme
          AND e.chunk_id = ANY(candidates)
        OFFSET 0
    ) p
    GROUP BY p.chunk_id
$$;

-- BM25 of every chunk holding one of the terms `lexemes`, on those terms alone.
CREATE OR REPLACE FUNCTION bm25_score_all(
    p_collection text, lexemes text[], idfs double precision[],
    avg_length double precision, k1 double precision, b double precision
) RETURNS TABLE (chunk_id bigint, score double precision)
LANGUAGE sql STABLE AS $$
    SELECT p.chunk_id,
           sum(q.idf * p.tf * (k1 + 1) / (p.tf + k1 * (1 - b + b * p.length / avg_length)))
    FROM unnest(lexemes, idfs) AS q(lexeme, idf)
    CROSS JOIN LATERAL (
        SELECT e.chunk_id, e.tf, e.length FROM bm25_postings e
        WHERE e.collection = p_collection AND e.lexeme = q.lexeme
        OFFSET 0
    ) p
    GROUP BY p.chunk_id
$$;

-- The full BM25 of chunks whose score on the essential terms is known (`partials`): add
-- what the optional terms `lexemes` give them. For many chunks, one pass over each
-- optional term's postings (an index range each), joined by hash, beats probing every
-- chunk's postings one by one.
CREATE OR REPLACE FUNCTION bm25_complete(
    p_collection text, lexemes text[], idfs double precision[],
    ids bigint[], partials double precision[],
    avg_length double precision, k1 double precision, b double precision
) RETURNS TABLE (chunk_id bigint, score double precision)
LANGUAGE sql STABLE AS $$
    WITH optional AS MATERIALIZED (
        SELECT p.chunk_id,
               sum(q.idf * p.tf * (k1 + 1) / (p.tf + k1 * (1 - b + b * p.length / avg_length)))
               AS contribution
        FROM unnest(lexemes, idfs) AS q(lexeme, idf)
        CROSS JOIN LATERAL (
            SELECT e.chunk_id, e.tf, e.length FROM bm25_postings e
            WHERE e.collection = p_collection AND e.lexeme = q.lexeme
        ) p
        GROUP BY p.chunk_id
    )
    SELECT u.id, u.partial + coalesce(o.contribution, 0)
    FROM unnest(ids, partials) AS u(id, partial)
    LEFT JOIN optional o ON o.chunk_id = u.id
$$;

-- The best `p_limit` chunks of a collection for a query by Okapi BM25, exactly, without
-- scoring in full every chunk that shares a common word (after the MaxScore method of
-- Turtle and Flood, 1995). A term adds at most idf * (k1 + 1) to a chunk's score: its
-- bound. With a floor (a score the final top p_limit cannot fall below):
--   * the commonest terms whose bounds sum below the floor are "optional": a chunk
--     holding none of the other ("essential") terms cannot reach the top;
--   * a chunk whose score on the essential terms, plus every optional bound, is below
--     the floor cannot either; only the rest are scored on every term.
-- The floor comes from the chunks holding the rarest terms, then rises to the p_limit-th
-- best full score among the chunks that score best on the essential terms.
-- IDF is Lucene's ln(1 + (N - df + 0.5) / (df + 0.5)), which is never negative.
CREATE OR REPLACE FUNCTION bm25_search(
    p_collection text, p_query text, p_limit integer,
    k1 double precision DEFAULT 1.2, b double precision DEFAULT 0.75
) RETURNS TABLE (chunk_id bigint, score double precision)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    n_chunks    double precision;
    avg_length  double precision;
    lexemes     text[];          -- the query's terms present in the collection,
    idfs        double precision[];  -- commonest first
    frequencies integer[];
    probe       text[];
    seen        bigint := 0;
    floor_score double precision := 0;
    optional    integer := 0;    -- lexemes[1:optional] are optional
    bound       double precision := 0;  -- their bounds, summed
    ids         bigint[];
    partials    double precision[];
    survivors   integer;
    i           integer;
BEGIN
    SELECT s.chunks, s.tokens::double precision / greatest(s.chunks, 1)
    INTO n_chunks, avg_length
    FROM bm25_collections s WHERE s.collection = p_collection;
    IF n_chunks IS NULL OR n_chunks = 0 OR p_limit <= 0 THEN
        RETURN;
    END IF;
    SELECT array_agg(t.lexeme ORDER BY t.df DESC, t.lexeme),
           array_agg(ln(1 + (n_chunks - t.df + 0.5) / (t.df + 0.5)) ORDER BY t.df DESC, t.lexeme),
           array_agg(t.df ORDER BY t.df DESC, t.lexeme)
    INTO lexemes, idfs, frequencies
    FROM bm25_terms t
    WHERE t.collection = p_collection AND t.df > 0
      AND t.lexeme IN (SELECT q.lexeme FROM unnest(to_tsvector('english', p_query)) q);
    IF lexemes IS NULL THEN
        RETURN;
    END IF;

    -- 1. A first floor from the chunks holding the rarest terms (enough to fill the top).
    FOR i IN REVERSE array_length(lexemes, 1)..1 LOOP
        probe := probe || lexemes[i];
        seen := seen + frequencies[i];
        EXIT WHEN seen >= p_limit;
    END LOOP;
    IF array_length(probe, 1) < array_length(lexemes, 1) THEN
        SELECT min(s.score) INTO floor_score FROM (
            SELECT f.score
            FROM bm25_score(p_collection, lexemes, idfs,
                            ARRAY(SELECT DISTINCT c.chunk_id FROM bm25_postings c
                                  WHERE c.collection = p_collection AND c.lexeme = ANY(probe)),
                            avg_length, k1, b) f
            ORDER BY 1 DESC LIMIT p_limit
        ) s HAVING count(*) >= p_limit;
        floor_score := coalesce(floor_score, 0);  -- fewer chunks than p_limit: no floor
    END IF;

    -- 2. The optional terms.
    FOR i IN 1..array_length(lexemes, 1) LOOP
        EXIT WHEN bound + idfs[i] * (k1 + 1) >= floor_score;
        bound := bound + idfs[i] * (k1 + 1);
        optional := i;
    END LOOP;

    -- 3. Every chunk holding an essential term, by its score on those terms.
    SELECT array_agg(e.chunk_id ORDER BY e.score DESC, e.chunk_id),
           array_agg(e.score ORDER BY e.score DESC, e.chunk_id)
    INTO ids, partials
    FROM bm25_score_all(p_collection, lexemes[optional + 1:], idfs[optional + 1:],
                        avg_length, k1, b) e;
    IF ids IS NULL THEN
        RETURN;
    END IF;
    IF optional = 0 THEN  -- the essential terms are all the terms: these are the scores
        RETURN QUERY SELECT u.id, u.score FROM unnest(ids, partials) AS u(id, score)
                     ORDER BY 2 DESC, 1 LIMIT p_limit;
        RETURN;
    END IF;

    -- 4. Raise the floor: the p_limit-th best full score of the best partial scorers.
    SELECT greatest(floor_score, min(s.score)) INTO floor_score FROM (
        SELECT f.score FROM bm25_score(p_collection, lexemes, idfs, ids[1:4 * p_limit],
                                       avg_length, k1, b) f
        ORDER BY 1 DESC LIMIT p_limit
    ) s HAVING count(*) >= p_limit;
    floor_score := coalesce(floor_score, 0);

    -- 5. Score in full the chunks that could still reach the floor (a prefix of ids).
    SELECT count(*) INTO survivors FROM unnest(partials) x WHERE x + bound >= floor_score;
    IF survivors <= 50 * p_limit THEN  -- few: read just their postings
        RETURN QUERY
        SELECT f.chunk_id, f.score
        FROM bm25_score(p_collection, lexemes, idfs, ids[1:survivors], avg_length, k1, b) f
        ORDER BY 2 DESC, 1 LIMIT p_limit;
    ELSE
        RETURN QUERY
        SELECT f.chunk_id, f.score
        FROM bm25_complete(p_collection, lexemes[1:optional], idfs[1:optional],
                           ids[1:survivors], partials[1:survivors], avg_length, k1, b) f
        ORDER BY 2 DESC, 1 LIMIT p_limit;
    END IF;
END
$$;

-- The full-text GIN index served the OR-of-words search that BM25 replaces.
DROP INDEX IF EXISTS chunks_tsv;
