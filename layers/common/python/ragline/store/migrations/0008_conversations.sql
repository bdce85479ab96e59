-- Conversations kept by the server: a session (a UUID the caller chose) belongs to the
-- tenant that started it, and expires ``session_ttl_hours`` after its last turn. Each
-- turn keeps the question as asked, the standalone query it was searched for, and the
-- answer, for the next follow-up's rewrite and prompt.
CREATE TABLE IF NOT EXISTS conversations (
    id         text PRIMARY KEY,
    tenant     text NOT NULL REFERENCES tenants (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_expires_at ON conversations (expires_at);

CREATE TABLE IF NOT EXISTS conversation_turns (
    session_id  text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    n           integer NOT NULL,
    request_id  text NOT NULL,
    question    text NOT NULL,
    search_query text NOT NULL,
    answer      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, n)
);

-- The rewrite of a follow-up into a search query is priced on its own: its model, tokens
-- and cost (a part of cost_usd) beside the answer's.
ALTER TABLE queries ADD COLUMN IF NOT EXISTS session_id text;
ALTER TABLE queries ADD COLUMN IF NOT EXISTS rewrite_model text;
ALTER TABLE queries ADD COLUMN IF NOT EXISTS rewrite_input_tokens integer NOT NULL DEFAULT 0;
ALTER TABLE queries ADD COLUMN IF NOT EXISTS rewrite_output_tokens integer NOT NULL DEFAULT 0;
ALTER TABLE queries ADD COLUMN IF NOT EXISTS rewrite_cost_usd double precision DEFAULT 0;  -- NULL: not priced
