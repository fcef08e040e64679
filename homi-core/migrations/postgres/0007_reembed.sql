-- Vectors from a new embedder, staged by `homi memory reembed` until every
-- memory has one; then swapped in with one transaction. `hash` is the text the
-- vector was made from: a memory whose text changed meanwhile is embedded again.
CREATE TABLE homi_memory_reembed (
    id        uuid PRIMARY KEY,
    hash      text NOT NULL,
    embedding vector NOT NULL
);
ALTER TABLE homi_memory_reembed ENABLE ROW LEVEL SECURITY;
