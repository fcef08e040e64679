-- Homi memory store (PostgreSQL + pgvector, Supabase-compatible).
-- Tables are prefixed with homi_ so Homi can share a database (such as a
-- Supabase project holding mem0's tables) without clashing.

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE IF NOT EXISTS homi_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE homi_memories (
    id            uuid PRIMARY KEY,
    memory        text NOT NULL,
    hash          text NOT NULL,
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    user_id       text,
    agent_id      text,
    run_id        text,
    actor_id      text,
    role          text,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    valid_from    timestamptz NOT NULL,
    valid_to      timestamptz,
    superseded_by uuid,
    embedding     vector NOT NULL
);
CREATE INDEX homi_memories_user ON homi_memories (user_id, agent_id, run_id);
CREATE INDEX homi_memories_agent ON homi_memories (agent_id, run_id);
CREATE INDEX homi_memories_run ON homi_memories (run_id);
CREATE INDEX homi_memories_created ON homi_memories (created_at);
-- One current memory per text and exact scope: concurrent writers cannot
-- insert the same fact twice.
CREATE UNIQUE INDEX homi_memories_current_hash ON homi_memories (hash, user_id, agent_id, run_id)
    NULLS NOT DISTINCT WHERE valid_to IS NULL;

CREATE TABLE homi_memory_history (
    id         uuid PRIMARY KEY,
    pos        bigserial NOT NULL,
    memory_id  uuid NOT NULL,
    old_memory text,
    new_memory text,
    event      text NOT NULL CHECK (event IN ('ADD', 'UPDATE', 'DELETE')),
    created_at timestamptz NOT NULL,
    updated_at timestamptz,
    is_deleted boolean NOT NULL DEFAULT false,
    actor_id   text,
    role       text,
    user_id    text,
    agent_id   text,
    run_id     text
);
CREATE INDEX homi_memory_history_memory ON homi_memory_history (memory_id, pos);
CREATE INDEX homi_memory_history_user ON homi_memory_history (user_id);
