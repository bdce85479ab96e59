-- Which version of its S3 object each document was made from, so that an ingest that
-- read an older version never overwrites one made from a newer version, and `ragline
-- sync` can tell unchanged objects from the listing alone (ETag, size, last modified).
ALTER TABLE documents
    ADD COLUMN IF NOT EXISTS object_etag       text,
    ADD COLUMN IF NOT EXISTS object_version_id text,         -- in a versioned bucket
    ADD COLUMN IF NOT EXISTS object_modified   timestamptz,  -- whole seconds, as HEAD gives it
    ADD COLUMN IF NOT EXISTS object_sequencer  text;         -- the S3 event's, when it named this version

-- `ragline sync` reads the documents of one bucket by source prefix.
CREATE INDEX IF NOT EXISTS documents_source_prefix ON documents (source text_pattern_ops);
