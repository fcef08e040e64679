//! What the built-in accounts need from the store: one trait, implemented by
//! the SQLite and the Postgres stores, tested by one conformance suite.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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
    /// A new email address waiting for the link sent to it to be followed.
    pub pending_email: Option<String>,
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
/// What a sign-in counter holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SigninFailures {
    /// Attempts counted (and not cleared by a success) within the window.
    pub failures: i64,
    /// The end of the lock, if one was set.
    pub locked_until: Option<DateTime<Utc>>,
}

impl SigninFailures {
    /// The lock's end, if it has not passed.
    pub fn locked(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.locked_until.filter(|&t| t > now)
    }
}

/// The counters a sign-in attempt is checked against, named by digests (the
/// email's lower-cased form and the client network are never stored):
/// the account everywhere, the account from the client's network, and the
/// client's network for every account. Without a client address (a library
/// caller), the pair counts for "an unknown network" and no network counter
/// is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigninKeys {
    /// `account:<email digest>`.
    pub account: String,
    /// `pair:<email digest>:<network digest>`.
    pub pair: String,
    /// `network:<network digest>`.
    pub network: Option<String>,
}

impl SigninKeys {
    /// The keys of a sign-in to `email_normalized` from `network`.
    pub fn new(email_normalized: &str, network: Option<ipnet::IpNet>) -> Self {
        let account = token_digest(email_normalized);
        let net = network.map(|n| token_digest(&n.to_string()));
        Self {
            pair: format!("pair:{account}:{}", net.as_deref().unwrap_or("unknown")),
            account: format!("account:{account}"),
            network: net.map(|n| format!("network:{n}")),
        }
    }

    /// The counter of one auth session's wrong current passwords (a
    /// password or email change): `session:<session id>`.
    pub fn session(session_id: uuid::Uuid) -> String {
        format!("session:{session_id}")
    }

    /// A `LIKE` pattern for every pair counter of the account (digests are
    /// hexadecimal: no wildcard in them).
    pub fn pairs_of(email_normalized: &str) -> String {
        format!("pair:{}:%", token_digest(email_normalized))
    }
}

pub(crate) fn lock_length(failures: i64, max: u32, lockout: Duration) -> Option<Duration> {
    let over = failures - i64::from(max);
    if over < 0 {
        return None;
    }
    let factor = 1u32 << over.min(12) as u32;
    Some(
        lockout
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(Duration::from_secs(3600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_start_at_max_and_double() {
        let m = Duration::from_secs(60);
        assert_eq!(lock_length(2, 3, m), None);
        assert_eq!(lock_length(3, 3, m), Some(m));
        assert_eq!(lock_length(4, 3, m), Some(2 * m));
        assert_eq!(lock_length(40, 3, m), Some(Duration::from_secs(3600)));
    }

    #[test]
    fn bursts_past_max_are_refused_and_one_try_follows_a_lock() {
        let (now, m) = (Utc::now(), Duration::from_secs(60));
        assert!(!attempt_decision(3, false, now, 3, m).refuse);
        let burst = attempt_decision(4, false, now, 3, m);
        assert!(burst.refuse);
        assert_eq!(burst.lock, Some(now + m));
        let after_lock = attempt_decision(4, true, now, 3, m);
        assert!(!after_lock.refuse, "one try after a lock runs out");
        assert_eq!(
            after_lock.lock,
            Some(now + 2 * m),
            "the next lock is set at once"
        );
    }

    #[test]
    fn grace_needs_a_window_and_an_unused_replacement() {
        assert!(!within_grace(0, 0, true), "grace 0: any reuse revokes");
        assert!(within_grace(1_000, 5_000_000, true));
        assert!(!within_grace(6_000_000, 5_000_000, true));
        assert!(!within_grace(1_000, 5_000_000, false), "the chain moved on");
    }
}

/// Revocations of an external (Supabase) user's tokens recorded by Homi.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExternalRevocation {
    /// The token's session was signed out through Homi.
    pub session_revoked: bool,
    /// The user's tokens issued before this are refused (unless the token's
    /// session is `keep_session`).
    pub user_not_before: Option<DateTime<Utc>>,
    /// The session exempt from `user_not_before` (the caller's, after a
    /// password change).
    pub keep_session: Option<Uuid>,
}

/// What to do with a sign-in attempt, counted before its password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AttemptDecision {
    /// Refuse it (the email is locked from now on until `lock`).
    pub refuse: bool,
    /// The lock to record, if it changes.
    pub lock: Option<DateTime<Utc>>,
}

/// Decides about the `attempts`-th attempt in a row (this one included) for an
/// email that is not locked now; `had_lock` says whether an earlier lock has
/// run out. Up to `max` attempts go ahead. One more in a burst (no lock yet)
/// is refused and locks the email. After a lock has run out, one attempt goes
/// ahead, but the next, longer lock is set at once, so that parallel guesses
/// get no further and a success lifts it.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn attempt_decision(
    attempts: i64,
    had_lock: bool,
    now: DateTime<Utc>,
    max: u32,
    lockout: Duration,
) -> AttemptDecision {
    if attempts <= i64::from(max) {
        return AttemptDecision {
            refuse: false,
            lock: None,
        };
    }
    let (refuse, counted) = if had_lock {
        (false, attempts)
    } else {
        (true, attempts - 1)
    };
    AttemptDecision {
        refuse,
        lock: lock_length(counted, max, lockout).map(|d| now + d),
    }
}

/// Whether a refresh token used `elapsed_us` ago may rotate again.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn within_grace(elapsed_us: i64, grace_us: i64, replacement_unused: bool) -> bool {
    grace_us > 0 && elapsed_us <= grace_us && replacement_unused
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
    /// `Conflict` when the new email is taken. A changed email voids the
    /// user's pending one-time tokens (they were sent to the old address).
    /// Returns the account after the change.
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

    /// Counts a sign-in attempt under `key` (see [`SigninKeys`]) *before*
    /// its password is checked, so that parallel guesses cannot outrun the
    /// lock. Returns the end of the lock when the key is locked (already, or
    /// now because this attempt is one more than `max_failures` allows);
    /// attempts older than `window` are forgotten.
    async fn begin_signin_attempt(
        &self,
        key: &str,
        now: DateTime<Utc>,
        max_failures: u32,
        lockout: Duration,
        window: Duration,
    ) -> Result<Option<DateTime<Utc>>>;

    /// Records that the attempt counted under `key` failed: once the counted
    /// attempts reach `max_failures`, the key is locked for `lockout`,
    /// doubling with each further failure up to an hour. Returns the lock's
    /// end.
    async fn signin_failed(
        &self,
        key: &str,
        now: DateTime<Utc>,
        max_failures: u32,
        lockout: Duration,
    ) -> Result<Option<DateTime<Utc>>>;

    /// The failures counted under `key` within `window`, and its lock.
    async fn signin_failures(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> Result<SigninFailures>;

    /// Forgets the failures counted under `key`.
    async fn clear_signin_failures(&self, key: &str) -> Result<()>;

    /// Deletes what has expired: auth sessions past their end or revoked
    /// a day ago (with their refresh tokens), one-time tokens, sign-in
    /// counters past their window, external revocations no token can need.
    /// Returns how many rows.
    async fn prune_expired(&self, now: DateTime<Utc>, failure_window: Duration) -> Result<u64>;

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
    /// the same session, extending it to `expires_at`. A used token presented
    /// again revokes the session, unless `grace` is not zero, it was used at
    /// most `grace` ago and the token that replaced it has not been used yet
    /// (two requests refreshing at once): then it rotates again.
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

    /// Stores a one-time token, replacing the user's earlier ones of the
    /// same purpose. `email`: the (normalised) address it was sent to, which
    /// following it proves.
    async fn create_one_time_token(
        &self,
        token_hash: &str,
        user_id: Uuid,
        purpose: TokenPurpose,
        email: Option<&str>,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()>;

    /// Sets (or clears) the address an email change waits on; `Conflict`
    /// when another account has it.
    async fn set_pending_email(
        &self,
        id: Uuid,
        pending: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// Consumes a password-reset token: in one transaction, deletes it, sets
    /// the new password hash, confirms the email (the link proved the
    /// mailbox), revokes every session and clears the sign-in lock. Returns the user, or `None` for an unknown, used or expired token.
    async fn reset_password(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Uuid>>;

    /// Consumes an email-confirmation token. The token proves the address
    /// it was sent to: the account's own (then marked confirmed), or its
    /// pending new one (then it becomes the account's email, confirmed;
    /// `Conflict` when another account took it meanwhile). `None` for a
    /// token that is unknown, expired or for an address the account no
    /// longer has.
    async fn confirm_email(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<Uuid>>;

    /// Records that an external (Supabase) session was signed out, so its
    /// access tokens are refused until `expires_at` (when none can be valid
    /// any more).
    async fn revoke_external_session(
        &self,
        session_id: Uuid,
        user_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<()>;

    /// Refuses an external user's tokens issued before `not_before` (all but
    /// `keep_session`'s) until `expires_at`.
    async fn revoke_external_user(
        &self,
        user_id: &str,
        not_before: DateTime<Utc>,
        keep_session: Option<Uuid>,
        expires_at: DateTime<Utc>,
    ) -> Result<()>;

    /// What Homi recorded against an external token of `user_id` in
    /// `session_id`: its session signed out, or the user's earlier tokens
    /// revoked.
    async fn external_revocation(
        &self,
        session_id: Uuid,
        user_id: &str,
    ) -> Result<ExternalRevocation>;

    /// Deletes everything of `user_id`, in one transaction: the built-in
    /// account if there is one (sessions, refresh and one-time tokens, sign-in
    /// failures), every memory whose `user_id` it is, with embeddings and all
    /// history (deletion markers included), the user's conversations and jobs. Revocations of external tokens
    /// stay until they expire (they hold ids, no personal data), so the
    /// user's tokens stay refused. Returns whether there was an account or
    /// any memory.
    async fn delete_user(&self, user_id: &str) -> Result<bool>;

    /// Stores a new service API key.
    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<()>;

    /// The key with this digest, revoked or not.
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>>;

    /// Every key, newest first.
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>>;

    /// Revokes a key at `now`; `false` when no current key has that id.
    async fn revoke_api_key(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool>;

    /// Records that a key was used at `now`.
    async fn touch_api_key(&self, id: Uuid, now: DateTime<Utc>) -> Result<()>;
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum KeyScope {
    /// Read memories and conversations.
    Read,
    /// Add, change and delete memories; chat. Implies `read`.
    Write,
    /// Create, list and revoke keys.
    Admin,
}

impl KeyScope {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Read => "read",
            KeyScope::Write => "write",
            KeyScope::Admin => "admin",
        }
    }

    /// Parses `read`, `write` or `admin`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "read" => Ok(KeyScope::Read),
            "write" => Ok(KeyScope::Write),
            "admin" => Ok(KeyScope::Admin),
            other => Err(Error::invalid(
                "scopes",
                format!("'{other}' is not a scope (read, write, admin)"),
            )),
        }
    }
}

impl std::fmt::Display for KeyScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKey {
    /// Its id (for revoking it).
    pub id: Uuid,
    /// A name for people.
    pub name: String,
    /// The namespace its users live in.
    pub namespace: String,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    /// What it may do.
    pub scopes: Vec<KeyScope>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last used (at most a minute behind).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key as stored: the listing plus its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The key.
    pub key: ApiKey,
    /// SHA-256 of the secret, hex.
    pub key_hash: String,
}

/// SHA-256 of a token, hex: what the store keeps instead of the token.
pub(crate) fn token_digest(token: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
