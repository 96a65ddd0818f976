-- A viewer's own orders, newest first.
CREATE INDEX orders_by_buyer ON orders (buyer_id, created_at, id);
