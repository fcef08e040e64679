//! The one error type of `homi-core`, and its classification.

use std::time::Duration;

/// A `Result` whose error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, classified for the doors: the server maps kinds to HTTP
/// statuses, the Python module to exception classes, the CLI to exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller passed something invalid; the message names the field.
    InvalidInput,
    /// A configuration value is missing or invalid; the message names the variable.
    Config,
    /// The thing asked for does not exist (in the caller's scope).
    NotFound,
    /// The request conflicts with the current state (e.g. the store was
    /// embedded with another embedder).
    Conflict,
    /// Credentials or a token are missing, invalid, expired or revoked.
    Unauthorized,
    /// The caller is known but may not do this (e.g. the email is not confirmed yet).
    Forbidden,
    /// Too many attempts (the model provider's 429, or repeated failed
    /// sign-ins): wait [`Error::retry_after`].
    RateLimited,
    /// The model provider is not configured.
    ProviderNotConfigured,
    /// The model provider failed or could not be reached.
    ProviderUnavailable,
    /// The model provider did not answer in time.
    ProviderTimeout,
    /// The model provider answered with something that is not what was asked for.
    ProviderInvalidResponse,
    /// A service Homi depends on besides the model provider (Supabase Auth,
    /// the SMTP server) failed or could not be reached.
    Unavailable,
    /// The store failed.
    Storage,
}

impl ErrorKind {
    /// The kind as a short snake_case code (`invalid_input`, `not_found`,
    /// `provider_timeout`, …): what every door shows machines (the server's
    /// `{"error": …}`, the CLI's JSON errors).
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Config => "config",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::ProviderNotConfigured => "provider_not_configured",
            ErrorKind::ProviderUnavailable => "provider_unavailable",
            ErrorKind::ProviderTimeout => "provider_timeout",
            ErrorKind::ProviderInvalidResponse => "provider_invalid_response",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Storage => "storage",
        }
    }
}

/// Errors of `homi-core`.
///
/// ```
/// use homi_core::{Config, ErrorKind};
/// let err = Config::from_lookup(|k| (k == "DEBUG").then(|| "maybe".to_string())).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Config);
/// assert_eq!(err.to_string(), "invalid configuration DEBUG: 'maybe' is not a boolean (true/false, 1/0, yes/no, on/off)");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An argument is invalid.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The argument or field at fault, e.g. `user_id` or `filters.age`.
        field: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A configuration value is invalid.
    #[error("invalid configuration {variable}: {reason}")]
    Config {
        /// The environment variable or config key at fault.
        variable: String,
        /// Why it is invalid.
        reason: String,
    },
    /// Not found.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `memory 6f1c…`.
        what: String,
    },
    /// The store was written with another embedder than the one configured.
    #[error(
        "the store was embedded with {stored}, but this Memory is configured with {configured}; \
         vectors of different embedders cannot be compared. Configure the original embedder \
         (HOMI_EMBEDDING_MODEL / HOMI_EMBEDDING_DIMS), use another database, or move the \
         store's memories to the new embedder with `homi memory reembed`"
    )]
    EmbedderMismatch {
        /// The embedder recorded in the store, e.g. `text-embedding-3-small (1536 dims)`.
        stored: String,
        /// The embedder configured now.
        configured: String,
    },
    /// The change conflicts with the current state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Credentials or a token were refused. The message says why, without
    /// telling an attacker more than they know (e.g. never whether an email exists).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The caller may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Too many attempts; try again after `retry_after`.
    #[error("{message}; try again in {}s", retry_after.as_secs().max(1))]
    RateLimited {
        /// What was limited.
        message: String,
        /// How long to wait.
        retry_after: Duration,
    },
    /// No model provider is configured.
    #[error("no model provider is configured: {0}")]
    ProviderNotConfigured(String),
    /// The provider answered with an error status or could not be reached.
    #[error("the model provider failed{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Provider {
        /// HTTP status, when there was a response.
        status: Option<u16>,
        /// The provider's message.
        message: String,
        /// How long the provider asked us to wait, for 429s.
        retry_after: Option<Duration>,
    },
    /// The provider did not answer in time.
    #[error("the model provider did not answer within {0:?}")]
    ProviderTimeout(Duration),
    /// The provider's answer could not be used.
    #[error("the model provider's answer could not be used: {reason}; raw answer: {raw}")]
    ProviderInvalidResponse {
        /// What was wrong with it.
        reason: String,
        /// The raw body or content, as received.
        raw: String,
    },
    /// Supabase Auth or the SMTP server failed or could not be reached.
    #[error("{message}{}", cause.as_deref().map(|c| format!(": {c}")).unwrap_or_default())]
    Unavailable {
        /// What failed and what it means for the caller, in Homi's words.
        message: String,
        /// What the service said or why it could not be reached (its
        /// address, its answer): for the log, not for remote clients.
        cause: Option<String>,
    },
    /// A delete-all covering the write's scope came while the write was
    /// being worked out (embedding, the model's decisions): nothing was
    /// written, and nothing of this work ever will be.
    #[error(
        "the memories of this scope were deleted while this write was being worked out; \
         nothing was written"
    )]
    DeletedMeanwhile,
    /// The store failed.
    #[error("storage error: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl Error {
    /// Classifies the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidInput { .. } => ErrorKind::InvalidInput,
            Error::Config { .. } => ErrorKind::Config,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::EmbedderMismatch { .. } | Error::Conflict(_) | Error::DeletedMeanwhile => {
                ErrorKind::Conflict
            }
            Error::Unauthorized(_) => ErrorKind::Unauthorized,
            Error::Forbidden(_) => ErrorKind::Forbidden,
            Error::RateLimited { .. } => ErrorKind::RateLimited,
            Error::ProviderNotConfigured(_) => ErrorKind::ProviderNotConfigured,
            Error::Provider {
                status: Some(429), ..
            } => ErrorKind::RateLimited,
            Error::Provider { .. } => ErrorKind::ProviderUnavailable,
            Error::ProviderTimeout(_) => ErrorKind::ProviderTimeout,
            Error::ProviderInvalidResponse { .. } => ErrorKind::ProviderInvalidResponse,
            Error::Unavailable { .. } => ErrorKind::Unavailable,
            Error::Storage(_) => ErrorKind::Storage,
        }
    }

    /// How long to wait before retrying, when the provider said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Provider { retry_after, .. } => *retry_after,
            Error::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// What a remote client may be told of this error, when not its whole
    /// text: `None` when the message can be shown as it is, otherwise the
    /// sentence to show instead. The model provider's failures can quote its
    /// address or its raw answer, a store failure the database's message, a
    /// configuration error the server's settings, and an
    /// [`Unavailable`](Error::Unavailable) service's `cause` its address or
    /// answer; these stay in the log ([`Error::told`]).
    ///
    /// ```
    /// use homi_core::Error;
    /// let e = Error::ProviderTimeout(std::time::Duration::from_secs(30));
    /// assert_eq!(e.public_message(), None);
    /// let e = Error::unavailable("Supabase Auth could not be reached", "http://10.0.0.5");
    /// assert_eq!(e.public_message().unwrap(), "Supabase Auth could not be reached");
    /// ```
    pub fn public_message(&self) -> Option<String> {
        Some(match self {
            Error::Provider {
                status: Some(429),
                retry_after,
                ..
            } => match retry_after {
                Some(wait) => format!(
                    "the model provider is limiting requests; try again in {}s",
                    wait.as_secs().max(1)
                ),
                None => "the model provider is limiting requests; try again later".to_owned(),
            },
            Error::Provider { .. } => "the model provider failed or could not be reached".into(),
            Error::ProviderInvalidResponse { .. } => {
                "the model provider's answer could not be used".into()
            }
            Error::Unavailable {
                message,
                cause: Some(_),
            } => message.clone(),
            Error::Storage(_) | Error::Config { .. } => "the server failed".into(),
            _ => return None,
        })
    }

    /// What a door serving remote clients answers for this error: its text,
    /// or its [public sentence](Error::public_message) and where the cause
    /// can be found (`in_log`, e.g. "the server's log, under this answer's
    /// x-request-id"); the whole error is logged then. A provider's rate
    /// limit says only how long to wait.
    pub fn told(&self, in_log: &str) -> String {
        let Some(sentence) = self.public_message() else {
            return self.to_string();
        };
        match self.kind() {
            ErrorKind::Storage | ErrorKind::Config => {
                tracing::error!(error = %self, "a request failed")
            }
            _ => tracing::warn!(error = %self, "a service a request needed failed"),
        }
        if self.kind() == ErrorKind::RateLimited {
            sentence
        } else {
            format!("{sentence}; the cause is in {in_log}")
        }
    }

    /// `Unavailable`: `message` for everyone, and the service's words or
    /// why it could not be reached (`cause`) for the log.
    pub fn unavailable(message: impl Into<String>, cause: impl std::fmt::Display) -> Self {
        Error::Unavailable {
            message: message.into(),
            cause: Some(cause.to_string()),
        }
    }

    /// `InvalidInput` naming the field at fault.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// `Config` naming the variable at fault.
    pub fn config(variable: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            variable: variable.into(),
            reason: reason.into(),
        }
    }

    /// `NotFound` for `what`.
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    #[allow(dead_code)]
    pub(crate) fn storage(message: impl Into<String>) -> Self {
        Error::Storage(message.into().into())
    }
}

#[cfg(feature = "memory")]
/// `InvalidInput` naming `field` when `text` holds a NUL character, which
/// Postgres cannot store in text or JSON (so no store accepts it).
pub(crate) fn reject_nul(field: &str, text: &str) -> Result<()> {
    if text.contains('\0') {
        return Err(Error::invalid(
            field,
            "contains a NUL character (\\u0000), which cannot be stored",
        ));
    }
    Ok(())
}

#[cfg(feature = "memory")]
/// [`reject_nul`] for every string (keys included) of a JSON value.
pub(crate) fn reject_nul_json(field: &str, value: &serde_json::Value) -> Result<()> {
    use serde_json::Value;
    match value {
        Value::String(s) => reject_nul(field, s),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| reject_nul_json(&format!("{field}[{i}]"), v)),
        Value::Object(map) => reject_nul_map(field, map),
        _ => Ok(()),
    }
}

#[cfg(feature = "memory")]
/// [`reject_nul_json`] for a JSON object (e.g. metadata).
pub(crate) fn reject_nul_map(
    field: &str,
    map: &serde_json::Map<String, serde_json::Value>,
) -> Result<()> {
    map.iter().try_for_each(|(k, v)| {
        let path = format!("{field}.{k}");
        reject_nul(&path, k)?;
        reject_nul_json(&path, v)
    })
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl Error {
    /// Whether the database refused a write for a duplicate key.
    #[cfg_attr(not(feature = "auth"), allow(dead_code))]
    pub(crate) fn is_unique_violation(&self) -> bool {
        let Error::Storage(e) = self else {
            return false;
        };
        matches!(e.downcast_ref::<sqlx::Error>(), Some(sqlx::Error::Database(d)) if d.is_unique_violation())
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        // Postgres refuses NUL characters in text (22021) and in JSON
        // (22P05): input no store can keep, not a failure of the store.
        if let sqlx::Error::Database(db) = &e
            && matches!(db.code().as_deref(), Some("22021" | "22P05"))
        {
            return Error::invalid(
                "text",
                "contains a NUL character (\\u0000) or another character the database cannot store",
            );
        }
        Error::Storage(Box::new(e))
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Error::Storage(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_classify() {
        assert_eq!(
            Error::invalid("user_id", "empty").kind(),
            ErrorKind::InvalidInput
        );
        let rl = Error::Provider {
            status: Some(429),
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(rl.kind(), ErrorKind::RateLimited);
        assert_eq!(rl.retry_after(), Some(Duration::from_secs(2)));
        let e = Error::config("API_PORT", "'x' is not a port number");
        assert_eq!(
            e.to_string(),
            "invalid configuration API_PORT: 'x' is not a port number"
        );
    }
}
