-- Idempotency-Key on the seller API's creating calls (Stripe's semantics):
-- the same key with the same request answers the stored response; with
-- another request, an error. Kept at least 24 hours.
CREATE TABLE idempotency_keys (
    -- Whose key: the seller.
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    -- SHA-256 of the method, path and body of the first request.
    fingerprint  TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('in_flight', 'done')),
    status       BIGINT,
    response     TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
