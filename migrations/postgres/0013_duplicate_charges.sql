-- A payment that succeeded on an order another attempt had already paid is
-- a duplicate charge: marked on the attempt, refunded in full by Haul, and
-- its refund kept apart from the order's own refunds (kind 'duplicate'
-- does not count in orders.refunded_minor).
ALTER TABLE payment_attempts ADD COLUMN duplicate BIGINT NOT NULL DEFAULT 0;
ALTER TABLE refunds ADD COLUMN kind TEXT NOT NULL DEFAULT 'order';
CREATE INDEX refunds_by_attempt ON refunds (attempt_id, kind);
