-- The query log: one row per answered query, with the figures of its response, and the
-- feedback a caller gives on it. The question text is kept only when a setting allows it.
CREATE TABLE IF NOT EXISTS queries (
    request_id          text PRIMARY KEY,
    created_at          timestamptz NOT NULL DEFAULT now(),
    collection          text NOT NULL,
    profile             text NOT NULL,
    provider            text NOT NULL,
    model               text NOT NULL,
    prompt              text NOT NULL,
    input_tokens        integer NOT NULL DEFAULT 0,
    output_tokens       integer NOT NULL DEFAULT 0,
    cached_input_tokens integer NOT NULL DEFAULT 0,
    embedding_tokens    integer NOT NULL DEFAULT 0,
    cost_usd            double precision,           -- NULL when a model is not priced
    cost_estimated      boolean NOT NULL DEFAULT false,
    retrieve_ms         double precision NOT NULL,
    generate_ms         double precision NOT NULL,
    total_ms            double precision NOT NULL,
    chunks_retrieved    integer NOT NULL DEFAULT 0,
    top_score           double precision,
    abstained           boolean NOT NULL,
    needs_review        boolean NOT NULL DEFAULT false,
    fallback            boolean NOT NULL DEFAULT false,
    status_code         integer NOT NULL DEFAULT 200,
    sources             text[] NOT NULL DEFAULT '{}',
    question            text,
    rating              text CHECK (rating IN ('up', 'down')),
    comment             text,
    rated_at            timestamptz
);
CREATE INDEX IF NOT EXISTS queries_created_at ON queries (created_at);
