-- The console's people: a person signs in with an email and a password
-- (Argon2id, PHC string) or a one-time email link, and belongs to seller
-- accounts (`sellers.account_id`, both modes) with one role in each.
CREATE TABLE people (
    id              TEXT PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    password_hash   TEXT,
    -- The console's language for this person (en, ru).
    locale          TEXT NOT NULL DEFAULT 'en',
    created_at      BIGINT NOT NULL
);
CREATE TABLE members (
    account_id      TEXT NOT NULL REFERENCES sellers (id),
    person_id       TEXT NOT NULL REFERENCES people (id),
    role            TEXT NOT NULL CHECK (role IN ('owner', 'manager', 'host', 'moderator')),
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (account_id, person_id)
);
CREATE INDEX members_by_person ON members (person_id);
-- Signed-in browsers: the cookie's token is stored as its SHA-256 only;
-- each session has its own CSRF token and the account and mode it acts in.
CREATE TABLE console_sessions (
    token_hash      TEXT PRIMARY KEY,
    person_id       TEXT NOT NULL REFERENCES people (id),
    csrf            TEXT NOT NULL,
    account_id      TEXT,
    livemode        BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    seen_at         BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX console_sessions_by_person ON console_sessions (person_id);
-- One-time links by email (stored as SHA-256): a sign-in, an invitation
-- to an account with a role, or an account's first owner (printed by
-- `haul seller create`). Used once, within their time.
CREATE TABLE console_links (
    token_hash      TEXT PRIMARY KEY,
    purpose         TEXT NOT NULL CHECK (purpose IN ('signin', 'invite', 'owner')),
    email           TEXT,
    account_id      TEXT REFERENCES sellers (id),
    role            TEXT,
    invited_by      TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT
);
-- Failed sign-ins per email, whether or not anyone has that email (so
-- the answers tell nobody which addresses have accounts): after five in a
-- row the email is locked for a while.
CREATE TABLE signin_failures (
    email           TEXT PRIMARY KEY,
    failures        BIGINT NOT NULL,
    last_at         BIGINT NOT NULL,
    locked_until    BIGINT NOT NULL DEFAULT 0
);
