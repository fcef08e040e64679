//! Configuration: one [`Config`] value, built in code or read from the environment.
//!
//! Only the doors (server, CLI, Python) call [`Config::from_env`]; the core
//! takes a `Config` value and never reads the environment by itself.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, Result};

/// Default chat model (`MODEL_CHOICE`).
pub const DEFAULT_CHAT_MODEL: &str = "gpt-4o-mini";
/// Default embedding model (`HOMI_EMBEDDING_MODEL`).
pub const DEFAULT_EMBEDDING_MODEL: &str = "text-embedding-3-small";
/// Default database (`DATABASE_URL`): an SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://homi.db";

/// Everything Homi needs to run. Secrets are held as [`SecretString`] and are
/// redacted from `Debug` output.
///
/// ```
/// use homi_core::Config;
/// let config = Config::default()
///     .with_database_url("sqlite://memories.db")
///     .with_openai_base_url("http://localhost:11434/v1")
///     .with_chat_model("llama3.1");
/// assert_eq!(config.provider.chat_model, "llama3.1");
/// assert!(!format!("{config:?}").contains("sk-"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// `sqlite://path` (or `sqlite::memory:`), or `postgres://user:pass@host/db`
    /// (with `?sslmode=require` for managed Postgres such as Supabase).
    pub database_url: String,
    /// `HOMI_DB_MAX_CONNECTIONS`: Postgres pool size.
    pub database_max_connections: u32,
    /// `HOMI_DB_MIN_CONNECTIONS`: Postgres connections kept open when idle.
    pub database_min_connections: u32,
    /// `HOMI_DB_ACQUIRE_TIMEOUT_SECS`: how long to wait for a free connection.
    pub database_acquire_timeout: Duration,
    /// The OpenAI-compatible server behind the chat model and the embedder.
    pub provider: ProviderConfig,
    /// The embedder.
    pub embedder: EmbedderConfig,
    /// Memory engine tuning.
    pub memory: MemoryConfig,
    /// Server bind address and verbosity (used by `homi-server`).
    pub server: ServerConfig,
}

/// The model provider: any OpenAI-compatible server.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProviderConfig {
    /// `OPENAI_API_KEY`.
    pub api_key: Option<SecretString>,
    /// `OPENAI_BASE_URL`, e.g. `http://localhost:11434/v1`; `None` means OpenAI.
    pub base_url: Option<String>,
    /// `MODEL_CHOICE`.
    pub chat_model: String,
    /// `HOMI_PROVIDER_TIMEOUT_SECS`: per attempt.
    pub timeout: Duration,
    /// `HOMI_PROVIDER_MAX_RETRIES`: retries after the first attempt on 429, 5xx,
    /// timeouts and connection errors.
    pub max_retries: u32,
}

impl ProviderConfig {
    /// Whether a provider is configured at all (a key, or a base URL).
    pub fn is_configured(&self) -> bool {
        self.api_key.is_some() || self.base_url.is_some()
    }
}

/// The embedder.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EmbedderConfig {
    /// `HOMI_EMBEDDING_MODEL`.
    pub model: String,
    /// `HOMI_EMBEDDING_DIMS`: the vector size. Known OpenAI models need none;
    /// for other models it is learned from the first answer when unset.
    pub dims: Option<usize>,
    /// `HOMI_EMBEDDING_BATCH`: texts per embeddings request.
    pub batch_size: usize,
}

/// Memory engine tuning.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MemoryConfig {
    /// `HOMI_VECTOR_CACHE_MB`: memory budget of the SQLite store's vector cache.
    pub vector_cache_mb: usize,
    /// `HOMI_INFER_CONTEXT`: how many nearest existing memories the model sees
    /// when it decides what to do with new facts.
    pub infer_context: usize,
}

/// Server settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// `API_HOST`.
    pub host: String,
    /// `API_PORT`.
    pub port: u16,
    /// `DEBUG`.
    pub debug: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            database_max_connections: 10,
            database_min_connections: 0,
            database_acquire_timeout: Duration::from_secs(30),
            provider: ProviderConfig {
                api_key: None,
                base_url: None,
                chat_model: DEFAULT_CHAT_MODEL.to_owned(),
                timeout: Duration::from_secs(60),
                max_retries: 2,
            },
            embedder: EmbedderConfig {
                model: DEFAULT_EMBEDDING_MODEL.to_owned(),
                dims: None,
                batch_size: 512,
            },
            memory: MemoryConfig {
                vector_cache_mb: 1024,
                infer_context: 10,
            },
            server: ServerConfig {
                host: "0.0.0.0".to_owned(),
                port: 8000,
                debug: false,
            },
        }
    }
}

impl Config {
    /// Reads the environment (and a `.env` file in the working directory, whose
    /// values never override variables already set). A variable that is set but
    /// invalid is an error naming it; an empty variable counts as unset.
    pub fn from_env() -> Result<Self> {
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(Error::config(".env", e.to_string())),
        }
        let mut bad_unicode = None;
        let config = Self::from_lookup(|name| match std::env::var(name) {
            Ok(v) => Some(v),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                bad_unicode.get_or_insert_with(|| name.to_owned());
                None
            }
        })?;
        if let Some(name) = bad_unicode {
            return Err(Error::config(name, "the value is not valid UTF-8"));
        }
        Ok(config)
    }

    /// Builds a config from a lookup function (the environment in
    /// [`Config::from_env`], a map in tests).
    ///
    /// ```
    /// use homi_core::Config;
    /// let err = Config::from_lookup(|k| (k == "API_PORT").then(|| "eighty".to_string())).unwrap_err();
    /// assert!(err.to_string().contains("API_PORT"));
    /// ```
    pub fn from_lookup(mut lookup: impl FnMut(&str) -> Option<String>) -> Result<Self> {
        let mut get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut c = Config::default();
        if let Some(url) = get("DATABASE_URL") {
            c.database_url = check_database_url("DATABASE_URL", url.trim())?;
        }
        if let Some(v) = get("HOMI_DB_MAX_CONNECTIONS") {
            c.database_max_connections =
                parse_range("HOMI_DB_MAX_CONNECTIONS", &v, 1, 1000)? as u32;
        }
        if let Some(v) = get("HOMI_DB_MIN_CONNECTIONS") {
            c.database_min_connections =
                parse_range("HOMI_DB_MIN_CONNECTIONS", &v, 0, 1000)? as u32;
        }
        if c.database_min_connections > c.database_max_connections {
            return Err(Error::config(
                "HOMI_DB_MIN_CONNECTIONS",
                format!(
                    "{} is more than HOMI_DB_MAX_CONNECTIONS ({})",
                    c.database_min_connections, c.database_max_connections
                ),
            ));
        }
        if let Some(v) = get("HOMI_DB_ACQUIRE_TIMEOUT_SECS") {
            c.database_acquire_timeout =
                Duration::from_secs(parse_range("HOMI_DB_ACQUIRE_TIMEOUT_SECS", &v, 1, 3600)?);
        }
        if let Some(key) = get("OPENAI_API_KEY") {
            c.provider.api_key = Some(SecretString::from(key.trim().to_owned()));
        }
        if let Some(url) = get("OPENAI_BASE_URL") {
            c.provider.base_url = Some(check_http_url("OPENAI_BASE_URL", url.trim())?);
        }
        if let Some(model) = get("MODEL_CHOICE") {
            c.provider.chat_model = model.trim().to_owned();
        }
        if let Some(v) = get("HOMI_PROVIDER_TIMEOUT_SECS") {
            let secs: f64 = parse("HOMI_PROVIDER_TIMEOUT_SECS", &v, "a number of seconds")?;
            if !(secs > 0.0 && secs <= 3600.0) {
                return Err(Error::config(
                    "HOMI_PROVIDER_TIMEOUT_SECS",
                    format!("'{v}' must be more than 0 and at most 3600 seconds"),
                ));
            }
            c.provider.timeout = Duration::from_secs_f64(secs);
        }
        if let Some(v) = get("HOMI_PROVIDER_MAX_RETRIES") {
            c.provider.max_retries = parse_range("HOMI_PROVIDER_MAX_RETRIES", &v, 0, 10)? as u32;
        }
        if let Some(model) = get("HOMI_EMBEDDING_MODEL") {
            c.embedder.model = model.trim().to_owned();
        }
        if let Some(v) = get("HOMI_EMBEDDING_DIMS") {
            c.embedder.dims = Some(parse_range("HOMI_EMBEDDING_DIMS", &v, 1, 65_536)? as usize);
        }
        if let Some(v) = get("HOMI_EMBEDDING_BATCH") {
            c.embedder.batch_size = parse_range("HOMI_EMBEDDING_BATCH", &v, 1, 2048)? as usize;
        }
        if let Some(v) = get("HOMI_VECTOR_CACHE_MB") {
            c.memory.vector_cache_mb =
                parse_range("HOMI_VECTOR_CACHE_MB", &v, 1, 1 << 20)? as usize;
        }
        if let Some(v) = get("HOMI_INFER_CONTEXT") {
            c.memory.infer_context = parse_range("HOMI_INFER_CONTEXT", &v, 0, 100)? as usize;
        }
        if let Some(host) = get("API_HOST") {
            c.server.host = host.trim().to_owned();
        }
        if let Some(v) = get("API_PORT") {
            c.server.port = parse_range("API_PORT", &v, 0, 65_535)? as u16;
        }
        if let Some(v) = get("DEBUG") {
            c.server.debug = parse_bool("DEBUG", &v)?;
        }
        Ok(c)
    }

    /// Sets the database URL.
    pub fn with_database_url(mut self, url: impl Into<String>) -> Self {
        self.database_url = url.into();
        self
    }

    /// Sets the provider's API key.
    pub fn with_openai_api_key(mut self, key: impl Into<String>) -> Self {
        self.provider.api_key = Some(SecretString::from(key.into()));
        self
    }

    /// Sets the base URL of an OpenAI-compatible server.
    pub fn with_openai_base_url(mut self, url: impl Into<String>) -> Self {
        self.provider.base_url = Some(url.into());
        self
    }

    /// Sets the chat model.
    pub fn with_chat_model(mut self, model: impl Into<String>) -> Self {
        self.provider.chat_model = model.into();
        self
    }

    /// Sets the embedding model and, optionally, its dimension.
    pub fn with_embedding_model(mut self, model: impl Into<String>, dims: Option<usize>) -> Self {
        self.embedder.model = model.into();
        self.embedder.dims = dims;
        self
    }

    /// Sets the per-attempt provider timeout.
    pub fn with_provider_timeout(mut self, timeout: Duration) -> Self {
        self.provider.timeout = timeout;
        self
    }

    /// Sets how many times a failed provider request is retried.
    pub fn with_provider_max_retries(mut self, retries: u32) -> Self {
        self.provider.max_retries = retries;
        self
    }

    /// The database URL with any password replaced by `***`, for display.
    pub fn redacted_database_url(&self) -> String {
        redact_url_password(&self.database_url)
    }

    /// Whether an API key is set, without exposing it.
    pub fn has_api_key(&self) -> bool {
        self.provider
            .api_key
            .as_ref()
            .is_some_and(|k| !k.expose_secret().is_empty())
    }
}

fn redact_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &authority[..colon],
            &rest[at..]
        ),
        _ => url.to_owned(),
    }
}

fn check_database_url(var: &str, url: &str) -> Result<String> {
    let ok = url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://");
    if ok {
        Ok(url.to_owned())
    } else {
        Err(Error::config(
            var,
            format!(
                "'{}' is not supported: use sqlite://path/to/file.db or postgres://user:pass@host/db",
                redact_url_password(url)
            ),
        ))
    }
}

fn check_http_url(var: &str, url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => {
            Ok(url.trim_end_matches('/').to_owned())
        }
        _ => Err(Error::config(
            var,
            format!("'{url}' is not an http:// or https:// URL"),
        )),
    }
}

fn parse<T: std::str::FromStr>(var: &str, v: &str, what: &str) -> Result<T> {
    v.trim()
        .parse()
        .map_err(|_| Error::config(var, format!("'{v}' is not {what}")))
}

fn parse_range(var: &str, v: &str, min: u64, max: u64) -> Result<u64> {
    let n: u64 = parse(var, v, "a whole number")?;
    if n < min || n > max {
        return Err(Error::config(
            var,
            format!("{n} is out of range ({min}..={max})"),
        ));
    }
    Ok(n)
}

fn parse_bool(var: &str, v: &str) -> Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::config(
            var,
            format!("'{v}' is not a boolean (true/false, 1/0, yes/no, on/off)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = from(&[]).unwrap();
        assert_eq!(c.database_url, "sqlite://homi.db");
        assert_eq!(c.provider.chat_model, "gpt-4o-mini");
        assert_eq!(c.server.port, 8000);
        assert!(!c.provider.is_configured());
    }

    #[test]
    fn original_variables_are_read() {
        let c = from(&[
            ("OPENAI_API_KEY", "sk-secret"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/"),
            ("MODEL_CHOICE", "gpt-4.1-mini"),
            ("DATABASE_URL", "postgres://u:pw@db/homi"),
            ("API_HOST", "127.0.0.1"),
            ("API_PORT", "9000"),
            ("DEBUG", "true"),
            ("HOMI_DB_MAX_CONNECTIONS", "20"),
            ("HOMI_DB_MIN_CONNECTIONS", "2"),
            ("HOMI_DB_ACQUIRE_TIMEOUT_SECS", "5"),
        ])
        .unwrap();
        assert_eq!(c.database_max_connections, 20);
        assert_eq!(c.database_min_connections, 2);
        assert_eq!(c.database_acquire_timeout, Duration::from_secs(5));
        assert_eq!(
            c.provider.base_url.as_deref(),
            Some("http://127.0.0.1:9/v1")
        );
        assert_eq!(c.provider.chat_model, "gpt-4.1-mini");
        assert_eq!(c.server.port, 9000);
        assert!(c.server.debug);
        assert!(c.has_api_key());
        let debug = format!("{c:?}");
        assert!(!debug.contains("sk-secret"), "{debug}");
        assert_eq!(c.redacted_database_url(), "postgres://u:***@db/homi");
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (var, value) in [
            ("API_PORT", "70000"),
            ("API_PORT", "http"),
            ("DEBUG", "maybe"),
            ("OPENAI_BASE_URL", "localhost:11434"),
            ("DATABASE_URL", "mysql://x"),
            ("HOMI_EMBEDDING_DIMS", "0"),
            ("HOMI_PROVIDER_TIMEOUT_SECS", "-1"),
            ("HOMI_DB_MIN_CONNECTIONS", "50"),
            ("HOMI_DB_ACQUIRE_TIMEOUT_SECS", "0"),
        ] {
            let err = from(&[(var, value)]).unwrap_err();
            assert!(err.to_string().contains(var), "{var}={value}: {err}");
            assert_eq!(err.kind(), crate::ErrorKind::Config);
        }
    }

    #[test]
    fn empty_counts_as_unset() {
        let c = from(&[("OPENAI_API_KEY", ""), ("API_PORT", " ")]).unwrap();
        assert!(c.provider.api_key.is_none());
        assert_eq!(c.server.port, 8000);
    }
}
