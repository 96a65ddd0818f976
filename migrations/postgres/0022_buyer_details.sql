-- Buyer details at checkout: what a seller's stream purchases ask for and
-- the delivery options they offer ('' for the seller's default, or a
-- stream's id), what each session asked and what its buyer gave, the
-- delivery's price on the order, and the details viewers chose to keep.
CREATE TABLE checkout_settings (
    seller_id   TEXT NOT NULL REFERENCES sellers (id),
    scope       TEXT NOT NULL,
    config      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (seller_id, scope)
);
ALTER TABLE checkout_sessions ADD COLUMN ask TEXT;
ALTER TABLE checkout_sessions ADD COLUMN buyer TEXT;
ALTER TABLE orders ADD COLUMN delivery_minor BIGINT NOT NULL DEFAULT 0;
CREATE TABLE buyer_profiles (
    seller_id     TEXT NOT NULL REFERENCES sellers (id),
    buyer_id      TEXT NOT NULL,
    details       TEXT NOT NULL,
    consented_at  BIGINT NOT NULL,
    PRIMARY KEY (seller_id, buyer_id)
);
