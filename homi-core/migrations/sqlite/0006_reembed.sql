-- Vectors from a new embedder, staged by `homi memory reembed` until every
-- memory has one; then swapped in with one transaction. `hash` is the text the
-- vector was made from: a memory whose text changed meanwhile is embedded again.
CREATE TABLE memory_reembed (
    id        TEXT PRIMARY KEY,
    hash      TEXT NOT NULL,
    embedding BLOB NOT NULL
);
-- Which memories still need a vector, without reading the vectors.
CREATE INDEX memory_reembed_hash ON memory_reembed (id, hash);
