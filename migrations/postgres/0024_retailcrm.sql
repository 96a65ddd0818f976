-- The RetailCRM connector, per seller (optional): where its CRM is and how
-- Haul's orders map onto it (the API key sealed), and each paid order's
-- export, queued with its payment and sent by a worker with retries.
CREATE TABLE crm_connectors (
    seller_id      TEXT PRIMARY KEY REFERENCES sellers (id),
    base_url       TEXT NOT NULL,
    api_key        TEXT NOT NULL,
    site           TEXT NOT NULL,
    settings       TEXT NOT NULL,
    hook_token     TEXT NOT NULL UNIQUE,
    enabled        BIGINT NOT NULL DEFAULT 1,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE TABLE crm_exports (
    order_id       TEXT PRIMARY KEY,
    seller_id      TEXT NOT NULL REFERENCES sellers (id),
    state          TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    crm_id         TEXT,
    attempts       BIGINT NOT NULL DEFAULT 0,
    next_at        BIGINT NOT NULL,
    claimed_until  BIGINT NOT NULL DEFAULT 0,
    last_error     TEXT,
    created_at     BIGINT NOT NULL,
    done_at        BIGINT
);
CREATE INDEX crm_exports_due ON crm_exports (state, next_at);
