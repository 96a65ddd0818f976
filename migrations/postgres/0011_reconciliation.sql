-- When reconciliation last asked the bank about an open attempt: the least
-- recently asked go first, so no open attempt is starved by older ones.
ALTER TABLE payment_attempts ADD COLUMN checked_at BIGINT;
