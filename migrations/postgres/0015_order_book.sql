-- The order book's walk: one seller's orders, newest first, ties broken
-- by id (the cursor is the last row's creation time and id).
CREATE INDEX orders_book ON orders (seller_id, created_at, id);
