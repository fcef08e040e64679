-- Homi memory store (SQLite). Timestamps are unix microseconds (UTC).

CREATE TABLE homi_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One row: a change counter bumped by every write transaction. Vector caches
-- compare it to know whether (and what) to re-read, across processes.
CREATE TABLE store_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    seq        INTEGER NOT NULL,
    wipe_seq   INTEGER NOT NULL,
    tomb_floor INTEGER NOT NULL
);
INSERT INTO store_state (id, seq, wipe_seq, tomb_floor) VALUES (1, 0, 0, 0);

CREATE TABLE memories (
    rid           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    memory        TEXT NOT NULL,
    hash          TEXT NOT NULL,
    metadata      TEXT NOT NULL DEFAULT '{}',
    user_id       TEXT,
    agent_id      TEXT,
    run_id        TEXT,
    actor_id      TEXT,
    role          TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    valid_from    INTEGER NOT NULL,
    valid_to      INTEGER,
    superseded_by TEXT,
    seq           INTEGER NOT NULL
);
CREATE INDEX memories_user ON memories (user_id, agent_id, run_id);
CREATE INDEX memories_agent ON memories (agent_id, run_id);
CREATE INDEX memories_run ON memories (run_id);
CREATE INDEX memories_hash ON memories (hash);
CREATE INDEX memories_seq ON memories (seq);
CREATE INDEX memories_created ON memories (created_at);

CREATE TABLE memory_embeddings (
    rid       INTEGER PRIMARY KEY REFERENCES memories (rid) ON DELETE CASCADE,
    embedding BLOB NOT NULL
);

CREATE TABLE memory_history (
    id         TEXT PRIMARY KEY,
    memory_id  TEXT NOT NULL,
    old_memory TEXT,
    new_memory TEXT,
    event      TEXT NOT NULL CHECK (event IN ('ADD', 'UPDATE', 'DELETE')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER,
    is_deleted INTEGER NOT NULL DEFAULT 0,
    actor_id   TEXT,
    role       TEXT,
    user_id    TEXT,
    agent_id   TEXT,
    run_id     TEXT
);
CREATE INDEX memory_history_memory ON memory_history (memory_id);
CREATE INDEX memory_history_user ON memory_history (user_id);
CREATE INDEX memory_history_agent ON memory_history (agent_id);
CREATE INDEX memory_history_run ON memory_history (run_id);

-- Row ids deleted one by one, so caches can drop them without a full reload.
CREATE TABLE memory_tombstones (
    seq INTEGER NOT NULL,
    rid INTEGER NOT NULL
);
CREATE INDEX memory_tombstones_seq ON memory_tombstones (seq);
