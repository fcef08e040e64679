//! Service API keys: a backend that has its own users (the mem0 server's
//! model) calls Homi with one key and names the user per request.
//!
//! - A key is `homi_sk_` followed by 256 random bits; only its SHA-256 digest
//!   is stored, and the secret is shown once, when it is created.
//! - A key has scopes: `read` (search, list, get, history, summaries,
//!   conversations), `write` (add, update, delete, chat; implies `read`) and
//!   `admin` (manage keys; nothing else). A key never acts beyond them.
//! - A key acts inside its **namespace**: the user a request names is stored
//!   as `<namespace>:<user>`. Account ids (UUIDs, from access tokens) never
//!   contain `:`, so a key can never reach a signed-up user's memories, and
//!   two namespaces never meet.
//! - Keys and access tokens are never confused: keys travel in `X-API-Key`
//!   and start with `homi_sk_`; access tokens are JWTs in `Authorization`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> homi_core::Result<()> {
//! use homi_core::auth::{Auth, KeyScope, NewApiKey};
//! use homi_core::Config;
//! let auth = Auth::open(&Config::default().with_database_url("sqlite::memory:")).await?;
//! let created = auth
//!     .create_api_key(NewApiKey::new("support-bot", "acme", vec![KeyScope::Read]))
//!     .await?;
//! let caller = auth.verify_api_key(created.secret()).await?;
//! assert!(caller.allows(KeyScope::Read) && !caller.allows(KeyScope::Write));
//! assert_eq!(caller.user_id("customer-42")?, "acme:customer-42");
//! auth.revoke_api_key(created.key.id).await?;
//! assert!(auth.verify_api_key(created.secret()).await.is_err());
//! # Ok(()) }
//! ```

use std::fmt;

use chrono::Utc;
use serde::Serialize;
use uuid::Uuid;

use super::{random_token, token_digest};
use crate::error::{Error, Result};
pub use crate::store::auth::{ApiKey, ApiKeyRecord, AuthStore, KeyScope};

/// Every key starts with this.
pub const KEY_PREFIX: &str = "homi_sk_";

/// How long `last_used_at` may lag (it is written at most this often per key).
const LAST_USED_EVERY: chrono::Duration = chrono::Duration::seconds(60);

/// A key to create.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewApiKey {
    /// A name for people.
    pub name: String,
    /// The namespace its users live in.
    pub namespace: String,
    /// What it may do (at least one).
    pub scopes: Vec<KeyScope>,
}

impl NewApiKey {
    /// A key named `name` for users of `namespace`, with `scopes`.
    pub fn new(
        name: impl Into<String>,
        namespace: impl Into<String>,
        scopes: Vec<KeyScope>,
    ) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            scopes,
        }
    }
}

/// A new key and its secret, shown this once. `Debug` hides the secret.
#[derive(Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedApiKey {
    /// The key.
    #[serde(flatten)]
    pub key: ApiKey,
    secret: String,
}

impl CreatedApiKey {
    /// The secret to send as `X-API-Key` (not stored anywhere).
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedApiKey")
            .field("key", &self.key)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// A verified key: who calls, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCaller {
    /// The key's id.
    pub key_id: Uuid,
    /// The key's namespace.
    pub namespace: String,
    /// The key's scopes.
    pub scopes: Vec<KeyScope>,
}

impl ServiceCaller {
    /// Whether the key may act with `scope` (`write` implies `read`).
    pub fn allows(&self, scope: KeyScope) -> bool {
        self.scopes.contains(&scope)
            || (scope == KeyScope::Read && self.scopes.contains(&KeyScope::Write))
    }

    /// `Forbidden` unless the key has `scope`.
    pub fn require(&self, scope: KeyScope) -> Result<()> {
        if self.allows(scope) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "this API key does not have the '{scope}' scope"
            )))
        }
    }

    /// The stored user id of the user a request names: `<namespace>:<user>`.
    /// The name must be 1..=128 characters without control characters.
    pub fn user_id(&self, user: &str) -> Result<String> {
        let user = user.trim();
        if user.is_empty() {
            return Err(Error::invalid("user", "name the user the request is for"));
        }
        if user.chars().count() > 128 || user.chars().any(char::is_control) {
            return Err(Error::invalid(
                "user",
                "a user id has 1 to 128 characters and no control characters",
            ));
        }
        Ok(format!("{}:{user}", self.namespace))
    }
}

fn check_namespace(namespace: &str) -> Result<()> {
    let ok = (1..=32).contains(&namespace.len())
        && namespace
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "namespace",
            format!("'{namespace}' must be 1 to 32 of a-z, 0-9, '-' and '_'"),
        ))
    }
}

/// Creates a key (the secret is returned once and never stored).
pub(crate) async fn create(store: &dyn AuthStore, new: NewApiKey) -> Result<CreatedApiKey> {
    let name = new.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "name",
            "a key name has 1 to 100 characters and no control characters",
        ));
    }
    check_namespace(&new.namespace)?;
    let mut scopes = new.scopes;
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(Error::invalid(
            "scopes",
            "give the key at least one scope (read, write, admin)",
        ));
    }
    let secret = format!("{KEY_PREFIX}{}", random_token()?);
    let key = ApiKey {
        id: Uuid::new_v4(),
        name,
        namespace: new.namespace,
        prefix: secret.chars().take(KEY_PREFIX.len() + 6).collect(),
        scopes,
        created_at: Utc::now(),
        last_used_at: None,
        revoked_at: None,
    };
    store
        .create_api_key(&ApiKeyRecord {
            key: key.clone(),
            key_hash: token_digest(&secret),
        })
        .await?;
    Ok(CreatedApiKey { key, secret })
}

/// The caller a key stands for; `Unauthorized` for anything but a current key.
pub(crate) async fn verify(store: &dyn AuthStore, secret: &str) -> Result<ServiceCaller> {
    let refused = || Error::Unauthorized("the API key is not valid".into());
    if !secret.starts_with(KEY_PREFIX) || secret.len() > 128 {
        return Err(refused());
    }
    let Some(record) = store.api_key_by_hash(&token_digest(secret)).await? else {
        return Err(refused());
    };
    if record.key.revoked_at.is_some() {
        return Err(refused());
    }
    let now = Utc::now();
    if record
        .key
        .last_used_at
        .is_none_or(|t| now - t > LAST_USED_EVERY)
    {
        // Best effort: a missed stamp must not fail the request.
        if let Err(e) = store.touch_api_key(record.key.id, now).await {
            tracing::debug!(error = %e, "could not record the key's use");
        }
    }
    Ok(ServiceCaller {
        key_id: record.key.id,
        namespace: record.key.namespace,
        scopes: record.key.scopes,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn caller(scopes: Vec<KeyScope>) -> ServiceCaller {
        ServiceCaller {
            key_id: Uuid::nil(),
            namespace: "acme".into(),
            scopes,
        }
    }

    #[test]
    fn scopes_imply_only_what_they_say() {
        let w = caller(vec![KeyScope::Write]);
        assert!(w.allows(KeyScope::Read) && w.allows(KeyScope::Write));
        assert!(!w.allows(KeyScope::Admin));
        let a = caller(vec![KeyScope::Admin]);
        assert!(!a.allows(KeyScope::Read) && !a.allows(KeyScope::Write));
        let r = caller(vec![KeyScope::Read]);
        assert!(r.require(KeyScope::Write).is_err());
    }

    #[test]
    fn users_live_in_the_namespace() {
        let c = caller(vec![KeyScope::Read]);
        assert_eq!(c.user_id(" bob ").unwrap(), "acme:bob");
        assert!(c.user_id("").is_err());
        assert!(c.user_id("a\nb").is_err());
        assert!(c.user_id(&"x".repeat(129)).is_err());
        assert!(check_namespace("acme-1_b").is_ok());
        for bad in ["", "Acme", "a:b", "a b", &"x".repeat(33)] {
            assert!(check_namespace(bad).is_err(), "{bad}");
        }
    }
}
