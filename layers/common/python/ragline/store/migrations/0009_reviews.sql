-- The review queue: answers a person approves, corrects or rejects, per tenant.
--
-- state: recorded (kept for RAGLINE_REVIEW_FEEDBACK_HOURS so that a thumbs-down can queue
-- it; not in the queue), pending (queued), claimed (a reviewer took it), then one of
-- approved, corrected, rejected (decided: final, a second decision is refused).
-- reason: why it was queued: flagged (a post-check's review_reason), critical (the
-- profile reviews every answer), thumbs_down (the caller rated it down).
CREATE TABLE IF NOT EXISTS review_items (
    id              uuid PRIMARY KEY,
    tenant          text NOT NULL REFERENCES tenants (id),
    request_id      text NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    queued_at       timestamptz,
    state           text NOT NULL CHECK (state IN
                    ('recorded', 'pending', 'claimed', 'approved', 'corrected', 'rejected')),
    reason          text CHECK (reason IN ('flagged', 'critical', 'thumbs_down')),
    reason_detail   text,
    held            boolean NOT NULL DEFAULT false,
    collection      text NOT NULL,
    profile         text NOT NULL,
    question        text NOT NULL,
    answer          text NOT NULL,
    citations       jsonb NOT NULL DEFAULT '[]',
    passages        jsonb NOT NULL DEFAULT '[]',
    provider        text NOT NULL,
    model           text NOT NULL,
    prompt          text NOT NULL,
    cost_usd        double precision,
    claimed_by      text,
    claimed_at      timestamptz,
    decided_by      text,
    decided_at      timestamptz,
    decision_reason text,
    decision_category text,
    must_contain    jsonb,
    final_answer    text,
    final_citations jsonb
);
CREATE INDEX IF NOT EXISTS review_items_queue ON review_items (tenant, state, queued_at);
CREATE INDEX IF NOT EXISTS review_items_recorded ON review_items (created_at)
    WHERE state = 'recorded';
