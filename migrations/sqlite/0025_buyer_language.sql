-- The buyer's language: each seller's default for its buyers' pages and
-- emails, and the language a checkout was made in (given by the seller
-- when it made the session, or by the buyer's page when paying), which
-- the bank's page and the buyer's emails follow.
ALTER TABLE sellers ADD COLUMN locale TEXT NOT NULL DEFAULT 'en';
ALTER TABLE checkout_sessions ADD COLUMN locale TEXT;
