-- Durable jobs (memory extraction after a chat turn). Timestamps are unix
-- microseconds (UTC). A job is `queued` until a worker claims it (`running`,
-- leased until `locked_until`: a worker that dies loses the lease and another
-- takes the job), then `done`, or back to `queued` with a later `run_at` after
-- a failure, or `dead` after its last attempt. Done and dead jobs keep no
-- payload (the user's messages).
CREATE TABLE jobs (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    user_id      TEXT,
    payload      TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at       INTEGER NOT NULL,
    locked_until INTEGER,
    last_error   TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX jobs_runnable ON jobs (state, run_at);
CREATE INDEX jobs_user ON jobs (user_id);
