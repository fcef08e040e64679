-- Keyword search: Postgres full-text search over the memory text. The
-- generated column is written with the row, in the same transaction, and
-- leaves with it.
ALTER TABLE homi_memories
    ADD COLUMN fts tsvector GENERATED ALWAYS AS (to_tsvector('english', memory)) STORED;
CREATE INDEX homi_memories_fts ON homi_memories USING gin (fts);

-- The order memories were written in, for a search to look at the memories
-- said just before and after a hit (the neighbouring turns of a conversation).
ALTER TABLE homi_memories ADD COLUMN pos bigserial;
CREATE INDEX homi_memories_user_pos ON homi_memories (user_id, pos);
