-- Service API keys: a backend acting for its own users. Only a SHA-256 digest
-- of each key is kept; `prefix` (the key's first characters) identifies it in
-- listings. `scopes` is a subset of read, write, admin.
CREATE TABLE homi_api_keys (
    id           uuid PRIMARY KEY,
    name         text NOT NULL,
    namespace    text NOT NULL,
    prefix       text NOT NULL,
    key_hash     text NOT NULL UNIQUE,
    scopes       text[] NOT NULL,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz
);

ALTER TABLE homi_api_keys ENABLE ROW LEVEL SECURITY;
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('REVOKE ALL ON homi_api_keys FROM %I', r);
        END IF;
    END LOOP;
END
$$;
