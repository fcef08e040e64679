-- "Forget everything" wins over work in flight. Each delete-all bumps the
-- epoch of its scope's key (the digest of its user id, else its agent id,
-- else its run id) and logs its exact scope (as digests). A write that began
-- before checks, in its own transaction, that no deletion covering its scope
-- came since; otherwise it writes nothing. Log entries are kept a day.
CREATE TABLE homi_scope_epochs (
    scope_key TEXT PRIMARY KEY,
    epoch     INTEGER NOT NULL
);
CREATE TABLE homi_scope_deletions (
    scope_key  TEXT NOT NULL,
    epoch      INTEGER NOT NULL,
    user_key   TEXT,
    agent_key  TEXT,
    run_key    TEXT,
    deleted_at INTEGER NOT NULL,
    PRIMARY KEY (scope_key, epoch)
);
CREATE INDEX homi_scope_deletions_at ON homi_scope_deletions (deleted_at);
