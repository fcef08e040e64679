-- Durable jobs (memory extraction after a chat turn), shared by every Homi
-- process on the database: workers claim with FOR UPDATE SKIP LOCKED. A job
-- is `queued` until claimed (`running`, leased until `locked_until`: a worker
-- that dies loses the lease and another takes the job), then `done`, or back
-- to `queued` with a later `run_at` after a failure, or `dead` after its last
-- attempt. Done and dead jobs keep no payload (the user's messages).
CREATE TABLE homi_jobs (
    id           uuid PRIMARY KEY,
    kind         text NOT NULL,
    user_id      text,
    payload      jsonb NOT NULL,
    state        text NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead')),
    attempts     integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL,
    run_at       timestamptz NOT NULL,
    locked_until timestamptz,
    last_error   text,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX homi_jobs_runnable ON homi_jobs (state, run_at);
CREATE INDEX homi_jobs_user ON homi_jobs (user_id);

ALTER TABLE homi_jobs ENABLE ROW LEVEL SECURITY;
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('REVOKE ALL ON homi_jobs FROM %I', r);
        END IF;
    END LOOP;
END
$$;
