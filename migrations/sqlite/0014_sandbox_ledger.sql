-- The sandbox acquirer's own book: one verdict per payment, what its
-- status API answers (reconciliation reads it). The first decision wins:
-- a payment cancelled because a newer attempt started can no longer be
-- paid, and one paid can no longer be cancelled.
CREATE TABLE sandbox_payments (
    attempt_id  TEXT PRIMARY KEY,
    status      TEXT NOT NULL,
    decided_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
