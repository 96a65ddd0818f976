-- A seller's accounts at acquiring banks, tried in `priority` order (lowest
-- first). `account` is the bank's public id of the seller (T-Bank
-- TerminalKey, CloudPayments Public ID, YooKassa shopId, Stripe account):
-- a notification names it, and it names one seller. The secret is sealed
-- (see payments::vault) and never leaves the server.
CREATE TABLE acquirer_accounts (
    id          TEXT PRIMARY KEY,
    seller_id   TEXT NOT NULL REFERENCES sellers (id),
    acquirer    TEXT NOT NULL,
    account     TEXT NOT NULL,
    secret      TEXT NOT NULL,
    -- JSON object of the bank's non-secret settings (e.g. the tax system).
    settings    TEXT NOT NULL,
    priority    BIGINT NOT NULL,
    enabled     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (acquirer, account)
);
CREATE INDEX acquirer_accounts_by_seller ON acquirer_accounts (seller_id, priority);

-- The account an attempt was made with (its credentials answer the bank's
-- notifications, status queries and refunds); NULL for the sandbox.
ALTER TABLE payment_attempts ADD COLUMN account_id TEXT;
