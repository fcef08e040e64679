//! The Auth client: sign-up, sign-in, auth sessions and their tokens, profile,
//! password changes and resets — on Homi's built-in accounts (in the store,
//! nothing else to run) or on a Supabase project's Auth.
//!
//! Every memory and chat call belongs to one user; a door finds out which with
//! [`Auth::verify_access_token`], whose [`Principal`] carries the user id taken
//! from the verified token, never from the request body.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> homi_core::Result<()> {
//! use homi_core::auth::{Auth, SignUp};
//! use homi_core::Config;
//! let config = Config::default().with_database_url("sqlite::memory:");
//! let auth = Auth::open(&config).await?;
//! let signed_up = auth.sign_up(SignUp::new("Ada@Example.com ", "correct horse battery")).await?;
//! let session = signed_up.session.expect("no email confirmation configured");
//! let principal = auth.verify_access_token(&session.access_token).await?;
//! assert_eq!(principal.user_id, signed_up.user.id);
//! assert_eq!(auth.get_user(&principal).await?.email, "Ada@Example.com");
//! auth.sign_out(&principal).await?;
//! assert!(auth.verify_access_token(&session.access_token).await.is_err());
//! # Ok(()) }
//! ```

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::Config;
use crate::error::{Error, Result};

mod builtin;
mod jwt;
pub mod keys;
pub mod mail;
pub mod password;
// The accounts' port, under its old path (`homi_core::auth::store`).
pub use crate::store::auth as store;
mod supabase;

pub use keys::{ApiKey, CreatedApiKey, KeyScope, NewApiKey, ServiceCaller};
pub use mail::{Mailer, SmtpMailer};
pub use store::AuthStore;

/// A user, as the doors show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// The user's id: the `sub` of their access tokens and the `user_id` of their memories.
    pub id: Uuid,
    /// Email address, as typed at sign-up (trimmed).
    pub email: String,
    /// Display name.
    pub full_name: Option<String>,
    /// When the email address was confirmed (by following a link sent to
    /// it); empty while it is not.
    pub email_confirmed_at: Option<DateTime<Utc>>,
    /// A new address the account waits to be confirmed (it becomes `email`
    /// once the link sent to it is followed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_email: Option<String>,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A signed-in auth session: the token pair and the user. `Debug` hides the tokens.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuthSession {
    /// The access token (a JWT): send it as `Authorization: Bearer …`.
    pub access_token: String,
    /// The refresh token: trade it for a new pair with [`Auth::refresh`]; it works once.
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// When the access token expires (unix seconds).
    pub expires_at: i64,
    /// Whose session it is.
    pub user: User,
}

impl std::fmt::Debug for AuthSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSession")
            .field("access_token", &"[redacted]")
            .field("refresh_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("user", &self.user)
            .finish()
    }
}

/// What [`Auth::sign_up`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUp {
    /// The new user.
    pub user: User,
    /// Signed in at once, unless the email must be confirmed first (then a
    /// confirmation link was sent and this is `None`).
    pub session: Option<AuthSession>,
}

/// A sign-up request.
#[derive(Clone)]
#[non_exhaustive]
pub struct SignUp {
    /// Email address (trimmed; compared case-insensitively).
    pub email: String,
    /// Password.
    pub password: SecretString,
    /// Display name.
    pub full_name: Option<String>,
}

impl std::fmt::Debug for SignUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignUp")
            .field("email", &self.email)
            .field("full_name", &self.full_name)
            .finish_non_exhaustive()
    }
}

impl SignUp {
    /// A sign-up with an email and a password.
    pub fn new(email: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            email: email.into(),
            password: SecretString::from(password.into()),
            full_name: None,
        }
    }

    /// Sets the display name.
    pub fn with_full_name(mut self, name: impl Into<String>) -> Self {
        self.full_name = Some(name.into());
        self
    }
}

/// Profile changes: fields left `None` stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UserUpdate {
    /// New display name (an empty string clears it).
    pub full_name: Option<String>,
    /// New email address: needs `current_password`. Where Homi can send
    /// email, it takes effect once a link sent to it is followed.
    pub email: Option<String>,
    /// The current password, which an email change needs.
    #[serde(skip)]
    pub current_password: Option<SecretString>,
}

impl UserUpdate {
    /// Sets the display name.
    pub fn full_name(mut self, name: impl Into<String>) -> Self {
        self.full_name = Some(name.into());
        self
    }

    /// Sets the email address.
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Gives the current password (an email change needs it).
    pub fn current_password(mut self, password: impl Into<String>) -> Self {
        self.current_password = Some(SecretString::from(password.into()));
        self
    }

    /// The current password an email change needs (a stolen session must
    /// not move the account to another address), or the error naming it.
    pub(crate) fn password_for_email_change(&self) -> Result<&str> {
        match self.current_password.as_ref().map(|p| p.expose_secret()) {
            Some(pw) if !pw.is_empty() => Ok(pw),
            _ => Err(Error::invalid(
                "current_password",
                "changing the email needs the current password",
            )),
        }
    }
}

/// The caller, as a verified access token names them.
#[derive(Clone)]
pub struct Principal {
    /// The user (the token's `sub`).
    pub user_id: Uuid,
    /// The auth session (the token's `sid`, or Supabase's `session_id`).
    pub session_id: Uuid,
    /// When the token expires.
    pub expires_at: DateTime<Utc>,
    token: SecretString,
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal")
            .field("user_id", &self.user_id)
            .field("session_id", &self.session_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Principal {
    /// The access token this principal was verified from.
    pub fn access_token(&self) -> &str {
        self.token.expose_secret()
    }
}

/// Which backend holds the accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AuthBackend {
    /// Homi's own accounts, in its store.
    Builtin,
    /// A Supabase project's Auth (GoTrue).
    Supabase,
}

/// The auth backend's state, for health checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuthHealth {
    /// Which backend.
    pub backend: AuthBackend,
    /// Whether it answers.
    pub healthy: bool,
    /// What was checked, or what failed.
    pub detail: String,
    /// Whether emails (password resets, confirmations) can be sent by Homi.
    pub email_delivery: bool,
}

// Built once and held behind an `Arc`: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Backend {
    Builtin(builtin::Builtin),
    Supabase(supabase::Supabase),
}

/// The Auth client. Cheap to clone; clones share one backend.
#[derive(Debug, Clone)]
pub struct Auth {
    backend: Arc<Backend>,
    /// Service API keys live in Homi's store whatever holds the accounts.
    store: Arc<dyn AuthStore>,
    /// The address of the client this handle acts for ([`Auth::for_client`]).
    client: Option<IpAddr>,
}

/// The network a client address counts as, for failed sign-ins and rate
/// limits: an IPv4 address alone, an IPv6 address's /64 (a host or a
/// household usually has a whole one), an IPv4-mapped IPv6 address as IPv4.
///
/// ```
/// use homi_core::auth::client_network;
/// let a = client_network("2001:db8:1:2::10".parse().unwrap());
/// let b = client_network("2001:db8:1:2:ffff::1".parse().unwrap());
/// assert_eq!(a, b);
/// assert_eq!(a.to_string(), "2001:db8:1:2::/64");
/// assert_eq!(client_network("::ffff:192.0.2.7".parse().unwrap()).to_string(), "192.0.2.7/32");
/// ```
pub fn client_network(ip: IpAddr) -> ipnet::IpNet {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let prefix = if ip.is_ipv4() { 32 } else { 64 };
    ipnet::IpNet::new(ip, prefix)
        .map(|n| n.trunc())
        .unwrap_or_else(|_| ipnet::IpNet::from(ip))
}

macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match &*$self.backend {
            Backend::Builtin(b) => b.$method($($arg),*).await,
            Backend::Supabase(s) => s.$method($($arg),*).await,
        }
    };
}

impl Auth {
    /// Like [`Auth::open`], on a store the caller already opened (e.g. the
    /// one its Memory uses).
    pub async fn with_store(config: &Config, store: Arc<dyn AuthStore>) -> Result<Self> {
        let mailer: Option<Arc<dyn Mailer>> = match &config.auth.smtp_url {
            Some(url) => Some(Arc::new(SmtpMailer::new(url, &config.auth.smtp_from)?)),
            None => None,
        };
        Self::with_parts(config, store, mailer).await
    }

    /// Like [`Auth::with_store`], with an own [`Mailer`] (or none).
    pub async fn with_parts(
        config: &Config,
        store: Arc<dyn AuthStore>,
        mailer: Option<Arc<dyn Mailer>>,
    ) -> Result<Self> {
        config.auth.validate()?;
        let backend = match &config.auth.supabase {
            Some(project) => {
                Backend::Supabase(supabase::Supabase::new(config, project, store.clone())?)
            }
            None => Backend::Builtin(builtin::Builtin::new(config, store.clone(), mailer).await?),
        };
        Ok(Self {
            backend: Arc::new(backend),
            store,
            client: None,
        })
    }

    /// This client acting for a caller at `address` (a door passes the
    /// address of the request it is answering). Sign-in failures are then
    /// counted per account and network, so an attacker failing from one
    /// network does not lock the account's owner out on another; with
    /// Supabase, the address is passed on (`X-Forwarded-For`) so its per-IP
    /// limits apply to this caller alone. Cheap: clones share one backend.
    pub fn for_client(&self, address: IpAddr) -> Self {
        Self {
            client: Some(address),
            ..self.clone()
        }
    }

    /// Which backend holds the accounts.
    pub fn backend(&self) -> AuthBackend {
        match &*self.backend {
            Backend::Builtin(_) => AuthBackend::Builtin,
            Backend::Supabase(_) => AuthBackend::Supabase,
        }
    }

    /// Creates an account. Signed in at once, unless email confirmation is
    /// required (then a confirmation link is emailed and `session` is `None`).
    /// `Conflict` when the email is taken; `InvalidInput` names the field at fault.
    pub async fn sign_up(&self, request: SignUp) -> Result<SignedUp> {
        dispatch!(self.sign_up(request, self.client))
    }

    /// Signs in with email and password. `Unauthorized` for a wrong pair
    /// (never saying which part), `Forbidden` while the email is unconfirmed,
    /// `RateLimited` after repeated failures: for this email from the
    /// caller's network ([`Auth::for_client`]), or from that network for any
    /// email. While the account as a whole is under guessing, only networks
    /// that have not failed on it may try.
    pub async fn sign_in(&self, email: &str, password: &str) -> Result<AuthSession> {
        dispatch!(self.sign_in(email, password, self.client))
    }

    /// Ends the caller's auth session: its access tokens stop working at once
    /// and its refresh token is refused.
    pub async fn sign_out(&self, principal: &Principal) -> Result<()> {
        dispatch!(self.sign_out(principal))
    }

    /// Trades a refresh token for a new pair. Each refresh token works once:
    /// presenting a used one again revokes the whole auth session.
    pub async fn refresh(&self, refresh_token: &str) -> Result<AuthSession> {
        dispatch!(self.refresh(refresh_token, self.client))
    }

    /// Verifies an access token (signature, algorithm, expiry, audience,
    /// issuer) and that its auth session is still active.
    pub async fn verify_access_token(&self, token: &str) -> Result<Principal> {
        let token = token.trim();
        if token.is_empty() {
            return Err(Error::Unauthorized("no access token was given".into()));
        }
        dispatch!(self.verify_access_token(token))
    }

    /// The caller's profile.
    pub async fn get_user(&self, principal: &Principal) -> Result<User> {
        dispatch!(self.get_user(principal))
    }

    /// Changes the caller's display name and/or email.
    pub async fn update_user(&self, principal: &Principal, update: UserUpdate) -> Result<User> {
        dispatch!(self.update_user(principal, update))
    }

    /// Changes the caller's password after checking the current one; every
    /// other auth session of the user is revoked.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current_password: &str,
        new_password: &str,
    ) -> Result<()> {
        dispatch!(self.change_password(principal, current_password, new_password))
    }

    /// Emails a one-time password-reset token if an account has this email.
    /// The answer (and its timing) is the same whether or not it has.
    pub async fn request_password_reset(&self, email: &str) -> Result<()> {
        dispatch!(self.request_password_reset(email, self.client))
    }

    /// Sets a new password with a reset token; every auth session of the user
    /// is revoked. The token works once and expires.
    pub async fn confirm_password_reset(&self, token: &str, new_password: &str) -> Result<()> {
        dispatch!(self.confirm_password_reset(token, new_password, self.client))
    }

    /// Emails a new confirmation link if an unconfirmed account has this
    /// email. The answer (and its timing) is the same whether or not it has.
    pub async fn resend_confirmation(&self, email: &str) -> Result<()> {
        dispatch!(self.resend_confirmation(email, self.client))
    }

    /// Confirms an email address with the token of the confirmation link.
    pub async fn confirm_email(&self, token: &str) -> Result<User> {
        dispatch!(self.confirm_email(token, self.client))
    }

    /// Deletes a user and everything of theirs: the account, auth sessions,
    /// memories with their history and embeddings; their access tokens are
    /// refused from now on. Returns whether anything existed.
    ///
    /// This is an administrative operation: a door calls it with the id of a
    /// verified [`Principal`] (a user deleting themselves) or from an admin
    /// context, never with an id taken from a request body. With Supabase,
    /// `SUPABASE_KEY` must be the service-role key.
    pub async fn delete_user(&self, user_id: Uuid) -> Result<bool> {
        dispatch!(self.delete_user(user_id))
    }

    /// Built-in accounts, oldest first.
    pub async fn list_users(&self, limit: usize, offset: usize) -> Result<Vec<User>> {
        match &*self.backend {
            Backend::Builtin(b) => b.list_users(limit, offset).await,
            Backend::Supabase(_) => Err(Error::invalid(
                "auth backend",
                "the users of a Supabase project are listed in its dashboard or admin API, not by Homi",
            )),
        }
    }

    /// Whether the backend answers.
    pub async fn health(&self) -> AuthHealth {
        dispatch!(self.health())
    }

    /// Deletes what has expired from Homi's own tables (auth sessions past
    /// their end or revoked a day ago with their refresh tokens, one-time
    /// tokens, stale sign-in counters, revocations no token can need).
    /// Returns how many rows; a long-running door calls it on a schedule.
    pub async fn prune_expired(&self) -> Result<u64> {
        self.store
            .prune_expired(Utc::now(), builtin::FAILURE_WINDOW)
            .await
    }

    /// Creates a service API key; its secret is in the answer and nowhere
    /// else. See [`keys`].
    pub async fn create_api_key(&self, new: NewApiKey) -> Result<CreatedApiKey> {
        keys::create(self.store.as_ref(), new).await
    }

    /// Every service API key (never their secrets), newest first.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        self.store.list_api_keys().await
    }

    /// Revokes a key at once; `NotFound` when no current key has that id.
    pub async fn revoke_api_key(&self, id: Uuid) -> Result<()> {
        if self.store.revoke_api_key(id, Utc::now()).await? {
            Ok(())
        } else {
            Err(Error::not_found(format!("API key {id}")))
        }
    }

    /// The caller a key stands for; `Unauthorized` unless it is a current key.
    pub async fn verify_api_key(&self, secret: &str) -> Result<ServiceCaller> {
        keys::verify(self.store.as_ref(), secret).await
    }
}

/// The trimmed email, checked to be an address, and its lower-cased form.
pub(crate) fn normalize_email(field: &str, email: &str) -> Result<(String, String)> {
    let email = email.trim();
    if email.is_empty() {
        return Err(Error::invalid(field, "an email address is required"));
    }
    if email.len() > 254 {
        return Err(Error::invalid(
            field,
            "the email address is longer than 254 characters",
        ));
    }
    email
        .parse::<lettre::Address>()
        .map_err(|_| Error::invalid(field, format!("'{email}' is not an email address")))?;
    Ok((email.to_owned(), email.to_lowercase()))
}

/// A display name: trimmed, at most 200 characters, empty meaning none.
pub(crate) fn normalize_name(field: &str, name: Option<&str>) -> Result<Option<String>> {
    let Some(name) = name.map(str::trim) else {
        return Ok(None);
    };
    if name.chars().count() > 200 {
        return Err(Error::invalid(
            field,
            "the name is longer than 200 characters",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            "the name contains control characters",
        ));
    }
    Ok((!name.is_empty()).then(|| name.to_owned()))
}

/// 256 random bits, URL-safe: refresh, reset and confirmation tokens.
pub(crate) fn random_token() -> Result<String> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::storage(format!("no randomness: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

pub(crate) use crate::store::auth::token_digest;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn emails_are_trimmed_checked_and_lowercased() {
        let (e, n) = normalize_email("email", "  Ada@Example.COM ").unwrap();
        assert_eq!(
            (e.as_str(), n.as_str()),
            ("Ada@Example.COM", "ada@example.com")
        );
        for bad in ["", "ada", "ada@", "@x.com", "a b@x.com"] {
            let err = normalize_email("email", bad).unwrap_err();
            assert!(err.to_string().contains("email"), "{bad}: {err}");
        }
    }

    #[test]
    fn tokens_are_256_bit_and_stored_as_digests() {
        let t = random_token().unwrap();
        assert_eq!(t.len(), 43);
        assert_ne!(t, random_token().unwrap());
        let d = token_digest(&t);
        assert_eq!(d.len(), 64);
        assert!(!d.contains(&t));
    }
}
