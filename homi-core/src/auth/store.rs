//! What the built-in accounts need from the store: one trait, implemented by
//! the SQLite and the Postgres stores, tested by one conformance suite.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::Result;

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Its id (also the `user_id` of the user's memories).
    pub id: Uuid,
    /// The email as the user typed it (trimmed).
    pub email: String,
    /// The argon2id PHC string.
    pub password_hash: String,
    /// Display name.
    pub full_name: Option<String>,
    /// When the email was confirmed.
    pub email_confirmed_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A new auth session with its first refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// The session id (the `sid` claim).
    pub id: Uuid,
    /// Whose.
    pub user_id: Uuid,
    /// SHA-256 of the first refresh token.
    pub refresh_token_hash: String,
    /// Now.
    pub created_at: DateTime<Utc>,
    /// When it ends unless refreshed.
    pub expires_at: DateTime<Utc>,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was current: it is now used and `new_hash` replaces it.
    Rotated {
        /// The session.
        session_id: Uuid,
        /// Whose.
        user_id: Uuid,
    },
    /// The token had been used already (outside the grace window): the whole
    /// session is revoked now.
    Reused,
    /// Unknown token, or its session is revoked or expired.
    Invalid,
}

/// Why a one-time token was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// A password reset.
    ResetPassword,
    /// An email confirmation.
    ConfirmEmail,
}

impl TokenPurpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::ResetPassword => "reset_password",
            TokenPurpose::ConfirmEmail => "confirm_email",
        }
    }
}

/// Which auth sessions a password change ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeSessions {
    /// Every session of the user.
    All,
    /// Every session but this one (the caller's).
    AllExcept(Uuid),
}

/// The lock a failure count earns: none below `max`, then `lockout` doubling
/// per further failure, at most an hour.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn lock_length(failures: i64, max: u32, lockout: Duration) -> Option<Duration> {
    let over = failures - i64::from(max);
    if over < 0 {
        return None;
    }
    let factor = 1u32 << over.min(12) as u32;
    Some((lockout * factor).min(Duration::from_secs(3600)))
}

/// Store operations of the built-in accounts. Every method that touches a
/// user's rows takes that user's id and filters by it in SQL.
#[async_trait]
pub trait AuthStore: Send + Sync + std::fmt::Debug {
    /// The HS256 secret kept in the store, created from `generated` on first
    /// use (concurrent first uses agree on one).
    async fn jwt_secret(&self, generated: String) -> Result<String>;

    /// Inserts an account; `Conflict` when the email is taken.
    async fn create_user(&self, user: &UserRecord) -> Result<()>;

    /// The account with this normalized (lower-cased) email.
    async fn user_by_email(&self, email_normalized: &str) -> Result<Option<UserRecord>>;

    /// The account with this id.
    async fn user_by_id(&self, id: Uuid) -> Result<Option<UserRecord>>;

    /// Accounts, oldest first.
    async fn list_users(&self, limit: usize, offset: usize) -> Result<Vec<UserRecord>>;

    /// Changes the display name and/or the email (with whether it is confirmed);
    /// `Conflict` when the new email is taken. Returns the account after the change.
    async fn update_user(
        &self,
        id: Uuid,
        full_name: Option<Option<String>>,
        email: Option<(String, Option<DateTime<Utc>>)>,
        now: DateTime<Utc>,
    ) -> Result<Option<UserRecord>>;

    /// Replaces the password hash and revokes sessions, in one transaction.
    async fn set_password(
        &self,
        id: Uuid,
        password_hash: &str,
        revoke: RevokeSessions,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// Until when sign-ins for this email are refused, if they are. Emails
    /// are named by the SHA-256 of their lower-cased form (`email_digest`), so
    /// addresses typed at a sign-in form are never stored.
    async fn signin_locked_until(
        &self,
        email_digest: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>>;

    /// Counts a failed sign-in for this email (failures older than `window`
    /// are forgotten); after `max_failures` the email is locked for `lockout`,
    /// doubling with each further failure up to an hour. Returns the lock's end.
    async fn record_signin_failure(
        &self,
        email_digest: &str,
        now: DateTime<Utc>,
        max_failures: u32,
        lockout: Duration,
        window: Duration,
    ) -> Result<Option<DateTime<Utc>>>;

    /// Forgets the failed sign-ins of this email.
    async fn clear_signin_failures(&self, email_digest: &str) -> Result<()>;

    /// Creates an auth session with its first refresh token.
    async fn create_session(&self, session: &NewSession) -> Result<()>;

    /// Whether the session exists, belongs to `user_id`, is not revoked and
    /// has not expired: the revocation check of every access token.
    async fn session_active(
        &self,
        session_id: Uuid,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Rotates a refresh token: marks `old_hash` used and stores `new_hash` for
    /// the same session, extending it to `expires_at`. A token used within
    /// `grace` before rotates again; one used earlier revokes the session.
    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        grace: Duration,
    ) -> Result<RefreshOutcome>;

    /// Revokes one session of `user_id`. Returns whether it was active.
    async fn revoke_session(
        &self,
        session_id: Uuid,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Stores a one-time token, replacing the user's earlier ones of the same purpose.
    async fn create_one_time_token(
        &self,
        token_hash: &str,
        user_id: Uuid,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()>;

    /// Consumes a password-reset token: in one transaction, deletes it, sets
    /// the new password hash, revokes every session and clears the sign-in
    /// lock. Returns the user, or `None` for an unknown, used or expired token.
    async fn reset_password(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Uuid>>;

    /// Consumes an email-confirmation token and marks the email confirmed.
    async fn confirm_email(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<Uuid>>;

    /// Records that an external (Supabase) session was signed out, so its
    /// access tokens are refused until they expire.
    async fn revoke_external_session(
        &self,
        session_id: Uuid,
        user_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<()>;

    /// Whether an external session was signed out through Homi.
    async fn external_session_revoked(&self, session_id: Uuid) -> Result<bool>;

    /// Deletes everything of `user_id`, in one transaction: the built-in
    /// account if there is one (sessions, refresh and one-time tokens, sign-in
    /// failures), every memory whose `user_id` it is, with embeddings and all
    /// history (deletion markers included), and recorded external sessions.
    /// Returns whether there was an account or any memory.
    async fn delete_user(&self, user_id: &str) -> Result<bool>;
}
