-- A payment that succeeded on an order another attempt had already paid is
-- a duplicate charge: marked on the attempt, refunded in full by Haul, and
-- its refund kept apart from the order's own refunds (kind 'duplicate'
-- does not count in orders.refunded_minor).
ALTER TABLE payment_attempts ADD COLUMN duplicate BIGINT NOT NULL DEFAULT 0;
ALTER TABLE refunds ADD COLUMN kind TEXT NOT NULL DEFAULT 'order';
CREATE INDEX refunds_by_attempt ON refunds (attempt_id, kind);
-- An unpaid stream order's deadline (its hold's expiry, then the end of its
-- payment window): the order expires by it even if the hold is gone from
-- the stock engine (lost with Redis, say).
ALTER TABLE orders ADD COLUMN expires_at BIGINT;
CREATE INDEX orders_by_deadline ON orders (state, expires_at);
