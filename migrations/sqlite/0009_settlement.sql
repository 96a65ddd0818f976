-- When a paid stream purchase was settled with the stock: its hold sold,
-- the stock taken again, or the money given back. A paid stream order
-- without it is settled again by a background worker (a node may have
-- stopped between taking the payment and selling the hold).
ALTER TABLE orders ADD COLUMN settled_at BIGINT;
CREATE INDEX orders_unsettled ON orders (updated_at)
    WHERE settled_at IS NULL AND hold_id IS NOT NULL AND state = 'succeeded';
