-- The tables take the names they have on Postgres (`homi_…`), so that a
-- statement both databases run is one text. SQLite moves each table's
-- indexes (which keep their names) and the references to it along.
ALTER TABLE store_state RENAME TO homi_store_state;
ALTER TABLE memories RENAME TO homi_memories;
ALTER TABLE memory_embeddings RENAME TO homi_memory_embeddings;
ALTER TABLE memory_history RENAME TO homi_memory_history;
ALTER TABLE memory_tombstones RENAME TO homi_memory_tombstones;
ALTER TABLE memory_reembed RENAME TO homi_memory_reembed;
ALTER TABLE auth_users RENAME TO homi_auth_users;
ALTER TABLE auth_sessions RENAME TO homi_auth_sessions;
ALTER TABLE auth_refresh_tokens RENAME TO homi_auth_refresh_tokens;
ALTER TABLE auth_one_time_tokens RENAME TO homi_auth_one_time_tokens;
ALTER TABLE auth_signin_failures RENAME TO homi_auth_signin_failures;
ALTER TABLE auth_revoked_sessions RENAME TO homi_auth_revoked_sessions;
ALTER TABLE auth_user_revocations RENAME TO homi_auth_user_revocations;
ALTER TABLE jobs RENAME TO homi_jobs;
ALTER TABLE conversations RENAME TO homi_conversations;
ALTER TABLE conversation_messages RENAME TO homi_conversation_messages;
ALTER TABLE api_keys RENAME TO homi_api_keys;
