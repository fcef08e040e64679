-- Conversations (the API's `session_id`) and their messages.
CREATE TABLE homi_conversations (
    id         text PRIMARY KEY,
    user_id    text NOT NULL,
    title      text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX homi_conversations_user ON homi_conversations (user_id, updated_at);

CREATE TABLE homi_conversation_messages (
    seq             bigserial PRIMARY KEY,
    id              uuid NOT NULL UNIQUE,
    conversation_id text NOT NULL REFERENCES homi_conversations (id) ON DELETE CASCADE,
    user_id         text NOT NULL,
    role            text NOT NULL CHECK (role IN ('user', 'assistant')),
    content         text NOT NULL,
    memories_used   jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at      timestamptz NOT NULL
);
CREATE INDEX homi_conversation_messages_conversation ON homi_conversation_messages (conversation_id, seq);
CREATE INDEX homi_conversation_messages_user ON homi_conversation_messages (user_id);

ALTER TABLE homi_conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE homi_conversation_messages ENABLE ROW LEVEL SECURITY;
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('REVOKE ALL ON homi_conversations, homi_conversation_messages FROM %I', r);
        END IF;
    END LOOP;
END
$$;
