-- A claimed job carries a lease token: only the worker holding the current
-- lease may renew it, complete the job or record its failure. Claims skip
-- users who already have a job running; this index finds those at once.
ALTER TABLE homi_jobs ADD COLUMN lease_token uuid;
CREATE INDEX homi_jobs_running_user ON homi_jobs (user_id) WHERE state = 'running';
