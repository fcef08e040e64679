-- Keyword search: an FTS5 index over the memory text (BM25 ranking), kept in
-- step with `memories` by triggers, so it is written in the same transaction
-- as the memory. It reads the text from `memories` (external content) and
-- stores only the index. `secure-delete` removes a deleted memory's terms
-- from the index at once instead of leaving them until a later merge.
--
-- `fts_owner` indexes the memory's scope as tokens (`u` / `a` / `r` and the
-- id in hex), so a search intersects the query's words with its scope inside
-- the index instead of ranking every user's matches first.
ALTER TABLE memories ADD COLUMN fts_owner TEXT GENERATED ALWAYS AS (
    coalesce('u' || hex(user_id), '') || ' ' || coalesce('a' || hex(agent_id), '') || ' '
        || coalesce('r' || hex(run_id), '')
) VIRTUAL;

CREATE VIRTUAL TABLE memories_fts USING fts5(
    memory,
    fts_owner,
    content = 'memories',
    content_rowid = 'rid',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
INSERT INTO memories_fts (memories_fts, rank) VALUES ('secure-delete', 1);
INSERT INTO memories_fts (rowid, memory, fts_owner) SELECT rid, memory, fts_owner FROM memories;

CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts (rowid, memory, fts_owner) VALUES (new.rid, new.memory, new.fts_owner);
END;
CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, memory, fts_owner)
        VALUES ('delete', old.rid, old.memory, old.fts_owner);
END;
CREATE TRIGGER memories_fts_update AFTER UPDATE OF memory, user_id, agent_id, run_id ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, memory, fts_owner)
        VALUES ('delete', old.rid, old.memory, old.fts_owner);
    INSERT INTO memories_fts (rowid, memory, fts_owner) VALUES (new.rid, new.memory, new.fts_owner);
END;

-- The memories written just before and after a hit, by row id, per user.
CREATE INDEX memories_user_rid ON memories (user_id, rid);
