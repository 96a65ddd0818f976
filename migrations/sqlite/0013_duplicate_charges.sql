-- A payment that succeeded on an order another attempt had already paid is
-- a duplicate charge: marked on the attempt, refunded in full by Haul, and
-- its refund kept apart from the order's own refunds (kind 'duplicate'
-- does not count in orders.refunded_minor).
ALTER TABLE payment_attempts ADD COLUMN duplicate BIGINT NOT NULL DEFAULT 0;
ALTER TABLE refunds ADD COLUMN kind TEXT NOT NULL DEFAULT 'order';
CREATE INDEX refunds_by_attempt ON refunds (attempt_id, kind);
-- One refund per duplicate charge, however many nodes try at once.
CREATE UNIQUE INDEX refunds_one_per_duplicate ON refunds (attempt_id) WHERE kind = 'duplicate';
-- The settlement worker's look for duplicates not refunded yet.
CREATE INDEX attempts_duplicates ON payment_attempts (updated_at) WHERE duplicate = 1;
-- An unpaid stream order's deadline (its hold's expiry, then the end of its
-- payment window): the order expires by it even if the hold is gone from
-- the stock engine (lost with Redis, say).
ALTER TABLE orders ADD COLUMN expires_at BIGINT;
CREATE INDEX orders_by_deadline ON orders (state, expires_at);
-- The sandbox acquirer's callbacks, written before the buyer hears "payment
-- sent" and delivered by a worker on any node until taken: no confirmation
-- lives only in one process's memory.
CREATE TABLE sandbox_callbacks (
    id           TEXT PRIMARY KEY,
    attempt_id   TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    body         TEXT NOT NULL,
    due_at       BIGINT NOT NULL,
    lease_until  BIGINT,
    tries        BIGINT NOT NULL DEFAULT 0,
    done_at      BIGINT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX sandbox_callbacks_due ON sandbox_callbacks (done_at, due_at);
