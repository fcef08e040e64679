-- Service API keys: a backend acting for its own users. Only a SHA-256 digest
-- of each key is kept; `prefix` (the key's first characters) identifies it in
-- listings. `scopes` is a comma-separated subset of read, write, admin.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    namespace    TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    scopes       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
