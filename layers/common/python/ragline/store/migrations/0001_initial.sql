-- Documents, chunks and collections.
CREATE EXTENSION IF NOT EXISTS vector;

-- A collection records the embedding model its vectors come from, so a query is never
-- compared with vectors of another model or dimension.
CREATE TABLE IF NOT EXISTS collections (
    name            text PRIMARY KEY,
    embedding_model text NOT NULL,
    dimensions      integer NOT NULL CHECK (dimensions > 0),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS documents (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    collection    text NOT NULL,
    source        text NOT NULL UNIQUE,           -- s3://bucket/key or file:///path
    title         text,
    format        text,
    content_hash  text,                           -- sha256 of the object's bytes
    size_bytes    bigint,
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    status        text NOT NULL CHECK (status IN ('pending', 'ingested', 'skipped', 'failed')),
    error         text,
    chunk_count   integer NOT NULL DEFAULT 0,
    embedding_model text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS documents_collection_status ON documents (collection, status);

CREATE TABLE IF NOT EXISTS chunks (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id  uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    collection   text NOT NULL,
    ordinal      integer NOT NULL,
    section      text NOT NULL DEFAULT '',       -- heading path, "A > B > C"
    text         text NOT NULL,
    token_count  integer NOT NULL,
    metadata     jsonb NOT NULL DEFAULT '{}'::jsonb,
    dimensions   integer NOT NULL,
    -- Untyped so collections of different models share the table; each dimension gets its
    -- own partial HNSW index over embedding::vector(n) (created with the collection).
    embedding    vector NOT NULL,
    tsv          tsvector GENERATED ALWAYS AS (
                     setweight(to_tsvector('english', section), 'A')
                     || setweight(to_tsvector('english', text), 'B')
                 ) STORED,
    UNIQUE (document_id, ordinal)
);
CREATE INDEX IF NOT EXISTS chunks_collection ON chunks (collection);
CREATE INDEX IF NOT EXISTS chunks_tsv ON chunks USING gin (tsv);
