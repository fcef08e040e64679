//! [`ChatStore`] on SQLite: conversations beside the memories.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, parse_uuid, to_time};
use crate::error::{Error, Result};
use crate::provider::Role;
use crate::store::chat::{ChatStore, Conversation, ConversationMessage};
use crate::store::jobs::NewJob;

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn conversation(row: &SqliteRow) -> Result<Conversation> {
    Ok(Conversation {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        title: row.try_get(2)?,
        created_at: to_time(row.try_get(3)?),
        updated_at: to_time(row.try_get(4)?),
    })
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl ChatStore for SqliteStore {
    async fn open_conversation(
        &self,
        id: &str,
        user_id: &str,
        title: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Conversation>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO homi_conversations (id, user_id, title, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(user_id)
        .bind(title)
        .bind(micros(now))
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(
            "SELECT id, user_id, title, created_at, updated_at FROM homi_conversations \
             WHERE id = ? AND user_id = ?",
        )
        .bind(id)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.as_ref().map(conversation).transpose()
    }

    async fn recent_messages(
        &self,
        conversation_id: &str,
        user_id: &str,
        n: usize,
    ) -> Result<Vec<ConversationMessage>> {
        // Without statistics the planner may take the user index and read
        // every message of the user (1.6 ms at a few thousand messages,
        // measured); the conversation index answers in microseconds.
        let rows = sqlx::query(
            "SELECT id, conversation_id, user_id, role, content, memories_used, created_at FROM \
             (SELECT * FROM homi_conversation_messages INDEXED BY conversation_messages_conversation \
              WHERE conversation_id = ? AND user_id = ? \
              ORDER BY seq DESC LIMIT ?) ORDER BY seq",
        )
        .bind(conversation_id)
        .bind(user_id)
        .bind(limit(n))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get(3)?;
                let used: String = r.try_get(5)?;
                Ok(ConversationMessage {
                    id: parse_uuid(&r.try_get::<String, _>(0)?)?,
                    conversation_id: r.try_get(1)?,
                    user_id: r.try_get(2)?,
                    role: Role::parse(&role)
                        .ok_or_else(|| Error::storage(format!("unknown role '{role}'")))?,
                    content: r.try_get(4)?,
                    memories_used: serde_json::from_str(&used)
                        .map_err(|e| Error::storage(format!("corrupt memories_used: {e}")))?,
                    created_at: to_time(r.try_get(6)?),
                })
            })
            .collect()
    }

    async fn append_message(&self, m: &ConversationMessage, job: Option<&NewJob>) -> Result<()> {
        let used = serde_json::to_string(&m.memories_used)
            .map_err(|e| Error::storage(format!("cannot encode memories_used: {e}")))?;
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO homi_conversation_messages (id, conversation_id, user_id, role, content, \
             memories_used, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(m.id.to_string())
        .bind(&m.conversation_id)
        .bind(&m.user_id)
        .bind(m.role.as_str())
        .bind(&m.content)
        .bind(used)
        .bind(micros(m.created_at))
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE homi_conversations SET updated_at = ? WHERE id = ? AND user_id = ?")
            .bind(micros(m.created_at))
            .bind(&m.conversation_id)
            .bind(&m.user_id)
            .execute(&mut *tx)
            .await?;
        if let Some(job) = job {
            super::jobs::insert_job(&mut tx, job, m.created_at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn conversations(
        &self,
        user_id: &str,
        n: usize,
        offset: usize,
    ) -> Result<Vec<Conversation>> {
        sqlx::query(
            "SELECT id, user_id, title, created_at, updated_at FROM homi_conversations \
             WHERE user_id = ? ORDER BY updated_at DESC, id LIMIT ? OFFSET ?",
        )
        .bind(user_id)
        .bind(limit(n))
        .bind(limit(offset))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(conversation)
        .collect()
    }

    async fn delete_conversation(&self, id: &str, user_id: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM homi_conversations WHERE id = ? AND user_id = ?")
            .bind(id)
            .bind(user_id)
            .execute(&self.writer)
            .await?
            .rows_affected();
        if n > 0 {
            self.scrub_wal().await;
        }
        Ok(n > 0)
    }
}
