-- Sellers (tenants) and their API keys. Keys are stored as SHA-256 hashes only:
-- a key is 128+ random bits, so a fast hash is enough and lookups stay O(1).
CREATE TABLE sellers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    -- Marks the seller made by the embedded demo, so a restart finds it again.
    is_demo     BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    key_hash    TEXT PRIMARY KEY,
    seller_id   TEXT NOT NULL REFERENCES sellers (id),
    -- The first characters of the key, to tell keys apart in listings.
    key_prefix  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX api_keys_by_seller ON api_keys (seller_id);

-- All times are milliseconds since the Unix epoch (BIGINT), the same in every
-- supported database.
CREATE TABLE streams (
    id             TEXT PRIMARY KEY,
    seller_id      TEXT NOT NULL REFERENCES sellers (id),
    title          TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('scheduled', 'live', 'ended')),
    pinned_lot_id  TEXT,
    created_at     BIGINT NOT NULL,
    live_at        BIGINT,
    ended_at       BIGINT
);
CREATE INDEX streams_by_seller ON streams (seller_id, created_at);

CREATE TABLE lots (
    id           TEXT PRIMARY KEY,
    stream_id    TEXT NOT NULL REFERENCES streams (id),
    seller_id    TEXT NOT NULL REFERENCES sellers (id),
    title        TEXT NOT NULL,
    description  TEXT NOT NULL,
    image_url    TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX lots_by_stream ON lots (stream_id, created_at);

CREATE TABLE offers (
    id                TEXT PRIMARY KEY,
    lot_id            TEXT NOT NULL REFERENCES lots (id),
    stream_id         TEXT NOT NULL REFERENCES streams (id),
    seller_id         TEXT NOT NULL REFERENCES sellers (id),
    price_minor       BIGINT NOT NULL CHECK (price_minor > 0),
    currency          TEXT NOT NULL,
    quantity          BIGINT NOT NULL CHECK (quantity > 0),
    per_buyer_limit   BIGINT NOT NULL CHECK (per_buyer_limit > 0),
    duration_ms       BIGINT,
    end_at_requested  BIGINT,
    hold_ttl_ms       BIGINT NOT NULL CHECK (hold_ttl_ms > 0),
    state             TEXT NOT NULL CHECK (state IN ('draft', 'live', 'ended')),
    end_reason        TEXT CHECK (end_reason IN ('time', 'sold_out', 'cancelled')),
    created_at        BIGINT NOT NULL,
    started_at        BIGINT,
    ends_at           BIGINT,
    ended_at          BIGINT,
    CHECK ((duration_ms IS NULL) <> (end_at_requested IS NULL))
);
CREATE INDEX offers_by_stream ON offers (stream_id, created_at);
-- At most one live offer per lot.
CREATE UNIQUE INDEX offers_one_live_per_lot ON offers (lot_id) WHERE state = 'live';
-- The offer timer's scan: live offers by end time.
CREATE INDEX offers_live_by_end ON offers (ends_at) WHERE state = 'live';

-- Units sold: the durable record the stock engines are rebuilt from. One row
-- per committed hold; the hold id makes a commit idempotent.
CREATE TABLE sales (
    hold_id       TEXT PRIMARY KEY,
    offer_id      TEXT NOT NULL REFERENCES offers (id),
    buyer_id      TEXT NOT NULL,
    quantity      BIGINT NOT NULL CHECK (quantity > 0),
    committed_at  BIGINT NOT NULL
);
CREATE INDEX sales_by_offer ON sales (offer_id);
