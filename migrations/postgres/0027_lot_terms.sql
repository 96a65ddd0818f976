-- A lot's default sale terms (price, stock, per-buyer cap, how long an
-- offer runs, SKU) as JSON; the console's "launch offer" starts from them.
ALTER TABLE lots ADD COLUMN terms TEXT;
