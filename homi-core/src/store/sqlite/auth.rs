//! [`AuthStore`] on SQLite: accounts, auth sessions and tokens in the same file
//! as the memories.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::{SqliteStore, bump_seq, parse_uuid, to_time};
use crate::error::{Error, Result};
use crate::store::auth::{
    ApiKey, ApiKeyRecord, AuthStore, ExternalRevocation, KeyScope, NewSession, RefreshOutcome,
    RevokeSessions, TokenPurpose, UserRecord, attempt_decision, lock_length, within_grace,
};

const SESSION_ACTIVE_SQL: &str = "SELECT 1 FROM homi_auth_sessions WHERE id = ?1 AND user_id = ?2 \
     AND revoked_at IS NULL AND expires_at > ?3";

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn duration_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

const USER_COLUMNS: &str =
    "id, email, password_hash, full_name, email_confirmed_at, created_at, updated_at";

fn user_from_row(row: &SqliteRow) -> Result<UserRecord> {
    Ok(UserRecord {
        id: parse_uuid(&row.try_get::<String, _>(0)?)?,
        email: row.try_get(1)?,
        password_hash: row.try_get(2)?,
        full_name: row.try_get(3)?,
        email_confirmed_at: row.try_get::<Option<i64>, _>(4)?.map(to_time),
        created_at: to_time(row.try_get(5)?),
        updated_at: to_time(row.try_get(6)?),
    })
}

fn email_taken(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            Error::Conflict("an account with this email already exists".into())
        }
        _ => e.into(),
    }
}

#[async_trait]
impl AuthStore for SqliteStore {
    async fn jwt_secret(&self, generated: String) -> Result<String> {
        sqlx::query("INSERT OR IGNORE INTO homi_meta (key, value) VALUES ('jwt_secret', ?)")
            .bind(&generated)
            .execute(&self.writer)
            .await?;
        let secret: String =
            sqlx::query_scalar("SELECT value FROM homi_meta WHERE key = 'jwt_secret'")
                .fetch_one(&self.pool)
                .await?;
        Ok(secret)
    }

    async fn create_user(&self, user: &UserRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO homi_auth_users (id, email, email_normalized, password_hash, full_name, \
             email_confirmed_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(user.id.to_string())
        .bind(&user.email)
        .bind(user.email.to_lowercase())
        .bind(&user.password_hash)
        .bind(&user.full_name)
        .bind(user.email_confirmed_at.map(micros))
        .bind(micros(user.created_at))
        .bind(micros(user.updated_at))
        .execute(&self.writer)
        .await
        .map_err(email_taken)?;
        Ok(())
    }

    async fn user_by_email(&self, email_normalized: &str) -> Result<Option<UserRecord>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM homi_auth_users WHERE email_normalized = ?");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(email_normalized)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<UserRecord>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM homi_auth_users WHERE id = ?");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn list_users(&self, limit: usize, offset: usize) -> Result<Vec<UserRecord>> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM homi_auth_users ORDER BY created_at, id LIMIT ? OFFSET ?"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(i64::try_from(offset).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(user_from_row)
            .collect()
    }

    async fn update_user(
        &self,
        id: Uuid,
        full_name: Option<Option<String>>,
        email: Option<(String, Option<DateTime<Utc>>)>,
        now: DateTime<Utc>,
    ) -> Result<Option<UserRecord>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(name) = &full_name {
            sqlx::query("UPDATE homi_auth_users SET full_name = ?, updated_at = ? WHERE id = ?")
                .bind(name)
                .bind(micros(now))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        if let Some((email, confirmed)) = &email {
            sqlx::query(
                "UPDATE homi_auth_users SET email = ?, email_normalized = ?, email_confirmed_at = ?, \
                 updated_at = ? WHERE id = ?",
            )
            .bind(email)
            .bind(email.to_lowercase())
            .bind(confirmed.map(micros))
            .bind(micros(now))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(email_taken)?;
            sqlx::query("DELETE FROM homi_auth_one_time_tokens WHERE user_id = ?")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        let sql = format!("SELECT {USER_COLUMNS} FROM homi_auth_users WHERE id = ?");
        let user = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()?;
        tx.commit().await?;
        Ok(user)
    }

    async fn set_password(
        &self,
        id: Uuid,
        password_hash: &str,
        revoke: RevokeSessions,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let changed = sqlx::query(
            "UPDATE homi_auth_users SET password_hash = ?, updated_at = ? WHERE id = ?",
        )
        .bind(password_hash)
        .bind(micros(now))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(Error::not_found(format!("user {id}")));
        }
        let keep = match revoke {
            RevokeSessions::All => String::new(),
            RevokeSessions::AllExcept(s) => s.to_string(),
        };
        sqlx::query(
            "UPDATE homi_auth_sessions SET revoked_at = ? WHERE user_id = ? AND id <> ? AND revoked_at IS NULL",
        )
        .bind(micros(now))
        .bind(id.to_string())
        .bind(keep)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM homi_auth_one_time_tokens WHERE user_id = ? AND purpose = ?")
            .bind(id.to_string())
            .bind(TokenPurpose::ResetPassword.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn begin_signin_attempt(
        &self,
        email_digest: &str,
        now: DateTime<Utc>,
        max_failures: u32,
        lockout: Duration,
        window: Duration,
    ) -> Result<Option<DateTime<Utc>>> {
        let now_us = micros(now);
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        // Forget stale rows, so emails that were tried once do not pile up.
        sqlx::query(
            "DELETE FROM homi_auth_signin_failures WHERE last_failure_at < ? \
             AND (locked_until IS NULL OR locked_until < ?)",
        )
        .bind(now_us - duration_micros(window))
        .bind(now_us)
        .execute(&mut *tx)
        .await?;
        let row: Option<(i64, Option<i64>)> = sqlx::query_as(
            "SELECT failures, locked_until FROM homi_auth_signin_failures WHERE email_digest = ?",
        )
        .bind(email_digest)
        .fetch_optional(&mut *tx)
        .await?;
        let (failures, locked) = row.unwrap_or((0, None));
        if let Some(until) = locked.filter(|&t| t > now_us) {
            return Ok(Some(to_time(until)));
        }
        let decision = attempt_decision(failures + 1, locked.is_some(), now, max_failures, lockout);
        sqlx::query(
            "INSERT INTO homi_auth_signin_failures (email_digest, failures, last_failure_at, locked_until) \
             VALUES (?, ?, ?, ?) ON CONFLICT (email_digest) DO UPDATE SET failures = excluded.failures, \
             last_failure_at = excluded.last_failure_at, locked_until = excluded.locked_until",
        )
        .bind(email_digest)
        .bind(failures + 1)
        .bind(now_us)
        .bind(decision.lock.map(micros).or(locked))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(decision.refuse.then_some(decision.lock).flatten())
    }

    async fn signin_failed(
        &self,
        email_digest: &str,
        now: DateTime<Utc>,
        max_failures: u32,
        lockout: Duration,
    ) -> Result<Option<DateTime<Utc>>> {
        let now_us = micros(now);
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let row: Option<(i64, Option<i64>)> = sqlx::query_as(
            "SELECT failures, locked_until FROM homi_auth_signin_failures WHERE email_digest = ?",
        )
        .bind(email_digest)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((failures, locked)) = row else {
            return Ok(None);
        };
        if let Some(until) = locked.filter(|&t| t > now_us) {
            return Ok(Some(to_time(until)));
        }
        let Some(length) = lock_length(failures, max_failures, lockout) else {
            return Ok(None);
        };
        let until = now + length;
        sqlx::query("UPDATE homi_auth_signin_failures SET locked_until = ? WHERE email_digest = ?")
            .bind(micros(until))
            .bind(email_digest)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(until))
    }

    async fn clear_signin_failures(&self, email_digest: &str) -> Result<()> {
        sqlx::query("DELETE FROM homi_auth_signin_failures WHERE email_digest = ?")
            .bind(email_digest)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn create_session(&self, session: &NewSession) -> Result<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO homi_auth_sessions (id, user_id, created_at, refreshed_at, expires_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(session.id.to_string())
        .bind(session.user_id.to_string())
        .bind(micros(session.created_at))
        .bind(micros(session.created_at))
        .bind(micros(session.expires_at))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO homi_auth_refresh_tokens (token_hash, session_id, created_at) VALUES (?, ?, ?)",
        )
        .bind(&session.refresh_token_hash)
        .bind(session.id.to_string())
        .bind(micros(session.created_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn session_active(
        &self,
        session_id: Uuid,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (session_id, user_id, now) = (session_id.to_string(), user_id.to_string(), micros(now));
        // Every request verifies a token: answered on this thread when possible.
        if let Some(active) = self.reader.as_ref().and_then(|r| {
            r.read(|c| {
                c.prepare_cached(SESSION_ACTIVE_SQL)?
                    .exists(rusqlite::params![session_id, user_id, now])
            })
        }) {
            return Ok(active);
        }
        let found: Option<i64> = sqlx::query_scalar(SESSION_ACTIVE_SQL)
            .bind(session_id)
            .bind(user_id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        grace: Duration,
    ) -> Result<RefreshOutcome> {
        let now_us = micros(now);
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query(
            "SELECT t.session_id, t.used_at, s.user_id, s.revoked_at, s.expires_at, \
             (SELECT c.used_at IS NULL FROM homi_auth_refresh_tokens c WHERE c.token_hash = t.replaced_by) \
             FROM homi_auth_refresh_tokens t JOIN homi_auth_sessions s ON s.id = t.session_id \
             WHERE t.token_hash = ?",
        )
        .bind(old_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(RefreshOutcome::Invalid);
        };
        let session_id: String = row.try_get(0)?;
        let used_at: Option<i64> = row.try_get(1)?;
        let user_id = parse_uuid(&row.try_get::<String, _>(2)?)?;
        let revoked_at: Option<i64> = row.try_get(3)?;
        let session_expires: i64 = row.try_get(4)?;
        let replacement_unused = row.try_get::<Option<bool>, _>(5)?.unwrap_or(false);
        if revoked_at.is_some() || session_expires <= now_us {
            return Ok(RefreshOutcome::Invalid);
        }
        if let Some(used) = used_at
            && !within_grace(now_us - used, duration_micros(grace), replacement_unused)
        {
            sqlx::query("UPDATE homi_auth_sessions SET revoked_at = ? WHERE id = ?")
                .bind(now_us)
                .bind(&session_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(RefreshOutcome::Reused);
        }
        sqlx::query(
            "UPDATE homi_auth_refresh_tokens SET used_at = COALESCE(used_at, ?), replaced_by = ? WHERE token_hash = ?",
        )
        .bind(now_us)
        .bind(new_hash)
        .bind(old_hash)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO homi_auth_refresh_tokens (token_hash, session_id, created_at) VALUES (?, ?, ?)",
        )
        .bind(new_hash)
        .bind(&session_id)
        .bind(now_us)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE homi_auth_sessions SET refreshed_at = ?, expires_at = ? WHERE id = ?")
            .bind(now_us)
            .bind(micros(expires_at))
            .bind(&session_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(RefreshOutcome::Rotated {
            session_id: parse_uuid(&session_id)?,
            user_id,
        })
    }

    async fn revoke_session(
        &self,
        session_id: Uuid,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE homi_auth_sessions SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
        )
        .bind(micros(now))
        .bind(session_id.to_string())
        .bind(user_id.to_string())
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    async fn create_one_time_token(
        &self,
        token_hash: &str,
        user_id: Uuid,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("DELETE FROM homi_auth_one_time_tokens WHERE user_id = ? AND purpose = ?")
            .bind(user_id.to_string())
            .bind(purpose.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO homi_auth_one_time_tokens (token_hash, user_id, purpose, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(token_hash)
        .bind(user_id.to_string())
        .bind(purpose.as_str())
        .bind(micros(now))
        .bind(micros(expires_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn reset_password(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Uuid>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let Some(user_id) =
            take_token(&mut tx, token_hash, TokenPurpose::ResetPassword, now).await?
        else {
            return Ok(None);
        };
        let email: Option<String> = sqlx::query_scalar(
            "UPDATE homi_auth_users SET password_hash = ?, updated_at = ?, \
             email_confirmed_at = COALESCE(email_confirmed_at, updated_at) WHERE id = ? RETURNING email_normalized",
        )
        .bind(password_hash)
        .bind(micros(now))
        .bind(user_id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE homi_auth_sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
        )
        .bind(micros(now))
        .bind(user_id.to_string())
        .execute(&mut *tx)
        .await?;
        if let Some(email) = email {
            sqlx::query("DELETE FROM homi_auth_signin_failures WHERE email_digest = ?")
                .bind(crate::store::auth::token_digest(&email))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(user_id))
    }

    async fn confirm_email(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<Uuid>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let Some(user_id) =
            take_token(&mut tx, token_hash, TokenPurpose::ConfirmEmail, now).await?
        else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE homi_auth_users SET email_confirmed_at = COALESCE(email_confirmed_at, ?), updated_at = ? WHERE id = ?",
        )
        .bind(micros(now))
        .bind(micros(now))
        .bind(user_id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(user_id))
    }

    async fn revoke_external_session(
        &self,
        session_id: Uuid,
        user_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        purge_expired_revocations(&mut tx).await?;
        sqlx::query(
            "INSERT INTO homi_auth_revoked_sessions (session_id, user_id, expires_at) VALUES (?, ?, ?) \
             ON CONFLICT (session_id) DO UPDATE SET expires_at = MAX(expires_at, excluded.expires_at)",
        )
        .bind(session_id.to_string())
        .bind(user_id)
        .bind(micros(expires_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn revoke_external_user(
        &self,
        user_id: &str,
        not_before: DateTime<Utc>,
        keep_session: Option<Uuid>,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        purge_expired_revocations(&mut tx).await?;
        sqlx::query(
            "INSERT INTO homi_auth_user_revocations (user_id, not_before, keep_session, expires_at) \
             VALUES (?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET not_before = excluded.not_before, \
             keep_session = excluded.keep_session, expires_at = MAX(expires_at, excluded.expires_at)",
        )
        .bind(user_id)
        .bind(micros(not_before))
        .bind(keep_session.map(|s| s.to_string()))
        .bind(micros(expires_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn external_revocation(
        &self,
        session_id: Uuid,
        user_id: &str,
    ) -> Result<ExternalRevocation> {
        let session_revoked: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM homi_auth_revoked_sessions WHERE session_id = ? AND user_id = ?",
        )
        .bind(session_id.to_string())
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        let user: Option<(i64, Option<String>)> = sqlx::query_as(
            "SELECT not_before, keep_session FROM homi_auth_user_revocations WHERE user_id = ?",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        let (user_not_before, keep_session) = match user {
            Some((t, keep)) => (
                Some(to_time(t)),
                keep.as_deref().map(parse_uuid).transpose()?,
            ),
            None => (None, None),
        };
        Ok(ExternalRevocation {
            session_revoked: session_revoked.is_some(),
            user_not_before,
            keep_session,
        })
    }

    async fn delete_user(&self, user_id: &str) -> Result<bool> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let seq = bump_seq(&mut tx).await?;
        sqlx::query(
            "DELETE FROM homi_memory_embeddings WHERE rid IN (SELECT rid FROM homi_memories WHERE user_id = ?)",
        )
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM homi_memory_history WHERE user_id = ? \
             OR memory_id IN (SELECT id FROM homi_memories WHERE user_id = ?)",
        )
        .bind(user_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM homi_memory_reembed WHERE id IN (SELECT id FROM homi_memories WHERE user_id = ?)",
        )
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        let memories = sqlx::query("DELETE FROM homi_memories WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("UPDATE homi_store_state SET wipe_seq = ? WHERE id = 1")
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        let email: Option<String> = sqlx::query_scalar(
            "DELETE FROM homi_auth_users WHERE id = ? RETURNING email_normalized",
        )
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(email) = &email {
            sqlx::query("DELETE FROM homi_auth_signin_failures WHERE email_digest = ?")
                .bind(crate::store::auth::token_digest(email))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM homi_jobs WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM homi_conversation_messages WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM homi_conversations WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.scrub_wal().await;
        Ok(email.is_some() || memories > 0)
    }

    async fn create_api_key(&self, record: &ApiKeyRecord) -> Result<()> {
        let k = &record.key;
        sqlx::query(
            "INSERT INTO homi_api_keys (id, name, namespace, prefix, key_hash, scopes, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(k.id.to_string())
        .bind(&k.name)
        .bind(&k.namespace)
        .bind(&k.prefix)
        .bind(&record.key_hash)
        .bind(scopes_text(&k.scopes))
        .bind(micros(k.created_at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let row = sqlx::query(
            "SELECT id, name, namespace, prefix, scopes, created_at, last_used_at, revoked_at, key_hash \
             FROM homi_api_keys WHERE key_hash = ?",
        )
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(ApiKeyRecord {
                key: key_from_row(&r)?,
                key_hash: r.try_get(8)?,
            })
        })
        .transpose()
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(
            "SELECT id, name, namespace, prefix, scopes, created_at, last_used_at, revoked_at, key_hash \
             FROM homi_api_keys ORDER BY created_at DESC, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn revoke_api_key(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE homi_api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(micros(now))
        .bind(id.to_string())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn touch_api_key(&self, id: Uuid, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE homi_api_keys SET last_used_at = ? WHERE id = ?")
            .bind(micros(now))
            .bind(id.to_string())
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}

async fn purge_expired_revocations(tx: &mut sqlx::SqliteConnection) -> Result<()> {
    let now = micros(Utc::now());
    sqlx::query("DELETE FROM homi_auth_revoked_sessions WHERE expires_at < ?")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM homi_auth_user_revocations WHERE expires_at < ?")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Deletes a current one-time token of `purpose` and returns its user;
/// `None` when it is unknown, of another purpose or expired (an expired
/// one is deleted too).
async fn take_token(
    tx: &mut sqlx::SqliteConnection,
    token_hash: &str,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>> {
    let row = sqlx::query(
        "DELETE FROM homi_auth_one_time_tokens WHERE token_hash = ? AND purpose = ? RETURNING user_id, expires_at",
    )
    .bind(token_hash)
    .bind(purpose.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let expires_at: i64 = row.try_get(1)?;
    if expires_at <= micros(now) {
        return Ok(None);
    }
    Ok(Some(parse_uuid(&row.try_get::<String, _>(0)?)?))
}

fn scopes_text(scopes: &[KeyScope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn key_from_row(row: &SqliteRow) -> Result<ApiKey> {
    let scopes: String = row.try_get(4)?;
    Ok(ApiKey {
        id: parse_uuid(&row.try_get::<String, _>(0)?)?,
        name: row.try_get(1)?,
        namespace: row.try_get(2)?,
        prefix: row.try_get(3)?,
        scopes: scopes
            .split(',')
            .filter(|s| !s.is_empty())
            .map(KeyScope::parse)
            .collect::<Result<_>>()
            .map_err(|e| Error::storage(format!("corrupt key scopes '{scopes}': {e}")))?,
        created_at: to_time(row.try_get(5)?),
        last_used_at: row.try_get::<Option<i64>, _>(6)?.map(to_time),
        revoked_at: row.try_get::<Option<i64>, _>(7)?.map(to_time),
    })
}
