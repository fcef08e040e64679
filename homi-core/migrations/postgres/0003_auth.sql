-- Built-in accounts and auth sessions (Postgres). Secrets are stored only as
-- SHA-256 digests (refresh, reset and confirmation tokens) or argon2id hashes
-- (passwords).

CREATE TABLE homi_auth_users (
    id                 uuid PRIMARY KEY,
    email              text NOT NULL,
    email_normalized   text NOT NULL UNIQUE,
    password_hash      text NOT NULL,
    full_name          text,
    email_confirmed_at timestamptz,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);

CREATE TABLE homi_auth_sessions (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES homi_auth_users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL,
    refreshed_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX homi_auth_sessions_user ON homi_auth_sessions (user_id);

CREATE TABLE homi_auth_refresh_tokens (
    token_hash text PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES homi_auth_sessions (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL,
    used_at     timestamptz,
    -- The token that replaced this one (its digest).
    replaced_by text
);
CREATE INDEX homi_auth_refresh_tokens_session ON homi_auth_refresh_tokens (session_id);

CREATE TABLE homi_auth_one_time_tokens (
    token_hash text PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES homi_auth_users (id) ON DELETE CASCADE,
    purpose    text NOT NULL CHECK (purpose IN ('reset_password', 'confirm_email')),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX homi_auth_one_time_tokens_user ON homi_auth_one_time_tokens (user_id);

-- Failed sign-ins per email, keyed by the SHA-256 of the lower-cased email.
CREATE TABLE homi_auth_signin_failures (
    email_digest     text PRIMARY KEY,
    failures         integer NOT NULL,
    last_failure_at  timestamptz NOT NULL,
    locked_until     timestamptz
);

CREATE TABLE homi_auth_revoked_sessions (
    session_id uuid PRIMARY KEY,
    user_id    text NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX homi_auth_revoked_sessions_user ON homi_auth_revoked_sessions (user_id);

-- Supabase users whose earlier tokens Homi refuses (deleted users, password
-- changes and resets): tokens issued before `not_before` are refused, except
-- those of `keep_session` (the caller's, after a password change).
CREATE TABLE homi_auth_user_revocations (
    user_id      text PRIMARY KEY,
    not_before   timestamptz NOT NULL,
    keep_session uuid,
    expires_at   timestamptz NOT NULL
);

-- On Supabase, tables in the public schema are served by the Data API to
-- anyone holding the project's anon key unless row-level security is on.
-- Homi connects as the owner of its tables (owners bypass RLS) and defines no
-- policy, so the Data API sees none of Homi's rows.
ALTER TABLE homi_meta ENABLE ROW LEVEL SECURITY;
ALTER TABLE homi_memories ENABLE ROW LEVEL SECURITY;
ALTER TABLE homi_memory_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE homi_auth_users ENABLE ROW LEVEL SECURITY;
ALTER TABLE homi_auth_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE homi_auth_refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE homi_auth_one_time_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE homi_auth_signin_failures ENABLE ROW LEVEL SECURITY;
ALTER TABLE homi_auth_revoked_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE homi_auth_user_revocations ENABLE ROW LEVEL SECURITY;
ALTER TABLE homi_migrations ENABLE ROW LEVEL SECURITY;
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format(
                'REVOKE ALL ON homi_meta, homi_memories, homi_memory_history, homi_auth_users, '
                'homi_auth_sessions, homi_auth_refresh_tokens, homi_auth_one_time_tokens, '
                'homi_auth_signin_failures, homi_auth_revoked_sessions, homi_auth_user_revocations, '
                'homi_migrations FROM %I', r);
        END IF;
    END LOOP;
END
$$;
