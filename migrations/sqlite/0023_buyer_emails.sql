-- Emails to buyers (paid with the receipt link, shipped with the tracking,
-- refunded): queued in the same transaction as the change they tell of,
-- once per change (`key`), sent by a worker on any node with retries;
-- sellers' own templates over the default; buyers who opted out.
CREATE TABLE buyer_emails (
    id             TEXT PRIMARY KEY,
    key            TEXT NOT NULL UNIQUE,
    seller_id      TEXT NOT NULL REFERENCES sellers (id),
    order_id       TEXT NOT NULL,
    kind           TEXT NOT NULL,
    to_addr        TEXT NOT NULL,
    data           TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed', 'skipped')),
    attempts       BIGINT NOT NULL DEFAULT 0,
    next_at        BIGINT NOT NULL,
    claimed_until  BIGINT NOT NULL DEFAULT 0,
    last_error     TEXT,
    sent_at        BIGINT,
    created_at     BIGINT NOT NULL
);
CREATE INDEX buyer_emails_due ON buyer_emails (state, next_at);
CREATE INDEX buyer_emails_by_order ON buyer_emails (order_id);
CREATE TABLE mail_templates (
    seller_id   TEXT NOT NULL REFERENCES sellers (id),
    kind        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (seller_id, kind)
);
CREATE TABLE mail_opt_outs (
    seller_id  TEXT NOT NULL REFERENCES sellers (id),
    email      TEXT NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (seller_id, email)
);
