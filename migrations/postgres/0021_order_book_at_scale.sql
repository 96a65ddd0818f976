-- The order book at a million orders: a stream purchase names its stream on
-- the order itself (no join to filter by it), and each filter of the book
-- walks an index in the book's own order (newest first, then id), so a page
-- reads about as many rows as it shows.
ALTER TABLE orders ADD COLUMN stream_id TEXT;
UPDATE orders SET stream_id = (SELECT f.stream_id FROM offers f WHERE f.id = orders.offer_id)
    WHERE offer_id IS NOT NULL;
CREATE INDEX orders_book_stream ON orders (seller_id, stream_id, created_at, id);
CREATE INDEX orders_book_offer ON orders (seller_id, offer_id, created_at, id);
CREATE INDEX orders_book_state ON orders (seller_id, state, created_at, id);
CREATE INDEX orders_book_reference ON orders (seller_id, reference);
-- The buyer's contact, as the book's email and phone filters look for it.
CREATE INDEX checkout_sessions_by_email ON checkout_sessions (LOWER(customer_email));
CREATE INDEX checkout_sessions_by_phone ON checkout_sessions (customer_phone);
-- orders_book covers what this one did.
DROP INDEX orders_by_seller;
