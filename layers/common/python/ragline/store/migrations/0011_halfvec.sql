-- Chunk vectors in half precision (pgvector's halfvec): 2 bytes a dimension instead of 4,
-- in the table and in each dimension's HNSW index (issue 23). On real MiniLM vectors
-- (10k to 62k chunks) recall@10 against exact search is float32's within 0.006 at every
-- ef_search, and the index is 57% of the size (bench/vector_recall.py, docs/benchmarks.md).
-- halfvec also lifts the HNSW limit from 2,000 dimensions to 4,000 (3,072-d embeddings).
--
-- The column stays untyped, so collections of different models share the table; each
-- dimension's partial index is now over embedding::halfvec(n) with halfvec_cosine_ops.
-- Existing rows are converted in place: every index over the old vectors is dropped, the
-- column rewritten, and each index built again with the parameters (m, ef_construction)
-- it had. The rewrite locks chunks for its duration (21 s at 62k chunks on the 2-core
-- development machine, nearly all of it the index build). A vector that does not fit
-- half precision (a component beyond +-65504; the embedders normalize every vector, so
-- none of theirs) stops the migration with nothing changed.
DO $$
DECLARE
    names   text[];
    dims    integer[];
    options text[];
    i       integer;
BEGIN
    IF (SELECT atttypid FROM pg_attribute
        WHERE attrelid = 'chunks'::regclass AND attname = 'embedding') = 'halfvec'::regtype THEN
        RETURN;
    END IF;
    SELECT coalesce(array_agg(c.relname ORDER BY c.relname), ARRAY[]::text[]),
           coalesce(array_agg(substring(c.relname FROM '_([0-9]+)$')::integer ORDER BY c.relname),
                    ARRAY[]::integer[]),
           coalesce(array_agg(coalesce(array_to_string(c.reloptions, ', '), '') ORDER BY c.relname),
                    ARRAY[]::text[])
    INTO names, dims, options
    FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
    WHERE x.indrelid = 'chunks'::regclass AND c.relname ~ '^chunks_embedding_hnsw_[0-9]+$';
    FOR i IN 1 .. cardinality(names) LOOP
        EXECUTE format('DROP INDEX %I', names[i]);
    END LOOP;
    BEGIN
        ALTER TABLE chunks ALTER COLUMN embedding TYPE halfvec USING embedding::halfvec;
    EXCEPTION WHEN data_exception THEN
        RAISE EXCEPTION 'chunks.embedding cannot be stored in half precision: %', SQLERRM
            USING HINT = 'A component is beyond +-65504: re-embed the collection holding it'
                ' with a normalized model, or delete it, then migrate again.';
    END;
    FOR i IN 1 .. cardinality(names) LOOP
        EXECUTE format(
            'CREATE INDEX %I ON chunks USING hnsw ((embedding::halfvec(%s)) halfvec_cosine_ops)'
            '%s WHERE dimensions = %s',
            names[i], dims[i],
            CASE WHEN options[i] <> '' THEN ' WITH (' || options[i] || ')' ELSE '' END,
            dims[i]);
    END LOOP;
END
$$;
