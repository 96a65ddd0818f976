-- Fulfilment: after payment an order moves through seller-driven states
-- (new, confirmed, packed, shipped, delivered; or cancelled, returned),
-- forward only. NULL until the order is paid.
ALTER TABLE orders ADD COLUMN fulfilment TEXT CHECK (fulfilment IN ('new', 'confirmed', 'packed', 'shipped',
    'delivered', 'cancelled', 'returned'));
-- When the order entered its fulfilment state.
ALTER TABLE orders ADD COLUMN fulfilment_at BIGINT;
-- When a paid order still not confirmed was flagged (the seller's
-- confirmation deadline passed).
ALTER TABLE orders ADD COLUMN unconfirmed_at BIGINT;
ALTER TABLE orders ADD COLUMN carrier TEXT;
ALTER TABLE orders ADD COLUMN tracking_number TEXT;
-- How long a seller has to confirm a paid order before it is flagged
-- (NULL: never flagged).
ALTER TABLE sellers ADD COLUMN confirm_within_ms BIGINT;

-- Every fulfilment move: who made it, when, with what. A move that refunds
-- (cancelled: all that is left; returned: what the seller chose) names the
-- amount, and the refund once made; one not made yet is retried.
CREATE TABLE fulfilment_moves (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    order_id         TEXT NOT NULL REFERENCES orders (id),
    from_state       TEXT NOT NULL,
    to_state         TEXT NOT NULL,
    actor            TEXT NOT NULL,
    carrier          TEXT,
    tracking_number  TEXT,
    note             TEXT,
    refund_minor     BIGINT NOT NULL DEFAULT 0 CHECK (refund_minor >= 0),
    refund_id        TEXT,
    at               BIGINT NOT NULL
);
CREATE INDEX fulfilment_moves_by_order ON fulfilment_moves (order_id, seq);
CREATE INDEX fulfilment_moves_refunds_due ON fulfilment_moves (at) WHERE refund_minor > 0 AND refund_id IS NULL;
-- The order book by fulfilment state, and the confirmation watch.
CREATE INDEX orders_book_fulfilment ON orders (seller_id, fulfilment, created_at, id);
CREATE INDEX orders_unconfirmed ON orders (fulfilment_at) WHERE fulfilment = 'new' AND unconfirmed_at IS NULL;
-- Which order a webhook message is about, so an order shows its deliveries.
ALTER TABLE webhook_messages ADD COLUMN order_id TEXT;
CREATE INDEX webhook_messages_by_order ON webhook_messages (order_id, created_at);
