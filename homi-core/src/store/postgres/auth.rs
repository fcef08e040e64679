//! [`AuthStore`] on Postgres: accounts, auth sessions and tokens in
//! `homi_auth_*` tables beside the memories.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::{PgConnection, PgRow};
use uuid::Uuid;

use super::PostgresStore;
use crate::error::{Error, Result};
use crate::store::auth::{
    ApiKey, ApiKeyRecord, AuthStore, ExternalRevocation, KeyScope, NewSession, RefreshOutcome,
    RevokeSessions, TokenPurpose, UserRecord, attempt_decision, lock_length, within_grace,
};

const USER_COLUMNS: &str =
    "id, email, password_hash, full_name, email_confirmed_at, created_at, updated_at";

fn user_from_row(row: &PgRow) -> Result<UserRecord> {
    Ok(UserRecord {
        id: row.try_get(0)?,
        email: row.try_get(1)?,
        password_hash: row.try_get(2)?,
        full_name: row.try_get(3)?,
        email_confirmed_at: row.try_get(4)?,
        created_at: row.try_get(5)?,
        updated_at: row.try_get(6)?,
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

fn interval(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[async_trait]
impl AuthStore for PostgresStore {
    async fn jwt_secret(&self, generated: String) -> Result<String> {
        sqlx::query(
            "INSERT INTO homi_meta (key, value) VALUES ('jwt_secret', $1) ON CONFLICT (key) DO NOTHING",
        )
        .bind(&generated)
        .execute(&self.pool)
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
             email_confirmed_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(user.id)
        .bind(&user.email)
        .bind(user.email.to_lowercase())
        .bind(&user.password_hash)
        .bind(&user.full_name)
        .bind(user.email_confirmed_at)
        .bind(user.created_at)
        .bind(user.updated_at)
        .execute(&self.pool)
        .await
        .map_err(email_taken)?;
        Ok(())
    }

    async fn user_by_email(&self, email_normalized: &str) -> Result<Option<UserRecord>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM homi_auth_users WHERE email_normalized = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(email_normalized)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<UserRecord>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM homi_auth_users WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn list_users(&self, limit: usize, offset: usize) -> Result<Vec<UserRecord>> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM homi_auth_users ORDER BY created_at, id LIMIT $1 OFFSET $2"
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
        let mut tx = self.pool.begin().await?;
        if let Some(name) = &full_name {
            sqlx::query("UPDATE homi_auth_users SET full_name = $1, updated_at = $2 WHERE id = $3")
                .bind(name)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some((email, confirmed)) = &email {
            sqlx::query(
                "UPDATE homi_auth_users SET email = $1, email_normalized = $2, email_confirmed_at = $3, \
                 updated_at = $4 WHERE id = $5",
            )
            .bind(email)
            .bind(email.to_lowercase())
            .bind(confirmed)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(email_taken)?;
            sqlx::query("DELETE FROM homi_auth_one_time_tokens WHERE user_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let sql = format!("SELECT {USER_COLUMNS} FROM homi_auth_users WHERE id = $1");
        let user = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
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
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE homi_auth_users SET password_hash = $1, updated_at = $2 WHERE id = $3",
        )
        .bind(password_hash)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(Error::not_found(format!("user {id}")));
        }
        let keep = match revoke {
            RevokeSessions::All => None,
            RevokeSessions::AllExcept(s) => Some(s),
        };
        sqlx::query(
            "UPDATE homi_auth_sessions SET revoked_at = $1 WHERE user_id = $2 \
             AND id IS DISTINCT FROM $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .bind(keep)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM homi_auth_one_time_tokens WHERE user_id = $1 AND purpose = $2")
            .bind(id)
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
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM homi_auth_signin_failures WHERE last_failure_at < $1 \
             AND (locked_until IS NULL OR locked_until < $2)",
        )
        .bind(now - interval(window))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // Make the row exist, then lock it: parallel attempts for one email
        // are decided one at a time.
        sqlx::query(
            "INSERT INTO homi_auth_signin_failures (email_digest, failures, last_failure_at) \
             VALUES ($1, 0, $2) ON CONFLICT (email_digest) DO NOTHING",
        )
        .bind(email_digest)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let (failures, locked): (i32, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT failures, locked_until FROM homi_auth_signin_failures \
             WHERE email_digest = $1 FOR UPDATE",
        )
        .bind(email_digest)
        .fetch_one(&mut *tx)
        .await?;
        if let Some(until) = locked.filter(|&t| t > now) {
            tx.commit().await?;
            return Ok(Some(until));
        }
        let attempts = i64::from(failures) + 1;
        let decision = attempt_decision(attempts, locked.is_some(), now, max_failures, lockout);
        sqlx::query(
            "UPDATE homi_auth_signin_failures SET failures = $1, last_failure_at = $2, \
             locked_until = $3 WHERE email_digest = $4",
        )
        .bind(i32::try_from(attempts).unwrap_or(i32::MAX))
        .bind(now)
        .bind(decision.lock.or(locked))
        .bind(email_digest)
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
        let mut tx = self.pool.begin().await?;
        let row: Option<(i32, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT failures, locked_until FROM homi_auth_signin_failures \
             WHERE email_digest = $1 FOR UPDATE",
        )
        .bind(email_digest)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((failures, locked)) = row else {
            return Ok(None);
        };
        if let Some(until) = locked.filter(|&t| t > now) {
            return Ok(Some(until));
        }
        let Some(length) = lock_length(i64::from(failures), max_failures, lockout) else {
            return Ok(None);
        };
        let until = now + length;
        sqlx::query(
            "UPDATE homi_auth_signin_failures SET locked_until = $1 WHERE email_digest = $2",
        )
        .bind(until)
        .bind(email_digest)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(until))
    }

    async fn clear_signin_failures(&self, email_digest: &str) -> Result<()> {
        sqlx::query("DELETE FROM homi_auth_signin_failures WHERE email_digest = $1")
            .bind(email_digest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_session(&self, session: &NewSession) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO homi_auth_sessions (id, user_id, created_at, refreshed_at, expires_at) \
             VALUES ($1, $2, $3, $3, $4)",
        )
        .bind(session.id)
        .bind(session.user_id)
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO homi_auth_refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(&session.refresh_token_hash)
        .bind(session.id)
        .bind(session.created_at)
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
        let found: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM homi_auth_sessions WHERE id = $1 AND user_id = $2 \
             AND revoked_at IS NULL AND expires_at > $3",
        )
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
        let mut tx = self.pool.begin().await?;
        // Lock the session row: concurrent refreshes of one session run one at a time.
        let row = sqlx::query(
            "SELECT t.session_id, t.used_at, s.user_id, s.revoked_at, s.expires_at, t.replaced_by \
             FROM homi_auth_refresh_tokens t JOIN homi_auth_sessions s ON s.id = t.session_id \
             WHERE t.token_hash = $1 FOR UPDATE OF s, t",
        )
        .bind(old_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(RefreshOutcome::Invalid);
        };
        let session_id: Uuid = row.try_get(0)?;
        let used_at: Option<DateTime<Utc>> = row.try_get(1)?;
        let user_id: Uuid = row.try_get(2)?;
        let revoked_at: Option<DateTime<Utc>> = row.try_get(3)?;
        let session_expires: DateTime<Utc> = row.try_get(4)?;
        let replaced_by: Option<String> = row.try_get(5)?;
        // A statement of its own, so that it sees what a refresh that held the
        // lock before us committed (READ COMMITTED takes a new snapshot).
        let replacement_unused = match &replaced_by {
            Some(child) if used_at.is_some() && !grace.is_zero() => sqlx::query_scalar::<_, bool>(
                "SELECT used_at IS NULL FROM homi_auth_refresh_tokens WHERE token_hash = $1",
            )
            .bind(child)
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or(false),
            _ => false,
        };
        if revoked_at.is_some() || session_expires <= now {
            return Ok(RefreshOutcome::Invalid);
        }
        let elapsed = used_at.map(|u| (now - u).num_microseconds().unwrap_or(i64::MAX));
        let grace_us = i64::try_from(grace.as_micros()).unwrap_or(i64::MAX);
        if let Some(elapsed) = elapsed
            && !within_grace(elapsed, grace_us, replacement_unused)
        {
            sqlx::query("UPDATE homi_auth_sessions SET revoked_at = $1 WHERE id = $2")
                .bind(now)
                .bind(session_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(RefreshOutcome::Reused);
        }
        sqlx::query(
            "UPDATE homi_auth_refresh_tokens SET used_at = COALESCE(used_at, $1), replaced_by = $2 \
             WHERE token_hash = $3",
        )
        .bind(now)
        .bind(new_hash)
        .bind(old_hash)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO homi_auth_refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(new_hash)
        .bind(session_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE homi_auth_sessions SET refreshed_at = $1, expires_at = $2 WHERE id = $3",
        )
        .bind(now)
        .bind(expires_at)
        .bind(session_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(RefreshOutcome::Rotated {
            session_id,
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
            "UPDATE homi_auth_sessions SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(session_id)
        .bind(user_id)
        .execute(&self.pool)
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
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM homi_auth_one_time_tokens WHERE user_id = $1 AND purpose = $2")
            .bind(user_id)
            .bind(purpose.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO homi_auth_one_time_tokens (token_hash, user_id, purpose, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(purpose.as_str())
        .bind(now)
        .bind(expires_at)
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
        let mut tx = self.pool.begin().await?;
        let Some(user_id) =
            take_token(&mut tx, token_hash, TokenPurpose::ResetPassword, now).await?
        else {
            return Ok(None);
        };
        let email: Option<String> = sqlx::query_scalar(
            "UPDATE homi_auth_users SET password_hash = $1, updated_at = $2, \
             email_confirmed_at = COALESCE(email_confirmed_at, $2) WHERE id = $3 \
             RETURNING email_normalized",
        )
        .bind(password_hash)
        .bind(now)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE homi_auth_sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        if let Some(email) = email {
            sqlx::query("DELETE FROM homi_auth_signin_failures WHERE email_digest = $1")
                .bind(crate::store::auth::token_digest(&email))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(user_id))
    }

    async fn confirm_email(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<Uuid>> {
        let mut tx = self.pool.begin().await?;
        let Some(user_id) =
            take_token(&mut tx, token_hash, TokenPurpose::ConfirmEmail, now).await?
        else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE homi_auth_users SET email_confirmed_at = COALESCE(email_confirmed_at, $1), \
             updated_at = $1 WHERE id = $2",
        )
        .bind(now)
        .bind(user_id)
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
        let mut tx = self.pool.begin().await?;
        purge_expired_revocations(&mut tx).await?;
        sqlx::query(
            "INSERT INTO homi_auth_revoked_sessions (session_id, user_id, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (session_id) DO UPDATE SET \
             expires_at = GREATEST(homi_auth_revoked_sessions.expires_at, EXCLUDED.expires_at)",
        )
        .bind(session_id)
        .bind(user_id)
        .bind(expires_at)
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
        let mut tx = self.pool.begin().await?;
        purge_expired_revocations(&mut tx).await?;
        sqlx::query(
            "INSERT INTO homi_auth_user_revocations (user_id, not_before, keep_session, expires_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO UPDATE SET \
             not_before = EXCLUDED.not_before, keep_session = EXCLUDED.keep_session, \
             expires_at = GREATEST(homi_auth_user_revocations.expires_at, EXCLUDED.expires_at)",
        )
        .bind(user_id)
        .bind(not_before)
        .bind(keep_session)
        .bind(expires_at)
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
        let row: (bool, Option<DateTime<Utc>>, Option<Uuid>) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM homi_auth_revoked_sessions WHERE session_id = $1 AND user_id = $2), \
             (SELECT not_before FROM homi_auth_user_revocations WHERE user_id = $2), \
             (SELECT keep_session FROM homi_auth_user_revocations WHERE user_id = $2)",
        )
        .bind(session_id)
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(ExternalRevocation {
            session_revoked: row.0,
            user_not_before: row.1,
            keep_session: row.2,
        })
    }

    async fn delete_user(&self, user_id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM homi_memory_history WHERE user_id = $1 \
             OR memory_id IN (SELECT id FROM homi_memories WHERE user_id = $1)",
        )
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM homi_memory_reembed WHERE id IN (SELECT id FROM homi_memories WHERE user_id = $1)",
        )
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        let memories = sqlx::query("DELETE FROM homi_memories WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let mut account = false;
        if let Ok(id) = Uuid::parse_str(user_id) {
            let email: Option<String> = sqlx::query_scalar(
                "DELETE FROM homi_auth_users WHERE id = $1 RETURNING email_normalized",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(email) = &email {
                sqlx::query("DELETE FROM homi_auth_signin_failures WHERE email_digest = $1")
                    .bind(crate::store::auth::token_digest(email))
                    .execute(&mut *tx)
                    .await?;
            }
            account = email.is_some();
        }
        sqlx::query("DELETE FROM homi_jobs WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM homi_conversation_messages WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM homi_conversations WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(account || memories > 0)
    }

    async fn create_api_key(&self, record: &ApiKeyRecord) -> Result<()> {
        let k = &record.key;
        let scopes: Vec<&str> = k.scopes.iter().map(|s| s.as_str()).collect();
        sqlx::query(
            "INSERT INTO homi_api_keys (id, name, namespace, prefix, key_hash, scopes, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(k.id)
        .bind(&k.name)
        .bind(&k.namespace)
        .bind(&k.prefix)
        .bind(&record.key_hash)
        .bind(&scopes)
        .bind(k.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let row = sqlx::query(
            "SELECT id, name, namespace, prefix, scopes, created_at, last_used_at, revoked_at, key_hash \
             FROM homi_api_keys WHERE key_hash = $1",
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
            "UPDATE homi_api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn touch_api_key(&self, id: Uuid, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE homi_api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

async fn purge_expired_revocations(tx: &mut PgConnection) -> Result<()> {
    sqlx::query("DELETE FROM homi_auth_revoked_sessions WHERE expires_at < now()")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM homi_auth_user_revocations WHERE expires_at < now()")
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Deletes a one-time token of `purpose` and returns its user, unless it is
/// unknown or expired.
async fn take_token(
    tx: &mut PgConnection,
    token_hash: &str,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>> {
    let row = sqlx::query(
        "DELETE FROM homi_auth_one_time_tokens WHERE token_hash = $1 AND purpose = $2 \
         RETURNING user_id, expires_at",
    )
    .bind(token_hash)
    .bind(purpose.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let expires_at: DateTime<Utc> = row.try_get(1)?;
    if expires_at <= now {
        return Ok(None);
    }
    Ok(Some(row.try_get(0)?))
}

fn key_from_row(row: &PgRow) -> Result<ApiKey> {
    let scopes: Vec<String> = row.try_get(4)?;
    Ok(ApiKey {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        namespace: row.try_get(2)?,
        prefix: row.try_get(3)?,
        scopes: scopes
            .iter()
            .map(|s| KeyScope::parse(s))
            .collect::<Result<_>>()
            .map_err(|e| Error::storage(format!("corrupt key scopes {scopes:?}: {e}")))?,
        created_at: row.try_get(5)?,
        last_used_at: row.try_get(6)?,
        revoked_at: row.try_get(7)?,
    })
}
