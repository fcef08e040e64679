-- Keyword search ranks from an in-memory index per scope, built from the
-- memory text with the scope's vectors and kept in step with the same change
-- sequence (see `store/keyword_index.rs`). It ranks by the Postgres store's
-- BM25, so both stores give one keyword score; the FTS5 index of 0007 is no
-- longer read, so it is no longer written either. `secure_delete` zeroes its
-- pages as they are freed. `memories_user_rid` (also from 0007) stays.
DROP TRIGGER memories_fts_insert;
DROP TRIGGER memories_fts_delete;
DROP TRIGGER memories_fts_update;
DROP TABLE memories_fts;
ALTER TABLE memories DROP COLUMN fts_owner;
