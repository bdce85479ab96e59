-- Metadata filters on /query and /retrieve.
--
-- A document's attributes (S3 user metadata, tags and sidecar, merged) are kept once, in
-- documents.metadata -> 'attributes', not copied to its chunks: a sidecar or tag change
-- then rewrites one row, not every chunk (each chunk rewrite would re-insert its vector
-- into the HNSW index and its postings into the BM25 tables). A search first selects the
-- matching documents (this index), then searches their chunks.

-- eq / in: containment (@>), which jsonb_path_ops answers from one hash of key and value.
-- (jsonb_ops would also serve `exists`, but answers containment by intersecting the
-- key's entries, every document's when all have the key: 5x slower in
-- bench/filtered_recall.py. `exists` reads the collection's documents instead.)
CREATE INDEX IF NOT EXISTS documents_attributes
    ON documents USING gin ((metadata -> 'attributes') jsonb_path_ops);

-- The number a JSON value holds, for gt / gte / lt / lte: a JSON number, or a string that
-- reads as one (tags and user metadata are strings); NULL for anything else. The pattern
-- keeps the cast from ever failing (no NaN, no Infinity, no exponent numeric overflows).
CREATE OR REPLACE FUNCTION ragline_number(value jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE jsonb_typeof(value)
        WHEN 'number' THEN value::numeric
        WHEN 'string' THEN CASE
            WHEN length(value #>> '{}') <= 100
             AND value #>> '{}' ~ '^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]{1,3})?$'
            THEN (value #>> '{}')::numeric
        END
    END
$$;

-- The moment an ISO 8601 date or time string names, for ranges on dates: a date alone is
-- midnight UTC, a time without an offset is UTC (so the result never depends on the
-- session's time zone); NULL for anything else, including impossible dates (2024-02-30).
CREATE OR REPLACE FUNCTION ragline_moment(value jsonb) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN pg_input_is_valid(m.text, 'timestamptz') THEN m.text::timestamptz END
    FROM (SELECT CASE
        WHEN jsonb_typeof(value) IS DISTINCT FROM 'string' THEN NULL
        WHEN value #>> '{}' ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'
            THEN (value #>> '{}') || 'T00:00:00+00:00'
        WHEN value #>> '{}' ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?$'
            THEN (value #>> '{}') || '+00:00'
        WHEN value #>> '{}' ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[-+][0-9]{2}:[0-9]{2})$'
            THEN value #>> '{}'
    END AS text) m
$$;

-- The best `p_limit` of the chunks `p_chunks` for a query by Okapi BM25: the chunks a
-- filter selected, scored exactly as bm25_search scores them (collection-wide IDF and
-- mean length), so a filter changes which chunks compete, never their scores.
CREATE OR REPLACE FUNCTION bm25_search_among(
    p_collection text, p_query text, p_limit integer, p_chunks bigint[],
    k1 double precision DEFAULT 1.2, b double precision DEFAULT 0.75
) RETURNS TABLE (chunk_id bigint, score double precision)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    n_chunks    double precision;
    avg_length  double precision;
    lexemes     text[];
    idfs        double precision[];
BEGIN
    SELECT s.chunks, s.tokens::double precision / greatest(s.chunks, 1)
    INTO n_chunks, avg_length
    FROM bm25_collections s WHERE s.collection = p_collection;
    IF n_chunks IS NULL OR n_chunks = 0 OR p_limit <= 0 OR cardinality(p_chunks) = 0 THEN
        RETURN;
    END IF;
    SELECT array_agg(t.lexeme ORDER BY t.df DESC, t.lexeme),
           array_agg(ln(1 + (n_chunks - t.df + 0.5) / (t.df + 0.5)) ORDER BY t.df DESC, t.lexeme)
    INTO lexemes, idfs
    FROM bm25_terms t
    WHERE t.collection = p_collection AND t.df > 0
      AND t.lexeme IN (SELECT q.lexeme FROM unnest(to_tsvector('english', p_query)) q);
    IF lexemes IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT f.chunk_id, f.score
    FROM bm25_score(p_collection, lexemes, idfs, p_chunks, avg_length, k1, b) f
    ORDER BY 2 DESC, 1 LIMIT p_limit;
END
$$;
