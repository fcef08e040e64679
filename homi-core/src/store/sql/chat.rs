//! [`ChatStore`] on any SQL store, written once: conversations beside the
//! memories. Every statement filters by the conversation's user.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::jobs::insert_job;
use super::{Bind, Columns, Driver, Exec, SqlStore, binds};
use crate::error::{Error, Result};
use crate::provider::Role;
use crate::store::chat::{ChatStore, Conversation, ConversationMessage};
use crate::store::jobs::NewJob;
use uuid::Uuid;

const CONVERSATION_COLUMNS: &str = "id, user_id, title, created_at, updated_at";

fn conversation(row: &impl Columns) -> Result<Conversation> {
    Ok(Conversation {
        id: row.text(0)?,
        user_id: row.text(1)?,
        title: row.opt_text(2)?,
        created_at: row.time(3)?,
        updated_at: row.time(4)?,
    })
}

fn message(r: &impl Columns) -> Result<ConversationMessage> {
    let role = r.text(3)?;
    Ok(ConversationMessage {
        id: r.uuid(0)?,
        conversation_id: r.text(1)?,
        user_id: r.text(2)?,
        role: Role::parse(&role).ok_or_else(|| Error::storage(format!("unknown role '{role}'")))?,
        content: r.text(4)?,
        memories_used: serde_json::from_value(r.json(5)?)
            .map_err(|e| Error::storage(format!("corrupt memories_used: {e}")))?,
        created_at: r.time(6)?,
    })
}

fn count(n: usize) -> Bind {
    Bind::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

#[async_trait]
impl<S: SqlStore> ChatStore for S {
    async fn open_conversation(
        &self,
        id: &str,
        user_id: &str,
        title: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Conversation>> {
        let mut tx = self.write().await?;
        let (p, args) = binds::<S::D, 5>([
            id.into(),
            user_id.into(),
            title.into(),
            now.into(),
            now.into(),
        ]);
        let sql = format!(
            "INSERT INTO homi_conversations ({CONVERSATION_COLUMNS}) VALUES ({}) \
             ON CONFLICT (id) DO NOTHING",
            p.join(", ")
        );
        tx.run(sql, args).await?;
        let ([i, u], args) = binds::<S::D, 2>([id.into(), user_id.into()]);
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM homi_conversations WHERE id = {i} AND user_id = {u}"
        );
        let row = tx.optional(sql, args).await?;
        tx.commit().await?;
        row.as_ref().map(conversation).transpose()
    }

    async fn recent_messages(
        &self,
        conversation_id: &str,
        user_id: &str,
        n: usize,
    ) -> Result<Vec<ConversationMessage>> {
        let ([c, u, l], args) =
            binds::<S::D, 3>([conversation_id.into(), user_id.into(), count(n)]);
        let sql = format!(
            "SELECT id, conversation_id, user_id, role, content, memories_used, created_at FROM \
             (SELECT * FROM homi_conversation_messages{} WHERE conversation_id = {c} AND user_id = {u} \
              ORDER BY seq DESC LIMIT {l}) m ORDER BY seq",
            S::D::indexed_by("conversation_messages_conversation")
        );
        let mut conn = self.read().await?;
        conn.all(sql, args).await?.iter().map(message).collect()
    }

    async fn append_message(
        &self,
        m: &ConversationMessage,
        job: Option<&NewJob>,
        replaces: Option<Uuid>,
    ) -> Result<Option<Uuid>> {
        let used = serde_json::to_value(&m.memories_used)
            .map_err(|e| Error::storage(format!("cannot encode memories_used: {e}")))?;
        let mut tx = self.write().await?;
        let (p, args) = binds::<S::D, 7>([
            m.id.into(),
            m.conversation_id.as_str().into(),
            m.user_id.as_str().into(),
            m.role.as_str().into(),
            m.content.as_str().into(),
            Bind::Json(used),
            m.created_at.into(),
        ]);
        let sql = format!(
            "INSERT INTO homi_conversation_messages (id, conversation_id, user_id, role, content, \
             memories_used, created_at) VALUES ({})",
            p.join(", ")
        );
        tx.run(sql, args).await?;
        let ([t, c, u], args) = binds::<S::D, 3>([
            m.created_at.into(),
            m.conversation_id.as_str().into(),
            m.user_id.as_str().into(),
        ]);
        let sql = format!(
            "UPDATE homi_conversations SET updated_at = {t} WHERE id = {c} AND user_id = {u}"
        );
        tx.run(sql, args).await?;
        let id = match (job, replaces) {
            (None, _) => None,
            (Some(job), None) => Some(insert_job::<S::D>(&mut tx, job, m.created_at).await?),
            (Some(job), Some(pending)) => {
                let ([p, r, i], args) = binds::<S::D, 3>([
                    Bind::Json(job.payload.clone()),
                    job.not_before.unwrap_or(m.created_at).into(),
                    pending.into(),
                ]);
                let sql = format!(
                    "UPDATE homi_jobs SET payload = {p}, run_at = {r} WHERE id = {i} AND state = 'queued'"
                );
                (tx.run(sql, args).await? > 0).then_some(pending)
            }
        };
        tx.commit().await?;
        Ok(id)
    }

    async fn conversations(
        &self,
        user_id: &str,
        n: usize,
        offset: usize,
    ) -> Result<Vec<Conversation>> {
        let ([u, l, o], args) = binds::<S::D, 3>([user_id.into(), count(n), count(offset)]);
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM homi_conversations WHERE user_id = {u} \
             ORDER BY updated_at DESC, id LIMIT {l} OFFSET {o}"
        );
        let mut c = self.read().await?;
        c.all(sql, args).await?.iter().map(conversation).collect()
    }

    async fn delete_conversation(&self, id: &str, user_id: &str) -> Result<bool> {
        let mut c = self.writer().await?;
        let ([i, u], args) = binds::<S::D, 2>([id.into(), user_id.into()]);
        let sql = format!("DELETE FROM homi_conversations WHERE id = {i} AND user_id = {u}");
        let n = c.run(sql, args).await?;
        if n > 0 {
            self.scrub().await;
        }
        Ok(n > 0)
    }
}
