-- Refunds of paid orders, full or partial, through the acquirer of the
-- succeeded attempt. orders.refunded_minor is the running total.
CREATE TABLE refunds (
    id            TEXT PRIMARY KEY,
    order_id      TEXT NOT NULL REFERENCES orders (id),
    attempt_id    TEXT NOT NULL REFERENCES payment_attempts (id),
    amount_minor  BIGINT NOT NULL CHECK (amount_minor > 0),
    reason        TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX refunds_by_order ON refunds (order_id, created_at);
