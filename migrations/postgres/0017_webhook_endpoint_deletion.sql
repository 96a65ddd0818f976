-- A deleted endpoint is kept (its delivery log refers to it) but never
-- shown, sent to or re-enabled again.
ALTER TABLE webhook_endpoints ADD COLUMN deleted_at BIGINT;
