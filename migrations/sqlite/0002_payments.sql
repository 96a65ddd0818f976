-- Orders (payment intents) and their attempts at acquirers. Amounts are
-- integers of minor units with an ISO 4217 currency; times are ms since the
-- Unix epoch.
CREATE TABLE orders (
    id              TEXT PRIMARY KEY,
    seller_id       TEXT NOT NULL REFERENCES sellers (id),
    state           TEXT NOT NULL CHECK (state IN ('created', 'pending', 'requires_action', 'succeeded',
                        'failed', 'cancelled', 'expired', 'partially_refunded', 'refunded')),
    amount_minor    BIGINT NOT NULL CHECK (amount_minor > 0),
    currency        TEXT NOT NULL,
    -- A stream purchase: the hold it pays for (one order per hold), its
    -- offer, and the buyer who holds it.
    hold_id         TEXT UNIQUE,
    offer_id        TEXT,
    buyer_id        TEXT,
    -- The seller's own reference (checkout on the seller's site).
    reference       TEXT,
    refunded_minor  BIGINT NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0),
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    CHECK (refunded_minor <= amount_minor)
);
CREATE INDEX orders_by_seller ON orders (seller_id, created_at);

CREATE TABLE payment_attempts (
    id              TEXT PRIMARY KEY,
    order_id        TEXT NOT NULL REFERENCES orders (id),
    acquirer        TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('created', 'pending', 'requires_action', 'succeeded',
                        'failed', 'cancelled')),
    amount_minor    BIGINT NOT NULL CHECK (amount_minor > 0),
    currency        TEXT NOT NULL,
    -- The acquirer's id of the payment, once it gave one.
    acquirer_ref    TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (acquirer, acquirer_ref)
);
CREATE INDEX payment_attempts_by_order ON payment_attempts (order_id);

-- Every state change of an order or an attempt: when, from what, why.
CREATE TABLE payment_transitions (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id     TEXT NOT NULL REFERENCES orders (id),
    -- Set when the attempt moved (the order may have moved with it).
    attempt_id   TEXT REFERENCES payment_attempts (id),
    subject      TEXT NOT NULL CHECK (subject IN ('order', 'attempt')),
    from_state   TEXT,
    to_state     TEXT NOT NULL,
    cause        TEXT NOT NULL,
    at           BIGINT NOT NULL
);
CREATE INDEX payment_transitions_by_order ON payment_transitions (order_id, seq);

-- Acquirer callbacks taken: the row is written in the same transaction as
-- the change it causes, so a callback takes effect exactly once.
CREATE TABLE callback_inbox (
    acquirer     TEXT NOT NULL,
    callback_id  TEXT NOT NULL,
    attempt_id   TEXT NOT NULL REFERENCES payment_attempts (id),
    reported     TEXT NOT NULL,
    -- applied, or ignored (a state the attempt had already moved past).
    outcome      TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    PRIMARY KEY (acquirer, callback_id)
);
