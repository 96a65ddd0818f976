-- Seller webhooks: endpoints, the outbox of messages (written in the same
-- transaction as the change they report) and one delivery per endpoint.
CREATE TABLE webhook_endpoints (
    id               TEXT PRIMARY KEY,
    seller_id        TEXT NOT NULL REFERENCES sellers (id),
    url              TEXT NOT NULL,
    -- whsec_… ; during a rotation the previous one signs too until previous_until.
    secret           TEXT NOT NULL,
    previous_secret  TEXT,
    previous_until   BIGINT,
    -- Space-separated event types, or '*' for all.
    event_types      TEXT NOT NULL,
    enabled          BIGINT NOT NULL DEFAULT 1,
    disabled_reason  TEXT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_by_seller ON webhook_endpoints (seller_id);

CREATE TABLE webhook_messages (
    id          TEXT PRIMARY KEY,
    seller_id   TEXT NOT NULL REFERENCES sellers (id),
    event_type  TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    message_id   TEXT NOT NULL REFERENCES webhook_messages (id),
    endpoint_id  TEXT NOT NULL REFERENCES webhook_endpoints (id),
    state        TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts     BIGINT NOT NULL DEFAULT 0,
    next_at      BIGINT NOT NULL,
    -- A worker's claim: others leave the row alone until it lapses.
    claimed_until BIGINT NOT NULL DEFAULT 0,
    last_status  BIGINT,
    last_error   TEXT,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (message_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_at);
