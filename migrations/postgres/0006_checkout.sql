-- Checkout sessions for sellers' own sites: what is bought (54-FZ receipt
-- items), where the buyer returns, who to send the receipt to. Each has its
-- order; the order's state is the payment's truth.
CREATE TABLE checkout_sessions (
    id              TEXT PRIMARY KEY,
    seller_id       TEXT NOT NULL REFERENCES sellers (id),
    order_id        TEXT NOT NULL UNIQUE REFERENCES orders (id),
    -- JSON array of receipt items.
    items           TEXT NOT NULL,
    success_url     TEXT NOT NULL,
    cancel_url      TEXT NOT NULL,
    customer_email  TEXT,
    customer_phone  TEXT,
    expires_at      BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX checkout_sessions_by_seller ON checkout_sessions (seller_id, created_at);
