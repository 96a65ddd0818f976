-- A seller's widget secret signs checkout parameters on sites without a
-- backend (HMAC-SHA256 over a canonical string, with an expiry).
ALTER TABLE sellers ADD COLUMN widget_secret TEXT;
