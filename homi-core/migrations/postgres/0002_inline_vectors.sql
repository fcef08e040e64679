-- Keep embeddings inline in the row instead of in TOAST: a 1536-dimension
-- vector (6 KB) otherwise costs a TOAST lookup per row in every exact scan.
-- MAIN still moves a value out of line when a row cannot fit a page
-- (e.g. 3072 dimensions).
ALTER TABLE homi_memories ALTER COLUMN embedding SET STORAGE MAIN;
