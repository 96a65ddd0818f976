-- Live and test modes. A seller's account has a live side and a test side,
-- each a row of `sellers` with its own keys and objects; `account_id` ties
-- the two together (a live row's own id). Every object of a seller belongs
-- to that row's mode, so nothing crosses from one mode to the other.
ALTER TABLE sellers ADD COLUMN livemode BIGINT NOT NULL DEFAULT 1;
ALTER TABLE sellers ADD COLUMN account_id TEXT;
UPDATE sellers SET account_id = id;
-- The embedded demo lives in test mode only.
UPDATE sellers SET livemode = 0 WHERE is_demo = 1;
CREATE UNIQUE INDEX sellers_one_row_per_mode ON sellers (account_id, livemode);
-- Buying from this seller needs a viewer token the seller signed (its own
-- viewers); anonymous viewers may watch but not hold.
ALTER TABLE sellers ADD COLUMN signed_viewers_only BIGINT NOT NULL DEFAULT 0;
