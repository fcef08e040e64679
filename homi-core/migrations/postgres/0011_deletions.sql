-- "Forget everything" wins over work in flight. Each delete-all bumps the
-- epoch of its scope's key (the digest of its user id, else its agent id,
-- else its run id) and logs its exact scope (as digests). A write that began
-- before locks the epochs of its scope's keys (FOR SHARE, so a delete-all
-- running now is waited for) and checks that no deletion covering its scope
-- came since; otherwise it writes nothing. Log entries are kept a day.
CREATE TABLE homi_scope_epochs (
    scope_key text PRIMARY KEY,
    epoch     bigint NOT NULL
);
CREATE TABLE homi_scope_deletions (
    scope_key  text NOT NULL,
    epoch      bigint NOT NULL,
    user_key   text,
    agent_key  text,
    run_key    text,
    deleted_at timestamptz NOT NULL,
    PRIMARY KEY (scope_key, epoch)
);
CREATE INDEX homi_scope_deletions_at ON homi_scope_deletions (deleted_at);

ALTER TABLE homi_scope_epochs ENABLE ROW LEVEL SECURITY;
ALTER TABLE homi_scope_deletions ENABLE ROW LEVEL SECURITY;
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('REVOKE ALL ON homi_scope_epochs, homi_scope_deletions FROM %I', r);
        END IF;
    END LOOP;
END
$$;
