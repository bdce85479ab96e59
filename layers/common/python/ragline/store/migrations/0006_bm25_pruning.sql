-- Keyword search reads fewer postings for the same exact Okapi BM25 ranking.
--
-- bm25_search (0003) chose its essential terms from a floor found by scoring every chunk
-- that holds the query's rarest terms, then completed each survivor by reading the whole
-- posting list of every optional term at once. At 100k chunks, questions mixing one rare
-- word with half a dozen common ones spent most of their time in that completion. Here:
--   * the first floor comes from the chunks that score best on the rarer terms (up to a
--     few thousand postings), scored in full: a higher floor, so more terms are optional;
--   * the optional terms are added one at a time, rarest first: after each, a chunk that
--     cannot reach the floor even with every remaining term is dropped, and the floor
--     rises to the p_limit-th best partial score (partial scores never exceed full ones).
--     A term is read by probing the surviving chunks when they are few against its
--     posting list, by one scan of the list otherwise.
-- Each term's share of a score is rounded to a multiple of 2^-32 (bm25_term). Sums of such
-- numbers are exact in double precision while scores stay below 2^21, so a chunk's score
-- no longer depends on the order its terms were added in: a sort-based aggregate could
-- add them in any order, and two copies of one chunk could differ in the last bit and
-- rank out of id order. The rounding moves a score by less than 1e-9 of itself.
-- bm25_complete is no longer needed.

CREATE OR REPLACE FUNCTION bm25_term(
    idf double precision, tf integer, length integer,
    avg_length double precision, k1 double precision, b double precision
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT round(idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avg_length))
                 * 4294967296.0) / 4294967296.0
$$;

CREATE OR REPLACE FUNCTION bm25_score(
    p_collection text, lexemes text[], idfs double precision[], candidates bigint[],
    avg_length double precision, k1 double precision, b double precision
) RETURNS TABLE (chunk_id bigint, score double precision)
LANGUAGE sql STABLE AS $$
    SELECT p.chunk_id, sum(bm25_term(q.idf, p.tf, p.length, avg_length, k1, b))
    FROM unnest(lexemes, idfs) AS q(lexeme, idf)
    CROSS JOIN LATERAL (
        SELECT e.chunk_id, e.tf, e.length FROM bm25_postings e
        WHERE e.collection = p_collection AND e.lexeme = q.lexeme
          AND e.chunk_id = ANY(candidates)
        OFFSET 0
    ) p
    GROUP BY p.chunk_id
$$;

CREATE OR REPLACE FUNCTION bm25_score_all(
    p_collection text, lexemes text[], idfs double precision[],
    avg_length double precision, k1 double precision, b double precision
) RETURNS TABLE (chunk_id bigint, score double precision)
LANGUAGE sql STABLE AS $$
    SELECT p.chunk_id, sum(bm25_term(q.idf, p.tf, p.length, avg_length, k1, b))
    FROM unnest(lexemes, idfs) AS q(lexeme, idf)
    CROSS JOIN LATERAL (
        SELECT e.chunk_id, e.tf, e.length FROM bm25_postings e
        WHERE e.collection = p_collection AND e.lexeme = q.lexeme
        OFFSET 0
    ) p
    GROUP BY p.chunk_id
$$;

CREATE OR REPLACE FUNCTION bm25_search(
    p_collection text, p_query text, p_limit integer,
    k1 double precision DEFAULT 1.2, b double precision DEFAULT 0.75
) RETURNS TABLE (chunk_id bigint, score double precision)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    n_chunks    double precision;
    avg_length  double precision;
    lexemes     text[];              -- the query's terms present in the collection,
    idfs        double precision[];  -- commonest first
    frequencies integer[];
    terms       integer;
    rare        integer := 0;        -- lexemes[terms - rare + 1:] make the first floor
    seen        bigint := 0;
    floor_score double precision := 0;
    optional    integer := 0;        -- lexemes[1:optional] are optional
    bound       double precision := 0;  -- their bounds, summed
    ids         bigint[];
    partials    double precision[];
    n           integer;
    i           integer;
    term        text;
    weight      double precision;
    -- Scores are sums of floats: a chunk exactly at the floor must never be dropped.
    slack       constant double precision := 1e-9;
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
    terms := array_length(lexemes, 1);

    -- 1. A first floor: the rarest terms, enough to fill the top and at most a few
    -- thousand postings beyond that; the 4 * p_limit chunks that score best on them are
    -- scored in full, and the p_limit-th best of those is a score the top cannot fall below.
    FOR i IN REVERSE terms..1 LOOP
        rare := rare + 1;
        seen := seen + frequencies[i];
        EXIT WHEN seen >= p_limit AND (i = 1 OR seen + frequencies[i - 1] > 2000 + 4 * p_limit);
    END LOOP;
    IF rare < terms THEN
        SELECT min(s.score) INTO floor_score FROM (
            SELECT f.score
            FROM bm25_score(p_collection, lexemes, idfs,
                            ARRAY(SELECT e.chunk_id
                                  FROM bm25_score_all(p_collection, lexemes[terms - rare + 1:],
                                                      idfs[terms - rare + 1:], avg_length, k1, b) e
                                  ORDER BY e.score DESC, e.chunk_id LIMIT 4 * p_limit),
                            avg_length, k1, b) f
            ORDER BY 1 DESC LIMIT p_limit
        ) s HAVING count(*) >= p_limit;
        floor_score := coalesce(floor_score, 0);  -- fewer chunks than p_limit: no floor
    END IF;

    -- 2. The optional terms: the commonest, whose bounds sum below the floor. A chunk
    -- holding none of the other ("essential") terms cannot reach the top.
    FOR i IN 1..terms LOOP
        EXIT WHEN bound + idfs[i] * (k1 + 1) >= floor_score;
        bound := bound + idfs[i] * (k1 + 1);
        optional := i;
    END LOOP;

    -- 3. Every chunk holding an essential term, with its score on those terms.
    SELECT array_agg(e.chunk_id), array_agg(e.score)
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
        SELECT f.score
        FROM bm25_score(p_collection, lexemes, idfs,
                        ARRAY(SELECT u.id FROM unnest(ids, partials) AS u(id, partial)
                              ORDER BY u.partial DESC, u.id LIMIT 4 * p_limit),
                        avg_length, k1, b) f
        ORDER BY 1 DESC LIMIT p_limit
    ) s HAVING count(*) >= p_limit;
    floor_score := coalesce(floor_score, 0);

    -- 5. The optional terms one at a time, rarest first (largest bound first, so the
    -- most chunks drop out early).
    FOR i IN REVERSE optional..1 LOOP
        SELECT array_agg(u.id), array_agg(u.partial) INTO ids, partials
        FROM unnest(ids, partials) AS u(id, partial)
        WHERE u.partial + bound >= floor_score - slack;
        n := coalesce(array_length(ids, 1), 0);
        EXIT WHEN n = 0;
        term := lexemes[i];
        weight := idfs[i];
        bound := bound - weight * (k1 + 1);
        IF n * 8 < frequencies[i] THEN  -- few survivors: look each one up
            SELECT array_agg(u.id), array_agg(u.partial + coalesce(p.contribution, 0))
            INTO ids, partials
            FROM unnest(ids, partials) AS u(id, partial)
            LEFT JOIN LATERAL (
                SELECT bm25_term(weight, e.tf, e.length, avg_length, k1, b) AS contribution
                FROM bm25_postings e
                WHERE e.collection = p_collection AND e.lexeme = term AND e.chunk_id = u.id
                OFFSET 0
            ) p ON true;
        ELSE  -- many: one pass over the term's postings, joined by hash
            SELECT array_agg(u.id),
                   array_agg(u.partial + coalesce(bm25_term(weight, p.tf, p.length, avg_length, k1, b), 0))
            INTO ids, partials
            FROM unnest(ids, partials) AS u(id, partial)
            LEFT JOIN (
                SELECT e.chunk_id, e.tf, e.length FROM bm25_postings e
                WHERE e.collection = p_collection AND e.lexeme = term
                OFFSET 0
            ) p ON p.chunk_id = u.id;
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

DROP FUNCTION IF EXISTS bm25_complete(
    text, text[], double precision[], bigint[], double precision[],
    double precision, double precision, double precision
);
