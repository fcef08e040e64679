-- Model tokens each user spent per UTC day, for HOMI_USER_TOKENS_PER_DAY.
-- Days before yesterday are pruned; deleting the user deletes their rows.
CREATE TABLE homi_usage (
    user_id text NOT NULL,
    day     text NOT NULL,
    tokens  bigint NOT NULL,
    PRIMARY KEY (user_id, day)
);

ALTER TABLE homi_usage ENABLE ROW LEVEL SECURITY;
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('REVOKE ALL ON homi_usage FROM %I', r);
        END IF;
    END LOOP;
END
$$;
