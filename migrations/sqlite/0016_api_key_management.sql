-- API keys a seller manages: an id to name one by, a name, when it was
-- last used (to the minute), and when a rotated key stops working.
ALTER TABLE api_keys ADD COLUMN id TEXT;
ALTER TABLE api_keys ADD COLUMN name TEXT;
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
UPDATE api_keys SET id = 'key_' || substr(key_hash, 1, 24), name = 'default' WHERE id IS NULL;
CREATE UNIQUE INDEX api_keys_id ON api_keys (id);
