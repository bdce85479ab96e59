-- Tenants, their API keys, and what each collection, document and logged query belongs to.
-- What existed before belongs to the tenant 'default'.
CREATE TABLE IF NOT EXISTS tenants (
    id         text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tenants (id) VALUES ('default') ON CONFLICT (id) DO NOTHING;

-- A key is shown once, when created; only its SHA-256 digest is kept (keys are random,
-- 256 bits, so a fast digest is enough: no password stretching needed). ``id`` is the
-- key's public part (``rgl_<id>_...``), for listing and revoking.
CREATE TABLE IF NOT EXISTS api_keys (
    id         text PRIMARY KEY,
    tenant     text NOT NULL REFERENCES tenants (id),
    digest     text NOT NULL UNIQUE,
    scopes     text[] NOT NULL
               CHECK (scopes <@ ARRAY['query', 'read', 'write', 'review', 'admin']::text[]),
    name       text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys (tenant);

-- A collection's name is global and owned by one tenant (its first ingest names it).
ALTER TABLE collections ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default'
    REFERENCES tenants (id);
ALTER TABLE documents ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default'
    REFERENCES tenants (id);
CREATE INDEX IF NOT EXISTS documents_tenant_source ON documents (tenant, source);
ALTER TABLE queries ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default';
CREATE INDEX IF NOT EXISTS queries_tenant_created_at ON queries (tenant, created_at);
