-- Built-in accounts and auth sessions (SQLite). Timestamps are unix microseconds (UTC).
-- Secrets are stored only as SHA-256 digests (refresh, reset and confirmation
-- tokens) or argon2id hashes (passwords).

CREATE TABLE auth_users (
    id                 TEXT PRIMARY KEY,
    email              TEXT NOT NULL,
    email_normalized   TEXT NOT NULL UNIQUE,
    password_hash      TEXT NOT NULL,
    full_name          TEXT,
    email_confirmed_at INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

CREATE TABLE auth_sessions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    refreshed_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX auth_sessions_user ON auth_sessions (user_id);

CREATE TABLE auth_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES auth_sessions (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    used_at     INTEGER,
    -- The token that replaced this one (its digest).
    replaced_by TEXT
);
CREATE INDEX auth_refresh_tokens_session ON auth_refresh_tokens (session_id);

-- Password-reset and email-confirmation tokens: one-time, expiring.
CREATE TABLE auth_one_time_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('reset_password', 'confirm_email')),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX auth_one_time_tokens_user ON auth_one_time_tokens (user_id);

-- Failed sign-ins per email (known or not, so a lock tells nothing about
-- whether an account exists), keyed by the SHA-256 of the lower-cased email
-- so that no address typed at the sign-in form is kept.
CREATE TABLE auth_signin_failures (
    email_digest     TEXT PRIMARY KEY,
    failures         INTEGER NOT NULL,
    last_failure_at  INTEGER NOT NULL,
    locked_until     INTEGER
);

-- Supabase auth sessions signed out through Homi: their access tokens are
-- refused at once, before they expire.
CREATE TABLE auth_revoked_sessions (
    session_id TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX auth_revoked_sessions_user ON auth_revoked_sessions (user_id);

-- Supabase users whose earlier tokens Homi refuses (deleted users, password
-- changes and resets): tokens issued before `not_before` are refused, except
-- those of `keep_session` (the caller's, after a password change).
CREATE TABLE auth_user_revocations (
    user_id      TEXT PRIMARY KEY,
    not_before   INTEGER NOT NULL,
    keep_session TEXT,
    expires_at   INTEGER NOT NULL
);
