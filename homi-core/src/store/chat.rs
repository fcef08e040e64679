//! The conversations' port: the [`ChatStore`] trait the Chat client calls,
//! and its rows. Every method takes the user and filters by it in SQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::jobs::NewJob;
use crate::error::Result;
use crate::provider::Role;

/// A conversation (the API's `session_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Conversation {
    /// Its id: the `session_id` a client passes back.
    pub id: String,
    /// Whose.
    pub user_id: String,
    /// The first message, shortened.
    pub title: Option<String>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// Its last message.
    pub updated_at: DateTime<Utc>,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationMessage {
    /// Its id.
    pub id: Uuid,
    /// The conversation.
    pub conversation_id: String,
    /// Whose conversation.
    pub user_id: String,
    /// `user` or `assistant`.
    pub role: Role,
    /// The text.
    pub content: String,
    /// For a reply: the memories it was given.
    pub memories_used: Vec<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Conversations in the store: one trait, implemented by the SQLite and the
/// Postgres stores. Every method takes the user and filters by it in SQL.
#[async_trait]
pub trait ChatStore: Send + Sync + std::fmt::Debug {
    /// The user's conversation `id`, created (titled `title`) if no
    /// conversation has that id; `None` if another user's has.
    async fn open_conversation(
        &self,
        id: &str,
        user_id: &str,
        title: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Conversation>>;

    /// The last `limit` messages of the user's conversation, oldest first.
    async fn recent_messages(
        &self,
        conversation_id: &str,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<ConversationMessage>>;

    /// Appends a message to its conversation and, with `job`, enqueues the
    /// job in the same transaction: in place of job `replaces` when that one
    /// is still queued (its payload and `run_at` become `job`'s), as a new
    /// job when there is no `replaces`. A `replaces` that is no longer
    /// queued enqueues nothing: it has run or is running (its message is
    /// being extracted already), or a delete-all cancelled it (the message
    /// came before "forget everything", so nothing of it may be written).
    /// Returns the job's id, if one is queued.
    async fn append_message(
        &self,
        message: &ConversationMessage,
        job: Option<&NewJob>,
        replaces: Option<Uuid>,
    ) -> Result<Option<Uuid>>;

    /// The user's conversations, most recent first.
    async fn conversations(
        &self,
        user_id: &str,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<Conversation>>;

    /// Deletes the user's conversation and its messages. Returns whether it existed.
    async fn delete_conversation(&self, id: &str, user_id: &str) -> Result<bool>;
}
