//! [`AuthStore`] on any SQL store, written once: accounts, auth sessions,
//! the refresh-token rotation and its reuse detection, sign-in lockout,
//! one-time tokens, external revocations and API keys, in `homi_auth_*`
//! tables beside the memories. The protocols' decisions are pure functions
//! in `store/auth.rs` (`attempt_decision`, `lock_length`, `within_grace`).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::memory::MemoryDriver;
use super::{Bind, Columns, Dialect, Driver, Exec, SqlStore, binds, for_update};
use crate::error::{Error, Result};
use crate::store::auth::{
    ApiKey, ApiKeyRecord, AuthStore, ExternalRevocation, KeyScope, NewSession, RefreshOutcome,
    RevokeSessions, SigninFailures, SigninKeys, TokenPurpose, UserRecord, attempt_decision,
    lock_length, within_grace,
};

const USER_COLUMNS: &str = "id, email, password_hash, full_name, email_confirmed_at, created_at, updated_at, pending_email";

const KEY_COLUMNS: &str =
    "id, name, namespace, prefix, scopes, created_at, last_used_at, revoked_at, key_hash";

fn user_from_row(row: &impl Columns) -> Result<UserRecord> {
    Ok(UserRecord {
        id: row.uuid(0)?,
        email: row.text(1)?,
        password_hash: row.text(2)?,
        full_name: row.opt_text(3)?,
        email_confirmed_at: row.opt_time(4)?,
        created_at: row.time(5)?,
        updated_at: row.time(6)?,
        pending_email: row.opt_text(7)?,
    })
}

fn key_from_row(row: &impl Columns) -> Result<ApiKey> {
    let scopes = row.texts(4)?;
    Ok(ApiKey {
        id: row.uuid(0)?,
        name: row.text(1)?,
        namespace: row.text(2)?,
        prefix: row.text(3)?,
        scopes: scopes
            .iter()
            .map(|s| KeyScope::parse(s))
            .collect::<Result<_>>()
            .map_err(|e| Error::storage(format!("corrupt key scopes {scopes:?}: {e}")))?,
        created_at: row.time(5)?,
        last_used_at: row.opt_time(6)?,
        revoked_at: row.opt_time(7)?,
    })
}

/// A taken email, from the unique index on `email_normalized`.
fn email_taken(e: Error) -> Error {
    if e.is_unique_violation() {
        Error::Conflict("an account with this email already exists".into())
    } else {
        e
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

async fn user<D: Driver>(c: &mut D::Conn, column: &str, value: Bind) -> Result<Option<UserRecord>> {
    let ([p], args) = binds::<D, 1>([value]);
    let sql = format!("SELECT {USER_COLUMNS} FROM homi_auth_users WHERE {column} = {p}");
    c.optional(sql, args)
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
}

/// Drops revocations whose tokens have all expired.
async fn purge_expired_revocations<D: Driver>(c: &mut D::Conn) -> Result<()> {
    for table in ["homi_auth_revoked_sessions", "homi_auth_user_revocations"] {
        let ([now], args) = binds::<D, 1>([Utc::now().into()]);
        c.run(
            format!("DELETE FROM {table} WHERE expires_at < {now}"),
            args,
        )
        .await?;
    }
    Ok(())
}

/// Deletes a one-time token of `purpose` and returns its user, unless it is
/// unknown or expired (an expired one is deleted too).
async fn take_token<D: Driver>(
    c: &mut D::Conn,
    token_hash: &str,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>> {
    Ok(take_token_for::<D>(c, token_hash, purpose, now)
        .await?
        .map(|(user, _)| user))
}

/// Consumes a one-time token: its user and the address it was sent to.
async fn take_token_for<D: Driver>(
    c: &mut D::Conn,
    token_hash: &str,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
) -> Result<Option<(Uuid, Option<String>)>> {
    let ([h, p], args) = binds::<D, 2>([token_hash.into(), purpose.as_str().into()]);
    let sql = format!(
        "DELETE FROM homi_auth_one_time_tokens WHERE token_hash = {h} AND purpose = {p} \
         RETURNING user_id, expires_at, email_normalized"
    );
    match c.optional(sql, args).await? {
        Some(row) if row.time(1)? > now => Ok(Some((row.uuid(0)?, row.opt_text(2)?))),
        _ => Ok(None),
    }
}

/// Revokes every current session of `user` at `now`, but `keep`.
async fn revoke_sessions<D: Driver>(
    c: &mut D::Conn,
    user: Uuid,
    keep: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<()> {
    let ([t, u], mut args) = binds::<D, 2>([now.into(), user.into()]);
    let keep = match keep {
        Some(s) => format!(" AND id <> {}", D::bind(&mut args, s.into())),
        None => String::new(),
    };
    let sql = format!(
        "UPDATE homi_auth_sessions SET revoked_at = {t} WHERE user_id = {u} AND revoked_at IS NULL{keep}"
    );
    c.run(sql, args).await?;
    Ok(())
}

/// Forgets the sign-in failures of the account with this normalised email:
/// its own counter and its pairs with every network.
async fn clear_failures<D: Driver>(c: &mut D::Conn, email: &str) -> Result<()> {
    let keys = SigninKeys::new(email, None);
    let ([a, p], args) = binds::<D, 2>([keys.account.into(), SigninKeys::pairs_of(email).into()]);
    let sql = format!(
        "DELETE FROM homi_auth_signin_failures WHERE guard_key = {a} OR guard_key LIKE {p}"
    );
    c.run(sql, args).await?;
    Ok(())
}

/// A sign-in failure row, locked: `(failures, locked_until)`.
async fn failures<D: Driver>(
    c: &mut D::Conn,
    key: &str,
) -> Result<Option<(i64, Option<DateTime<Utc>>)>> {
    let ([d], args) = binds::<D, 1>([key.into()]);
    let sql = format!(
        "SELECT CAST(failures AS BIGINT), locked_until FROM homi_auth_signin_failures \
         WHERE guard_key = {d}{}",
        for_update::<D>("homi_auth_signin_failures")
    );
    match c.optional(sql, args).await? {
        Some(row) => Ok(Some((row.int(0)?, row.opt_time(1)?))),
        None => Ok(None),
    }
}

#[async_trait]
impl<S: SqlStore> AuthStore for S {
    async fn jwt_secret(&self, generated: String) -> Result<String> {
        let mut tx = self.write().await?;
        let ([g], args) = binds::<S::D, 1>([generated.into()]);
        let sql = format!(
            "INSERT INTO homi_meta (key, value) VALUES ('jwt_secret', {g}) ON CONFLICT (key) DO NOTHING"
        );
        tx.run(sql, args).await?;
        let sql = "SELECT value FROM homi_meta WHERE key = 'jwt_secret'".to_owned();
        let secret = tx.optional(sql, Default::default()).await?;
        let secret = secret
            .ok_or_else(|| Error::storage("the token secret vanished"))?
            .text(0)?;
        tx.commit().await?;
        Ok(secret)
    }

    async fn create_user(&self, user: &UserRecord) -> Result<()> {
        let mut c = self.writer().await?;
        let (p, args) = binds::<S::D, 8>([
            user.id.into(),
            user.email.as_str().into(),
            user.email.to_lowercase().into(),
            user.password_hash.as_str().into(),
            user.full_name.clone().into(),
            user.email_confirmed_at.into(),
            user.created_at.into(),
            user.updated_at.into(),
        ]);
        let sql = format!(
            "INSERT INTO homi_auth_users (id, email, email_normalized, password_hash, full_name, \
             email_confirmed_at, created_at, updated_at) VALUES ({})",
            p.join(", ")
        );
        c.run(sql, args).await.map_err(email_taken)?;
        Ok(())
    }

    async fn user_by_email(&self, email_normalized: &str) -> Result<Option<UserRecord>> {
        let mut c = self.read().await?;
        user::<S::D>(&mut c, "email_normalized", email_normalized.into()).await
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<UserRecord>> {
        let mut c = self.read().await?;
        user::<S::D>(&mut c, "id", id.into()).await
    }

    async fn list_users(&self, limit: usize, offset: usize) -> Result<Vec<UserRecord>> {
        let count = |n: usize| Bind::Int(i64::try_from(n).unwrap_or(i64::MAX));
        let ([l, o], args) = binds::<S::D, 2>([count(limit), count(offset)]);
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM homi_auth_users ORDER BY created_at, id LIMIT {l} OFFSET {o}"
        );
        let mut c = self.read().await?;
        c.all(sql, args).await?.iter().map(user_from_row).collect()
    }

    async fn update_user(
        &self,
        id: Uuid,
        full_name: Option<Option<String>>,
        email: Option<(String, Option<DateTime<Utc>>)>,
        now: DateTime<Utc>,
    ) -> Result<Option<UserRecord>> {
        let mut tx = self.write().await?;
        if let Some(name) = full_name {
            let ([n, t, i], args) = binds::<S::D, 3>([name.into(), now.into(), id.into()]);
            let sql = format!(
                "UPDATE homi_auth_users SET full_name = {n}, updated_at = {t} WHERE id = {i}"
            );
            tx.run(sql, args).await?;
        }
        if let Some((email, confirmed)) = email {
            let normalized = email.to_lowercase();
            let ([e, n, c, t, i], args) = binds::<S::D, 5>([
                email.into(),
                normalized.into(),
                confirmed.into(),
                now.into(),
                id.into(),
            ]);
            let sql = format!(
                "UPDATE homi_auth_users SET email = {e}, email_normalized = {n}, \
                 email_confirmed_at = {c}, updated_at = {t} WHERE id = {i}"
            );
            tx.run(sql, args).await.map_err(email_taken)?;
            // Tokens sent to the old address no longer apply.
            let ([i], args) = binds::<S::D, 1>([id.into()]);
            let sql = format!("DELETE FROM homi_auth_one_time_tokens WHERE user_id = {i}");
            tx.run(sql, args).await?;
        }
        let user = user::<S::D>(&mut tx, "id", id.into()).await?;
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
        let mut tx = self.write().await?;
        let ([h, t, i], args) = binds::<S::D, 3>([password_hash.into(), now.into(), id.into()]);
        let sql = format!(
            "UPDATE homi_auth_users SET password_hash = {h}, updated_at = {t} WHERE id = {i}"
        );
        if tx.run(sql, args).await? == 0 {
            return Err(Error::not_found(format!("user {id}")));
        }
        let keep = match revoke {
            RevokeSessions::All => None,
            RevokeSessions::AllExcept(s) => Some(s),
        };
        revoke_sessions::<S::D>(&mut tx, id, keep, now).await?;
        let ([i, p], args) =
            binds::<S::D, 2>([id.into(), TokenPurpose::ResetPassword.as_str().into()]);
        let sql =
            format!("DELETE FROM homi_auth_one_time_tokens WHERE user_id = {i} AND purpose = {p}");
        tx.run(sql, args).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn begin_signin_attempt(
        &self,
        key: &str,
        now: DateTime<Utc>,
        max_failures: u32,
        lockout: Duration,
        window: Duration,
    ) -> Result<Option<DateTime<Utc>>> {
        let mut tx = self.write().await?;
        // Forget stale rows, so emails that were tried once do not pile up.
        let stale = now - chrono::Duration::microseconds(micros(window));
        let ([s, t], args) = binds::<S::D, 2>([stale.into(), now.into()]);
        let sql = format!(
            "DELETE FROM homi_auth_signin_failures WHERE last_failure_at < {s} \
             AND (locked_until IS NULL OR locked_until < {t})"
        );
        tx.run(sql, args).await?;
        // Make the row exist, then lock it: parallel attempts for one email
        // are decided one at a time.
        let ([d, t], args) = binds::<S::D, 2>([key.into(), now.into()]);
        let sql = format!(
            "INSERT INTO homi_auth_signin_failures (guard_key, failures, last_failure_at) \
             VALUES ({d}, 0, {t}) ON CONFLICT (guard_key) DO NOTHING"
        );
        tx.run(sql, args).await?;
        let (failures, locked) = failures::<S::D>(&mut tx, key).await?.unwrap_or((0, None));
        if let Some(until) = locked.filter(|&t| t > now) {
            tx.commit().await?;
            return Ok(Some(until));
        }
        let decision = attempt_decision(failures + 1, locked.is_some(), now, max_failures, lockout);
        let ([f, t, l, d], args) = binds::<S::D, 4>([
            (failures + 1).min(i64::from(i32::MAX)).into(),
            now.into(),
            decision.lock.or(locked).into(),
            key.into(),
        ]);
        let sql = format!(
            "UPDATE homi_auth_signin_failures SET failures = {f}, last_failure_at = {t}, \
             locked_until = {l} WHERE guard_key = {d}"
        );
        tx.run(sql, args).await?;
        tx.commit().await?;
        Ok(decision.refuse.then_some(decision.lock).flatten())
    }

    async fn signin_failed(
        &self,
        key: &str,
        now: DateTime<Utc>,
        max_failures: u32,
        lockout: Duration,
    ) -> Result<Option<DateTime<Utc>>> {
        let mut tx = self.write().await?;
        let Some((failures, locked)) = failures::<S::D>(&mut tx, key).await? else {
            return Ok(None);
        };
        if let Some(until) = locked.filter(|&t| t > now) {
            return Ok(Some(until));
        }
        let Some(length) = lock_length(failures, max_failures, lockout) else {
            return Ok(None);
        };
        let until = now + length;
        let ([u, d], args) = binds::<S::D, 2>([until.into(), key.into()]);
        let sql = format!(
            "UPDATE homi_auth_signin_failures SET locked_until = {u} WHERE guard_key = {d}"
        );
        tx.run(sql, args).await?;
        tx.commit().await?;
        Ok(Some(until))
    }

    async fn signin_failures(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> Result<SigninFailures> {
        let mut c = self.read().await?;
        let stale = now - chrono::Duration::microseconds(micros(window));
        let ([k, s, t], args) = binds::<S::D, 3>([key.into(), stale.into(), now.into()]);
        let sql = format!(
            "SELECT CAST(failures AS BIGINT), locked_until FROM homi_auth_signin_failures \
             WHERE guard_key = {k} AND (last_failure_at >= {s} OR locked_until > {t})"
        );
        Ok(match c.optional(sql, args).await? {
            Some(row) => SigninFailures {
                failures: row.int(0)?,
                locked_until: row.opt_time(1)?,
            },
            None => SigninFailures::default(),
        })
    }

    async fn clear_signin_failures(&self, key: &str) -> Result<()> {
        let mut c = self.writer().await?;
        let ([d], args) = binds::<S::D, 1>([key.into()]);
        let sql = format!("DELETE FROM homi_auth_signin_failures WHERE guard_key = {d}");
        c.run(sql, args).await?;
        Ok(())
    }

    async fn prune_expired(&self, now: DateTime<Utc>, failure_window: Duration) -> Result<u64> {
        let mut tx = self.write().await?;
        let mut pruned = 0;
        let day_ago = now - chrono::Duration::days(1);
        let ([e, r], args) = binds::<S::D, 2>([now.into(), day_ago.into()]);
        // Refresh tokens go with their sessions (ON DELETE CASCADE).
        let sql =
            format!("DELETE FROM homi_auth_sessions WHERE expires_at < {e} OR revoked_at < {r}");
        pruned += tx.run(sql, args).await?;
        let ([e], args) = binds::<S::D, 1>([now.into()]);
        let sql = format!("DELETE FROM homi_auth_one_time_tokens WHERE expires_at < {e}");
        pruned += tx.run(sql, args).await?;
        let stale = now - chrono::Duration::microseconds(micros(failure_window));
        let ([s, t], args) = binds::<S::D, 2>([stale.into(), now.into()]);
        let sql = format!(
            "DELETE FROM homi_auth_signin_failures WHERE last_failure_at < {s} \
             AND (locked_until IS NULL OR locked_until < {t})"
        );
        pruned += tx.run(sql, args).await?;
        purge_expired_revocations::<S::D>(&mut tx).await?;
        tx.commit().await?;
        Ok(pruned)
    }

    async fn create_session(&self, session: &NewSession) -> Result<()> {
        let mut tx = self.write().await?;
        let (p, args) = binds::<S::D, 5>([
            session.id.into(),
            session.user_id.into(),
            session.created_at.into(),
            session.created_at.into(),
            session.expires_at.into(),
        ]);
        let sql = format!(
            "INSERT INTO homi_auth_sessions (id, user_id, created_at, refreshed_at, expires_at) \
             VALUES ({})",
            p.join(", ")
        );
        tx.run(sql, args).await?;
        let ([h, s, t], args) = binds::<S::D, 3>([
            session.refresh_token_hash.as_str().into(),
            session.id.into(),
            session.created_at.into(),
        ]);
        let sql = format!(
            "INSERT INTO homi_auth_refresh_tokens (token_hash, session_id, created_at) VALUES ({h}, {s}, {t})"
        );
        tx.run(sql, args).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn session_active(
        &self,
        session_id: Uuid,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let ([s, u, t], args) = binds::<S::D, 3>([session_id.into(), user_id.into(), now.into()]);
        let sql = format!(
            "SELECT 1 FROM homi_auth_sessions WHERE id = {s} AND user_id = {u} \
             AND revoked_at IS NULL AND expires_at > {t}"
        );
        // Every request verifies a token: answered on this thread when possible.
        if let Some(active) = self.exists_now(&sql, &args) {
            return Ok(active);
        }
        let mut c = self.read().await?;
        Ok(c.optional(sql, args).await?.is_some())
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        grace: Duration,
    ) -> Result<RefreshOutcome> {
        let mut tx = self.write().await?;
        // Lock the session row: concurrent refreshes of one session run one
        // at a time.
        let ([h], args) = binds::<S::D, 1>([old_hash.into()]);
        let sql = format!(
            "SELECT t.session_id, t.used_at, s.user_id, s.revoked_at, s.expires_at, t.replaced_by \
             FROM homi_auth_refresh_tokens t JOIN homi_auth_sessions s ON s.id = t.session_id \
             WHERE t.token_hash = {h}{}",
            for_update::<S::D>("s, t")
        );
        let Some(row) = tx.optional(sql, args).await? else {
            return Ok(RefreshOutcome::Invalid);
        };
        let session_id = row.uuid(0)?;
        let used_at = row.opt_time(1)?;
        let user_id = row.uuid(2)?;
        if row.opt_time(3)?.is_some() || row.time(4)? <= now {
            return Ok(RefreshOutcome::Invalid);
        }
        if let Some(used) = used_at {
            // A statement of its own, so that on Postgres it sees what a
            // refresh that held the lock before committed (READ COMMITTED
            // takes a new snapshot).
            let replacement_unused = match row.opt_text(5)? {
                Some(child) if !grace.is_zero() => {
                    let ([c], args) = binds::<S::D, 1>([child.into()]);
                    let sql = format!(
                        "SELECT 1 FROM homi_auth_refresh_tokens WHERE token_hash = {c} AND used_at IS NULL"
                    );
                    tx.optional(sql, args).await?.is_some()
                }
                _ => false,
            };
            let elapsed = (now - used).num_microseconds().unwrap_or(i64::MAX);
            if !within_grace(elapsed, micros(grace), replacement_unused) {
                let ([t, s], args) = binds::<S::D, 2>([now.into(), session_id.into()]);
                let sql = format!("UPDATE homi_auth_sessions SET revoked_at = {t} WHERE id = {s}");
                tx.run(sql, args).await?;
                tx.commit().await?;
                return Ok(RefreshOutcome::Reused);
            }
        }
        let ([t, n, o], args) = binds::<S::D, 3>([now.into(), new_hash.into(), old_hash.into()]);
        let sql = format!(
            "UPDATE homi_auth_refresh_tokens SET used_at = COALESCE(used_at, {t}), replaced_by = {n} \
             WHERE token_hash = {o}"
        );
        tx.run(sql, args).await?;
        let ([n, s, t], args) = binds::<S::D, 3>([new_hash.into(), session_id.into(), now.into()]);
        let sql = format!(
            "INSERT INTO homi_auth_refresh_tokens (token_hash, session_id, created_at) VALUES ({n}, {s}, {t})"
        );
        tx.run(sql, args).await?;
        let ([t, e, s], args) =
            binds::<S::D, 3>([now.into(), expires_at.into(), session_id.into()]);
        let sql = format!(
            "UPDATE homi_auth_sessions SET refreshed_at = {t}, expires_at = {e} WHERE id = {s}"
        );
        tx.run(sql, args).await?;
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
        let mut c = self.writer().await?;
        let ([t, s, u], args) = binds::<S::D, 3>([now.into(), session_id.into(), user_id.into()]);
        let sql = format!(
            "UPDATE homi_auth_sessions SET revoked_at = {t} WHERE id = {s} AND user_id = {u} \
             AND revoked_at IS NULL"
        );
        let n = c.run(sql, args).await?;
        Ok(n > 0)
    }

    async fn create_one_time_token(
        &self,
        token_hash: &str,
        user_id: Uuid,
        purpose: TokenPurpose,
        email: Option<&str>,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        let ([u, p], args) = binds::<S::D, 2>([user_id.into(), purpose.as_str().into()]);
        let sql =
            format!("DELETE FROM homi_auth_one_time_tokens WHERE user_id = {u} AND purpose = {p}");
        tx.run(sql, args).await?;
        let (p, args) = binds::<S::D, 6>([
            token_hash.into(),
            user_id.into(),
            purpose.as_str().into(),
            email.map(str::to_lowercase).into(),
            now.into(),
            expires_at.into(),
        ]);
        let sql = format!(
            "INSERT INTO homi_auth_one_time_tokens (token_hash, user_id, purpose, email_normalized, \
             created_at, expires_at) VALUES ({})",
            p.join(", ")
        );
        tx.run(sql, args).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn reset_password(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Uuid>> {
        let mut tx = self.write().await?;
        let Some(user_id) =
            take_token::<S::D>(&mut tx, token_hash, TokenPurpose::ResetPassword, now).await?
        else {
            // An expired token is gone for good.
            tx.commit().await?;
            return Ok(None);
        };
        let ([h, t, c, u], args) =
            binds::<S::D, 4>([password_hash.into(), now.into(), now.into(), user_id.into()]);
        // Following the emailed link proves the address.
        let sql = format!(
            "UPDATE homi_auth_users SET password_hash = {h}, updated_at = {t}, \
             email_confirmed_at = COALESCE(email_confirmed_at, {c}) WHERE id = {u} \
             RETURNING email_normalized"
        );
        let email = tx.optional(sql, args).await?;
        revoke_sessions::<S::D>(&mut tx, user_id, None, now).await?;
        if let Some(row) = email {
            clear_failures::<S::D>(&mut tx, &row.text(0)?).await?;
        }
        tx.commit().await?;
        Ok(Some(user_id))
    }

    async fn set_pending_email(
        &self,
        id: Uuid,
        pending: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        if let Some(email) = pending {
            let ([n, i], args) = binds::<S::D, 2>([email.to_lowercase().into(), id.into()]);
            let sql =
                format!("SELECT 1 FROM homi_auth_users WHERE email_normalized = {n} AND id <> {i}");
            if tx.optional(sql, args).await?.is_some() {
                return Err(Error::Conflict(
                    "an account with this email already exists".into(),
                ));
            }
        }
        let ([p, t, i], args) =
            binds::<S::D, 3>([pending.map(str::to_owned).into(), now.into(), id.into()]);
        let sql = format!(
            "UPDATE homi_auth_users SET pending_email = {p}, updated_at = {t} WHERE id = {i}"
        );
        tx.run(sql, args).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn confirm_email(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<Uuid>> {
        let mut tx = self.write().await?;
        let Some((user_id, proven)) =
            take_token_for::<S::D>(&mut tx, token_hash, TokenPurpose::ConfirmEmail, now).await?
        else {
            // An expired token is gone for good.
            tx.commit().await?;
            return Ok(None);
        };
        let Some(user) = user::<S::D>(&mut tx, "id", user_id.into()).await? else {
            tx.commit().await?;
            return Ok(None);
        };
        let pending = user.pending_email.as_deref().map(str::to_lowercase);
        // The pending address is proven: it becomes the account's. Or the
        // account's own address is (a token from before tokens named their
        // address was sent to the address of its time: an email change
        // voids such tokens).
        let becomes_pending = proven.is_some() && proven == pending;
        let owns = proven
            .as_deref()
            .is_none_or(|address| *address == user.email.to_lowercase());
        if !becomes_pending && !owns {
            // An address the account no longer has or waits for.
            tx.commit().await?;
            return Ok(None);
        }
        // Placeholders are bound in the order the statement names them.
        let mut args = Default::default();
        let change = if becomes_pending {
            let n = S::D::bind(&mut args, pending.clone().unwrap_or_default().into());
            let c = S::D::bind(&mut args, now.into());
            format!(
                "email = pending_email, email_normalized = {n}, pending_email = NULL, \
                 email_confirmed_at = {c}"
            )
        } else {
            let c = S::D::bind(&mut args, now.into());
            format!("email_confirmed_at = COALESCE(email_confirmed_at, {c})")
        };
        let t = S::D::bind(&mut args, now.into());
        let u = S::D::bind(&mut args, user_id.into());
        let sql = format!("UPDATE homi_auth_users SET {change}, updated_at = {t} WHERE id = {u}");
        tx.run(sql, args).await.map_err(email_taken)?;
        if becomes_pending {
            // Links sent to the old address no longer apply.
            let ([i], args) = binds::<S::D, 1>([user_id.into()]);
            let sql = format!("DELETE FROM homi_auth_one_time_tokens WHERE user_id = {i}");
            tx.run(sql, args).await?;
        }
        tx.commit().await?;
        Ok(Some(user_id))
    }

    async fn revoke_external_session(
        &self,
        session_id: Uuid,
        user_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        purge_expired_revocations::<S::D>(&mut tx).await?;
        let ([s, u, e], args) =
            binds::<S::D, 3>([session_id.into(), user_id.into(), expires_at.into()]);
        let sql = format!(
            "INSERT INTO homi_auth_revoked_sessions (session_id, user_id, expires_at) VALUES ({s}, {u}, {e}) \
             ON CONFLICT (session_id) DO UPDATE SET \
             expires_at = {}(homi_auth_revoked_sessions.expires_at, excluded.expires_at)",
            S::D::GREATEST
        );
        tx.run(sql, args).await?;
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
        let mut tx = self.write().await?;
        purge_expired_revocations::<S::D>(&mut tx).await?;
        let ([u, n, k, e], args) = binds::<S::D, 4>([
            user_id.into(),
            not_before.into(),
            keep_session.into(),
            expires_at.into(),
        ]);
        let sql = format!(
            "INSERT INTO homi_auth_user_revocations (user_id, not_before, keep_session, expires_at) \
             VALUES ({u}, {n}, {k}, {e}) ON CONFLICT (user_id) DO UPDATE SET \
             not_before = excluded.not_before, keep_session = excluded.keep_session, \
             expires_at = {}(homi_auth_user_revocations.expires_at, excluded.expires_at)",
            S::D::GREATEST
        );
        tx.run(sql, args).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn external_revocation(
        &self,
        session_id: Uuid,
        user_id: &str,
    ) -> Result<ExternalRevocation> {
        let ([s, u1, u2, u3], args) = binds::<S::D, 4>([
            session_id.into(),
            user_id.into(),
            user_id.into(),
            user_id.into(),
        ]);
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM homi_auth_revoked_sessions WHERE session_id = {s} AND user_id = {u1}), \
             (SELECT not_before FROM homi_auth_user_revocations WHERE user_id = {u2}), \
             (SELECT keep_session FROM homi_auth_user_revocations WHERE user_id = {u3})"
        );
        let mut c = self.read().await?;
        let row = c
            .optional(sql, args)
            .await?
            .ok_or_else(|| Error::storage("a query without FROM returned no row"))?;
        Ok(ExternalRevocation {
            session_revoked: row.flag(0)?,
            user_not_before: row.opt_time(1)?,
            keep_session: row.opt_uuid(2)?,
        })
    }

    async fn delete_user(&self, user_id: &str) -> Result<bool> {
        let mut tx = self.write().await?;
        // Work in flight for the user must not write after this.
        super::deletions::record::<S::D>(
            &mut tx,
            Some(&crate::model::Scope::user(user_id)),
            Utc::now(),
        )
        .await?;
        let ([u1, u2], args) = binds::<S::D, 2>([user_id.into(), user_id.into()]);
        let sql = format!(
            "DELETE FROM homi_memory_history WHERE user_id = {u1} \
             OR memory_id IN (SELECT id FROM homi_memories WHERE user_id = {u2})"
        );
        tx.run(sql, args).await?;
        let ([u], args) = binds::<S::D, 1>([user_id.into()]);
        let sql = format!(
            "DELETE FROM homi_memory_reembed WHERE id IN (SELECT id FROM homi_memories WHERE user_id = {u})"
        );
        tx.run(sql, args).await?;
        let ([u], args) = binds::<S::D, 1>([user_id.into()]);
        let rows = tx
            .all(
                format!(
                    "DELETE FROM homi_memories WHERE user_id = {u} RETURNING {}",
                    S::D::ROW_KEY
                ),
                args,
            )
            .await?;
        let memories = rows.len() as u64;
        if !rows.is_empty() {
            let seq = S::D::stamp(&mut tx).await?;
            S::D::forget(&mut tx, seq, &rows).await?;
        }
        // Accounts' ids are uuids; other users (of Supabase, of API keys)
        // have memories only.
        let mut account = false;
        if let Ok(id) = Uuid::parse_str(user_id) {
            let ([i], args) = binds::<S::D, 1>([id.into()]);
            let sql =
                format!("DELETE FROM homi_auth_users WHERE id = {i} RETURNING email_normalized");
            if let Some(row) = tx.optional(sql, args).await? {
                clear_failures::<S::D>(&mut tx, &row.text(0)?).await?;
                account = true;
            }
        }
        for table in [
            "homi_jobs",
            "homi_conversation_messages",
            "homi_conversations",
            "homi_usage",
        ] {
            let ([u], args) = binds::<S::D, 1>([user_id.into()]);
            tx.run(format!("DELETE FROM {table} WHERE user_id = {u}"), args)
                .await?;
        }
        tx.commit().await?;
        self.scrub().await;
        Ok(account || memories > 0)
    }

    async fn create_api_key(&self, record: &ApiKeyRecord) -> Result<()> {
        let k = &record.key;
        let scopes = k.scopes.iter().map(|s| s.as_str().to_owned()).collect();
        let mut c = self.writer().await?;
        let (p, args) = binds::<S::D, 7>([
            k.id.into(),
            k.name.as_str().into(),
            k.namespace.as_str().into(),
            k.prefix.as_str().into(),
            record.key_hash.as_str().into(),
            Bind::Texts(scopes),
            k.created_at.into(),
        ]);
        let sql = format!(
            "INSERT INTO homi_api_keys (id, name, namespace, prefix, key_hash, scopes, created_at) \
             VALUES ({})",
            p.join(", ")
        );
        c.run(sql, args).await?;
        Ok(())
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let ([h], args) = binds::<S::D, 1>([key_hash.into()]);
        let sql = format!("SELECT {KEY_COLUMNS} FROM homi_api_keys WHERE key_hash = {h}");
        let mut c = self.read().await?;
        let Some(row) = c.optional(sql, args).await? else {
            return Ok(None);
        };
        Ok(Some(ApiKeyRecord {
            key: key_from_row(&row)?,
            key_hash: row.text(8)?,
        }))
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM homi_api_keys ORDER BY created_at DESC, id");
        let mut c = self.read().await?;
        c.all(sql, Default::default())
            .await?
            .iter()
            .map(key_from_row)
            .collect()
    }

    async fn revoke_api_key(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool> {
        let mut c = self.writer().await?;
        let ([t, i], args) = binds::<S::D, 2>([now.into(), id.into()]);
        let sql = format!(
            "UPDATE homi_api_keys SET revoked_at = {t} WHERE id = {i} AND revoked_at IS NULL"
        );
        let n = c.run(sql, args).await?;
        Ok(n == 1)
    }

    async fn touch_api_key(&self, id: Uuid, now: DateTime<Utc>) -> Result<()> {
        let mut c = self.writer().await?;
        let ([t, i], args) = binds::<S::D, 2>([now.into(), id.into()]);
        let sql = format!("UPDATE homi_api_keys SET last_used_at = {t} WHERE id = {i}");
        c.run(sql, args).await?;
        Ok(())
    }
}
