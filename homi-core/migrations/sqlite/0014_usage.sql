-- Model tokens each user spent per UTC day, for HOMI_USER_TOKENS_PER_DAY.
-- Days before yesterday are pruned; deleting the user deletes their rows.
CREATE TABLE homi_usage (
    user_id TEXT NOT NULL,
    day     TEXT NOT NULL,
    tokens  INTEGER NOT NULL,
    PRIMARY KEY (user_id, day)
);
