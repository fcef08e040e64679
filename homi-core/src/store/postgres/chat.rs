//! [`ChatStore`] on Postgres: conversations beside the memories.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PostgresStore;
use crate::error::{Error, Result};
use crate::provider::Role;
use crate::store::chat::{ChatStore, Conversation, ConversationMessage};
use crate::store::jobs::NewJob;

fn conversation(row: &PgRow) -> Result<Conversation> {
    Ok(Conversation {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        title: row.try_get(2)?,
        created_at: row.try_get(3)?,
        updated_at: row.try_get(4)?,
    })
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl ChatStore for PostgresStore {
    async fn open_conversation(
        &self,
        id: &str,
        user_id: &str,
        title: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Conversation>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO homi_conversations (id, user_id, title, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(user_id)
        .bind(title)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(
            "SELECT id, user_id, title, created_at, updated_at FROM homi_conversations \
             WHERE id = $1 AND user_id = $2",
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
        let rows = sqlx::query(
            "SELECT id, conversation_id, user_id, role, content, memories_used, created_at FROM \
             (SELECT * FROM homi_conversation_messages WHERE conversation_id = $1 AND user_id = $2 \
              ORDER BY seq DESC LIMIT $3) m ORDER BY seq",
        )
        .bind(conversation_id)
        .bind(user_id)
        .bind(limit(n))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get(3)?;
                let used: sqlx::types::Json<Vec<String>> = r.try_get(5)?;
                Ok(ConversationMessage {
                    id: r.try_get(0)?,
                    conversation_id: r.try_get(1)?,
                    user_id: r.try_get(2)?,
                    role: Role::parse(&role)
                        .ok_or_else(|| Error::storage(format!("unknown role '{role}'")))?,
                    content: r.try_get(4)?,
                    memories_used: used.0,
                    created_at: r.try_get(6)?,
                })
            })
            .collect()
    }

    async fn append_message(&self, m: &ConversationMessage, job: Option<&NewJob>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO homi_conversation_messages (id, conversation_id, user_id, role, content, \
             memories_used, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(m.id)
        .bind(&m.conversation_id)
        .bind(&m.user_id)
        .bind(m.role.as_str())
        .bind(&m.content)
        .bind(sqlx::types::Json(&m.memories_used))
        .bind(m.created_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE homi_conversations SET updated_at = $1 WHERE id = $2 AND user_id = $3")
            .bind(m.created_at)
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
             WHERE user_id = $1 ORDER BY updated_at DESC, id LIMIT $2 OFFSET $3",
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
        let n = sqlx::query("DELETE FROM homi_conversations WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }
}
