//! Configuration: one [`Config`] value, built in code or read from the environment.
//!
//! Only the doors (server, CLI, Python) call [`Config::from_env`]; the core
//! takes a `Config` value and never reads the environment by itself.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, Result};

mod auth;
mod provider;
mod server;

use auth::read_auth;
pub use auth::{AuthConfig, PASSWORD_LENGTH_LIMIT, SupabaseConfig};
pub use provider::{AzureSettings, EmbedderConfig, EmbedderKind, ProviderConfig, Sampling};
pub use server::ServerConfig;
use server::read_server;

/// Default chat model (`MODEL_CHOICE`).
pub const DEFAULT_CHAT_MODEL: &str = "gpt-4o-mini";
/// Default embedding model of the OpenAI embedder (`HOMI_EMBEDDING_MODEL`).
pub const DEFAULT_EMBEDDING_MODEL: &str = "text-embedding-3-small";
/// Default model of the local embedder (`HOMI_EMBEDDING_MODEL` with
/// `HOMI_EMBEDDER=local`): a Hugging Face Hub repository id.
pub const DEFAULT_LOCAL_EMBEDDING_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";
/// Default database (`DATABASE_URL`): an SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://homi.db";

/// Variables a library door reads besides `HOMI_*`: the provider's, and
/// where the local embedder finds or fetches its model.
pub const LIBRARY_VARS: &[&str] = &[
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "HF_ENDPOINT",
    "HF_HOME",
    "VIRTUAL_ENV",
];

/// Which door reads the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    /// The server and the CLI: the original's variables.
    Server,
    /// A library in someone else's application.
    Library,
}

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
#[derive(Clone)]
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
    /// A collection of its own on Postgres (mem0's `collection_name`): Homi's
    /// tables live in the schema `homi_<name>` of the database, so two
    /// collections on one database never see each other's memories (nor
    /// accounts). `None`: the database's default schema. A plain name:
    /// letters, digits, `_` and `-`. (On SQLite a collection is a file of its
    /// own: `homi-<name>.db`.)
    pub collection: Option<String>,
    /// The OpenAI-compatible server behind the chat model and the embedder.
    pub provider: ProviderConfig,
    /// The embedder.
    pub embedder: EmbedderConfig,
    /// Memory engine tuning.
    pub memory: MemoryConfig,
    /// Server bind address and verbosity (used by `homi-server`).
    pub server: ServerConfig,
    /// Accounts and tokens (the `auth` feature): built-in, or Supabase Auth.
    pub auth: AuthConfig,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &self.redacted_database_url())
            .field("database_max_connections", &self.database_max_connections)
            .field("database_min_connections", &self.database_min_connections)
            .field("database_acquire_timeout", &self.database_acquire_timeout)
            .field("collection", &self.collection)
            .field("provider", &self.provider)
            .field("embedder", &self.embedder)
            .field("memory", &self.memory)
            .field("server", &self.server)
            .field("auth", &self.auth)
            .finish()
    }
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
    /// `HOMI_JOB_LEASE_SECS`: how long a worker holds a job before another
    /// may take it over (a worker that died).
    pub job_lease: Duration,
    /// `HOMI_JOB_MAX_ATTEMPTS`: attempts before a job is dead.
    pub job_max_attempts: u32,
    /// `HOMI_JOB_CONCURRENCY`: extraction jobs one process runs at once (a
    /// job mostly waits for the provider; one user's jobs still run one at a
    /// time).
    pub job_concurrency: usize,
    /// `HOMI_CHAT_MEMORIES`: memories searched for each chat turn (the
    /// original: 3).
    pub chat_memories: usize,
    /// `HOMI_CHAT_TOKEN_BUDGET`: the chat prompt's token budget (persona,
    /// memories, earlier turns and the message); the oldest turns are left
    /// out first.
    pub chat_token_budget: usize,
    /// `HOMI_USER_RPM`: model-spending requests (chat turns, searches, adds,
    /// summaries) one user may make per minute, per process; 0: unlimited.
    pub user_rpm: u32,
    /// `HOMI_USER_TOKENS_PER_DAY`: model tokens (chat and embeddings) one
    /// user may spend per UTC day, counted in the store; 0: unlimited.
    pub user_tokens_per_day: u64,
    /// `HOMI_EXTRACTION_INSTRUCTIONS`: the application's own instructions
    /// for fact extraction (what to remember, how to word it), added to
    /// Homi's prompt; mem0's `custom_instructions`.
    pub extraction_instructions: Option<String>,
    /// mem0's `llm_reranker`: a search asked to rerank has the chat model
    /// score each result's relevance. `None`: no reranker (`rerank` changes
    /// nothing, as in mem0).
    pub reranker: Option<RerankerConfig>,
}

/// The chat model as a reranker (mem0's `llm_reranker`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RerankerConfig {
    /// At most this many results after reranking (`None`: the search's limit).
    pub top_k: Option<usize>,
    /// The scoring instructions (mem0's `scoring_prompt`), instead of Homi's.
    pub prompt: Option<String>,
}

/// A collection's name ([`Config::collection`]) as given, if it is a plain
/// one: 1 to 58 letters, digits, `_` and `-` (so that `homi_<name>` is a
/// whole Postgres identifier and `homi-<name>.db` a file name).
pub fn collection_name(name: &str) -> Result<&str> {
    let plain = !name.is_empty()
        && name.len() <= 58
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        Ok(name)
    } else {
        Err(Error::invalid(
            "collection_name",
            format!("'{name}' is not a plain name (1 to 58 letters, digits, '_' and '-')"),
        ))
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            database_max_connections: 10,
            database_min_connections: 0,
            database_acquire_timeout: Duration::from_secs(30),
            collection: None,
            provider: ProviderConfig {
                api_key: None,
                base_url: None,
                chat_model: DEFAULT_CHAT_MODEL.to_owned(),
                timeout: Duration::from_secs(60),
                deadline: Duration::from_secs(150),
                stream_idle_timeout: Duration::from_secs(60),
                max_retries: 2,
                azure: None,
                sampling: Sampling::default(),
            },
            embedder: EmbedderConfig {
                kind: EmbedderKind::Auto,
                model: None,
                dims: None,
                batch_size: 512,
                provider: None,
                model_dir: None,
                model_cache: None,
                hf_endpoint: None,
                hf_home: None,
                virtual_env: None,
            },
            memory: MemoryConfig {
                vector_cache_mb: 1024,
                infer_context: 10,
                job_lease: Duration::from_secs(300),
                job_max_attempts: 8,
                job_concurrency: 8,
                chat_memories: 3,
                chat_token_budget: 4000,
                user_rpm: 0,
                user_tokens_per_day: 0,
                extraction_instructions: None,
                reranker: None,
            },
            server: ServerConfig::default(),
            auth: AuthConfig::default(),
        }
    }
}

impl Config {
    /// Reads the environment (and a `.env` file in the working directory, whose
    /// values never override variables already set). A variable that is set but
    /// invalid is an error naming it; an empty variable counts as unset.
    pub fn from_env() -> Result<Self> {
        Self::from_env_with(|_| None)
    }

    /// [`Config::from_env`], with some variables given by the caller instead
    /// (a command line's flags): where `given` answers, the environment is not
    /// read, so a flag replaces an invalid variable instead of failing on it.
    pub fn from_env_with(given: impl Fn(&str) -> Option<String>) -> Result<Self> {
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(Error::config(".env", e.to_string())),
        }
        let mut bad_unicode = None;
        let config = Self::from_lookup(|name| match given(name) {
            Some(v) => Some(v),
            None => match std::env::var(name) {
                Ok(v) => Some(v),
                Err(std::env::VarError::NotPresent) => None,
                Err(std::env::VarError::NotUnicode(_)) => {
                    bad_unicode.get_or_insert_with(|| name.to_owned());
                    None
                }
            },
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
    pub fn from_lookup(lookup: impl FnMut(&str) -> Option<String>) -> Result<Self> {
        Self::read(lookup, Door::Server)
    }

    /// The configuration of a library door (Python's `homi.Memory()`) living
    /// in someone else's application, from the process environment: only
    /// `HOMI_*` and [`LIBRARY_VARS`] are read, never a `.env` file, and an
    /// app's own `DATABASE_URL`, `DEBUG`, `API_PORT` or `SUPABASE_*` neither
    /// break nor redirect it. See [`Config::for_library`].
    pub fn from_library_env() -> Result<Self> {
        Self::for_library(|name| std::env::var(name).ok())
    }

    /// [`Config::from_library_env`] from a lookup function. The store is
    /// `HOMI_DATABASE_URL`, else `homi.db` in `HOMI_DIR`, else in `~/.homi`
    /// (as mem0 keeps `~/.mem0`); the chat model is `HOMI_CHAT_MODEL`.
    ///
    /// ```
    /// use homi_core::Config;
    /// let c = Config::for_library(|k| match k {
    ///     "DATABASE_URL" => Some("postgres://the-app/own".into()),
    ///     "API_PORT" => Some("not a port".into()),
    ///     "HOME" => Some("/home/ada".into()),
    ///     "HOMI_CHAT_MODEL" => Some("llama3.1".into()),
    ///     _ => None,
    /// })?;
    /// assert_eq!(c.database_url, "sqlite:///home/ada/.homi/homi.db");
    /// assert_eq!(c.provider.chat_model, "llama3.1");
    /// # Ok::<(), homi_core::Error>(())
    /// ```
    pub fn for_library(mut lookup: impl FnMut(&str) -> Option<String>) -> Result<Self> {
        let mut c = Self::read(
            |name| {
                (name.starts_with("HOMI_") || LIBRARY_VARS.contains(&name))
                    .then(|| lookup(name))
                    .flatten()
            },
            Door::Library,
        )?;
        if lookup("HOMI_DATABASE_URL").is_none_or(|u| u.trim().is_empty()) {
            let dir = match lookup("HOMI_DIR").filter(|d| !d.trim().is_empty()) {
                Some(d) => PathBuf::from(d.trim()),
                None => match lookup("HOME").filter(|h| !h.trim().is_empty()) {
                    Some(home) => PathBuf::from(home.trim()).join(".homi"),
                    None => {
                        return Err(Error::config(
                            "HOMI_DIR",
                            "HOME is not set: set HOMI_DIR (the directory for homi.db) or HOMI_DATABASE_URL",
                        ));
                    }
                },
            };
            c.database_url = format!("sqlite://{}", dir.join("homi.db").display());
        }
        Ok(c)
    }

    fn read(mut lookup: impl FnMut(&str) -> Option<String>, door: Door) -> Result<Self> {
        let mut get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut c = Config::default();
        let (database_var, model_var) = match door {
            Door::Server => ("DATABASE_URL", "MODEL_CHOICE"),
            Door::Library => ("HOMI_DATABASE_URL", "HOMI_CHAT_MODEL"),
        };
        if let Some(url) = get(database_var) {
            c.database_url = check_database_url(database_var, url.trim())?;
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
        if let Some(model) = get(model_var) {
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
        if let Some(v) = get("HOMI_PROVIDER_DEADLINE_SECS") {
            c.provider.deadline =
                Duration::from_secs(parse_range("HOMI_PROVIDER_DEADLINE_SECS", &v, 1, 86_400)?);
        }
        if let Some(v) = get("HOMI_PROVIDER_STREAM_IDLE_SECS") {
            c.provider.stream_idle_timeout =
                Duration::from_secs(parse_range("HOMI_PROVIDER_STREAM_IDLE_SECS", &v, 1, 3600)?);
        }
        if let Some(v) = get("HOMI_PROVIDER_MAX_RETRIES") {
            c.provider.max_retries = parse_range("HOMI_PROVIDER_MAX_RETRIES", &v, 0, 10)? as u32;
        }
        if let Some(v) = get("HOMI_EMBEDDER") {
            c.embedder.kind = EmbedderKind::parse(&v).ok_or_else(|| {
                Error::config(
                    "HOMI_EMBEDDER",
                    format!("'{v}' is not an embedder: use local or openai (or leave it unset)"),
                )
            })?;
        }
        if let Some(model) = get("HOMI_EMBEDDING_MODEL") {
            c.embedder.model = Some(model.trim().to_owned());
        }
        if let Some(dir) = get("HOMI_EMBEDDING_MODEL_DIR") {
            c.embedder.model_dir = Some(PathBuf::from(dir.trim()));
        }
        if let Some(dir) = get("HOMI_MODEL_CACHE") {
            c.embedder.model_cache = Some(PathBuf::from(dir.trim()));
        }
        if let Some(url) = get("HF_ENDPOINT") {
            c.embedder.hf_endpoint = Some(check_http_url("HF_ENDPOINT", url.trim())?);
        }
        if let Some(dir) = get("HF_HOME") {
            c.embedder.hf_home = Some(PathBuf::from(dir.trim()));
        }
        if let Some(dir) = get("VIRTUAL_ENV") {
            c.embedder.virtual_env = Some(PathBuf::from(dir.trim()));
        }
        if let Some(v) = get("HOMI_EMBEDDING_DIMS") {
            c.embedder.dims = Some(parse_range("HOMI_EMBEDDING_DIMS", &v, 1, 65_536)? as usize);
        }
        if let Some(v) = get("HOMI_EMBEDDING_BATCH") {
            c.embedder.batch_size = parse_range("HOMI_EMBEDDING_BATCH", &v, 1, 2048)? as usize;
        }
        // The embeddings' own server: the chat provider's settings, with
        // this URL and key.
        let (url, key) = (
            get("HOMI_EMBEDDING_BASE_URL"),
            get("HOMI_EMBEDDING_API_KEY"),
        );
        if url.is_some() || key.is_some() {
            let mut own = c.provider.clone();
            if let Some(url) = url {
                own.base_url = Some(check_http_url("HOMI_EMBEDDING_BASE_URL", url.trim())?);
            }
            if let Some(key) = key {
                own.api_key = Some(SecretString::from(key.trim().to_owned()));
            }
            c.embedder.provider = Some(own);
        }
        if let Some(v) = get("HOMI_VECTOR_CACHE_MB") {
            c.memory.vector_cache_mb =
                parse_range("HOMI_VECTOR_CACHE_MB", &v, 1, 1 << 20)? as usize;
        }
        if let Some(v) = get("HOMI_INFER_CONTEXT") {
            c.memory.infer_context = parse_range("HOMI_INFER_CONTEXT", &v, 0, 100)? as usize;
        }
        if let Some(v) = get("HOMI_JOB_LEASE_SECS") {
            c.memory.job_lease =
                Duration::from_secs(parse_range("HOMI_JOB_LEASE_SECS", &v, 1, 86_400)?);
        }
        if let Some(v) = get("HOMI_JOB_MAX_ATTEMPTS") {
            c.memory.job_max_attempts = parse_range("HOMI_JOB_MAX_ATTEMPTS", &v, 1, 100)? as u32;
        }
        if let Some(v) = get("HOMI_JOB_CONCURRENCY") {
            c.memory.job_concurrency = parse_range("HOMI_JOB_CONCURRENCY", &v, 1, 256)? as usize;
        }
        if let Some(v) = get("HOMI_CHAT_MEMORIES") {
            c.memory.chat_memories = parse_range("HOMI_CHAT_MEMORIES", &v, 1, 100)? as usize;
        }
        if let Some(v) = get("HOMI_USER_RPM") {
            c.memory.user_rpm = parse_range("HOMI_USER_RPM", &v, 0, 1_000_000)? as u32;
        }
        if let Some(v) = get("HOMI_USER_TOKENS_PER_DAY") {
            c.memory.user_tokens_per_day =
                parse_range("HOMI_USER_TOKENS_PER_DAY", &v, 0, 1_000_000_000_000)?;
        }
        if let Some(v) = get("HOMI_EXTRACTION_INSTRUCTIONS") {
            c.memory.extraction_instructions = Some(v.trim().to_owned());
        }
        if let Some(v) = get("HOMI_CHAT_TOKEN_BUDGET") {
            c.memory.chat_token_budget =
                parse_range("HOMI_CHAT_TOKEN_BUDGET", &v, 500, 1_000_000)? as usize;
        }
        if door == Door::Server {
            read_server(&mut c.server, &mut get)?;
        }
        read_auth(&mut c.auth, &mut get)?;
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
        self.embedder.model = Some(model.into());
        self.embedder.dims = dims;
        self
    }

    /// Chooses the embedder (`HOMI_EMBEDDER`).
    pub fn with_embedder(mut self, kind: EmbedderKind) -> Self {
        self.embedder.kind = kind;
        self
    }

    /// Uses the local embedder, with the model in `dir`
    /// (`HOMI_EMBEDDING_MODEL_DIR`) or, with `None`, the model found or
    /// downloaded as [`crate::provider::local`] describes.
    ///
    /// ```
    /// use homi_core::config::{Config, EmbedderKind};
    /// let c = Config::default().with_local_embedder(Some("/models/minilm".into()));
    /// assert_eq!(c.embedder.kind, EmbedderKind::Local);
    /// assert_eq!(c.embedder.model_for(c.embedder.kind), "sentence-transformers/all-MiniLM-L6-v2");
    /// ```
    pub fn with_local_embedder(mut self, dir: Option<PathBuf>) -> Self {
        self.embedder.kind = EmbedderKind::Local;
        self.embedder.model_dir = dir;
        self
    }

    /// Sets where local models fetched from PyPI are kept (`HOMI_MODEL_CACHE`).
    pub fn with_model_cache(mut self, dir: impl Into<PathBuf>) -> Self {
        self.embedder.model_cache = Some(dir.into());
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

    /// The provider the OpenAI embedder calls: the embedder's own, or the
    /// chat model's.
    pub fn embedding_provider(&self) -> &ProviderConfig {
        self.embedder.provider_or(&self.provider)
    }

    /// Whether an API key is set, without exposing it.
    pub fn has_api_key(&self) -> bool {
        self.provider
            .api_key
            .as_ref()
            .is_some_and(|k| !k.expose_secret().is_empty())
    }
}

/// `url` with its password hidden: the one in the user information
/// (`user:***@host`) and any query parameter named `password` or ending in
/// it (`?password=…`, `&sslpassword=…`).
fn redact_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let (head, rest) = url.split_at(scheme_end + 3);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => match authority[..at].find(':') {
            Some(colon) => format!("{}:***{}", &authority[..colon], &authority[at..]),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let (path, query) = match tail.find('?') {
        Some(q) => (&tail[..q], Some(&tail[q + 1..])),
        None => (tail, None),
    };
    let mut out = format!("{head}{authority}{path}");
    if let Some(query) = query {
        let (query, fragment) = match query.find('#') {
            Some(h) => (&query[..h], &query[h..]),
            None => (query, ""),
        };
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) if key.to_ascii_lowercase().ends_with("password") => {
                    format!("{key}=***")
                }
                _ => param.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
        out.push_str(fragment);
    }
    out
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

pub(crate) fn check_http_url(var: &str, url: &str) -> Result<String> {
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
    fn database_passwords_are_redacted_wherever_the_url_holds_them() {
        for (url, shown) in [
            ("postgres://u:pw@db/homi", "postgres://u:***@db/homi"),
            ("postgres://u:pw@db:5432", "postgres://u:***@db:5432"),
            (
                "postgres://u@db/homi?password=pw&sslmode=require",
                "postgres://u@db/homi?password=***&sslmode=require",
            ),
            (
                "postgresql://db?sslmode=verify-full&SSLPassword=pw",
                "postgresql://db?sslmode=verify-full&SSLPassword=***",
            ),
            (
                "postgres://db/homi?password=p@ss:word",
                "postgres://db/homi?password=***",
            ),
            (
                "postgres://u:p%40ss@db/homi?password=pw#x",
                "postgres://u:***@db/homi?password=***#x",
            ),
            ("postgres://db/homi", "postgres://db/homi"),
            ("sqlite://data/homi.db", "sqlite://data/homi.db"),
            ("sqlite::memory:", "sqlite::memory:"),
        ] {
            assert_eq!(redact_url_password(url), shown, "{url}");
            let config = Config::default().with_database_url(url);
            assert_eq!(config.redacted_database_url(), shown);
            let debug = format!("{config:?}");
            assert!(debug.contains(shown), "{debug}");
            assert!(!debug.contains("pw") && !debug.contains("p@ss"), "{debug}");
        }
    }

    #[test]
    fn the_metrics_token_is_a_secret() {
        let c = from(&[("HOMI_METRICS_TOKEN", " 0123456789abcdef-metrics ")]).unwrap();
        let token = c.server.metrics_token.as_ref().unwrap();
        assert_eq!(token.expose_secret(), "0123456789abcdef-metrics");
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
        let unset = from(&[("HOMI_METRICS_TOKEN", " ")]).unwrap();
        assert!(unset.server.metrics_token.is_none());
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
            ("HOMI_JWT_SECRET", "too-short"),
            ("HOMI_ACCESS_TOKEN_TTL_SECS", "0"),
            ("HOMI_PASSWORD_MIN_LENGTH", "2000"),
            ("HOMI_PASSWORD_MAX_LENGTH", "5000"),
            ("HOMI_SMTP_URL", "mail.example.com"),
            ("HOMI_REQUIRE_EMAIL_CONFIRMATION", "true"),
            ("SUPABASE_URL", "https://x.supabase.co"),
            ("SUPABASE_KEY", "anon"),
            ("HOMI_METRICS_TOKEN", "short"),
        ] {
            let err = from(&[(var, value)]).unwrap_err();
            assert!(err.to_string().contains(var), "{var}={value}: {err}");
            assert_eq!(err.kind(), crate::ErrorKind::Config);
        }
    }

    #[test]
    fn auth_settings_are_read_and_secrets_redacted() {
        let c = from(&[
            ("HOMI_JWT_SECRET", "0123456789abcdef0123456789abcdef-secret"),
            ("HOMI_SMTP_URL", "smtp://mailer:smtp-pass@127.0.0.1:2525"),
            ("HOMI_REQUIRE_EMAIL_CONFIRMATION", "yes"),
            ("HOMI_PASSWORD_MIN_LENGTH", "6"),
            ("SUPABASE_URL", "https://abcd.supabase.co/"),
            ("SUPABASE_KEY", "anon-key-value"),
            ("SUPABASE_JWT_SECRET", "supa-jwt-secret"),
        ])
        .unwrap();
        assert!(c.auth.require_email_confirmation);
        assert_eq!(c.auth.password_min_length, 6);
        let s = c.auth.supabase.as_ref().unwrap();
        assert_eq!(s.url, "https://abcd.supabase.co");
        let debug = format!("{c:?}");
        for secret in ["-secret", "smtp-pass", "anon-key-value", "supa-jwt-secret"] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
    }

    #[test]
    fn auth_values_set_in_code_are_checked_too() {
        let mut a = AuthConfig::default();
        assert!(a.validate().is_ok());
        a.jwt_secret = Some(SecretString::from(String::new()));
        assert!(
            a.validate()
                .unwrap_err()
                .to_string()
                .contains("HOMI_JWT_SECRET")
        );
        let a = AuthConfig {
            session_ttl: Duration::MAX,
            ..AuthConfig::default()
        };
        assert!(
            a.validate()
                .unwrap_err()
                .to_string()
                .contains("HOMI_SESSION_TTL_SECS")
        );
        let a = AuthConfig {
            signin_lockout: Duration::from_secs(1 << 40),
            ..AuthConfig::default()
        };
        assert!(
            a.validate()
                .unwrap_err()
                .to_string()
                .contains("HOMI_SIGNIN_LOCKOUT_SECS")
        );
        let a = AuthConfig {
            password_min_length: 2000,
            ..AuthConfig::default()
        };
        assert!(
            a.validate()
                .unwrap_err()
                .to_string()
                .contains("HOMI_PASSWORD_MIN_LENGTH")
        );
    }

    #[test]
    fn embedder_settings_are_read() {
        let c = from(&[]).unwrap();
        assert_eq!(c.embedder.kind, EmbedderKind::Auto);
        assert_eq!(c.embedder.model, None);
        assert_eq!(
            c.embedder.model_for(EmbedderKind::OpenAi),
            DEFAULT_EMBEDDING_MODEL
        );
        assert_eq!(
            c.embedder.model_for(EmbedderKind::Local),
            DEFAULT_LOCAL_EMBEDDING_MODEL
        );
        let c = from(&[
            ("HOMI_EMBEDDER", " Local "),
            ("HOMI_EMBEDDING_MODEL_DIR", "/models/minilm"),
            ("HOMI_MODEL_CACHE", "/var/cache/homi"),
            ("HF_ENDPOINT", "http://127.0.0.1:8080/"),
            ("HF_HOME", "/hf"),
            ("VIRTUAL_ENV", "/venv"),
        ])
        .unwrap();
        assert_eq!(c.embedder.kind, EmbedderKind::Local);
        assert_eq!(
            c.embedder.model_for(c.embedder.kind),
            "sentence-transformers/all-MiniLM-L6-v2"
        );
        assert_eq!(
            c.embedder.model_dir.as_deref(),
            Some(std::path::Path::new("/models/minilm"))
        );
        assert_eq!(
            c.embedder.model_cache.as_deref(),
            Some(std::path::Path::new("/var/cache/homi"))
        );
        assert_eq!(
            c.embedder.hf_endpoint.as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            c.embedder.hf_home.as_deref(),
            Some(std::path::Path::new("/hf"))
        );
        assert_eq!(
            c.embedder.virtual_env.as_deref(),
            Some(std::path::Path::new("/venv"))
        );
        // HOMI_EMBEDDING_MODEL names the model of whichever embedder runs.
        let c = from(&[
            ("HOMI_EMBEDDER", "local"),
            ("HOMI_EMBEDDING_MODEL", "BAAI/bge-small-en-v1.5"),
        ])
        .unwrap();
        assert_eq!(
            c.embedder.model_for(EmbedderKind::Local),
            "BAAI/bge-small-en-v1.5"
        );
        let c = from(&[("HOMI_EMBEDDER", "OPENAI")]).unwrap();
        assert_eq!(c.embedder.kind, EmbedderKind::OpenAi);
        assert_eq!(
            c.embedder.model_for(c.embedder.kind),
            DEFAULT_EMBEDDING_MODEL
        );
        for bad in ["candle", "hf", "open-ai"] {
            let err = from(&[("HOMI_EMBEDDER", bad)]).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Config);
            assert!(err.to_string().contains("HOMI_EMBEDDER"), "{err}");
            assert!(err.to_string().contains(bad), "{err}");
        }
        let err = from(&[("HF_ENDPOINT", "hub.example")]).unwrap_err();
        assert!(err.to_string().contains("HF_ENDPOINT"), "{err}");
    }

    #[test]
    fn the_effective_embedder_follows_the_rule() {
        let auto = Config::default();
        // Auto: local only without a provider and with a model on the machine.
        assert_eq!(
            auto.embedder.effective_kind(false, true),
            EmbedderKind::Local
        );
        assert_eq!(
            auto.embedder.effective_kind(false, false),
            EmbedderKind::OpenAi
        );
        assert_eq!(
            auto.embedder.effective_kind(true, true),
            EmbedderKind::OpenAi
        );
        assert_eq!(
            auto.embedder.effective_kind(true, false),
            EmbedderKind::OpenAi
        );
        // Chosen: always that one (a local embedder with a remote chat model).
        let local = Config::default().with_local_embedder(None);
        for (provider, found) in [(true, true), (true, false), (false, false)] {
            assert_eq!(
                local.embedder.effective_kind(provider, found),
                EmbedderKind::Local
            );
        }
        let openai = Config::default().with_embedder(EmbedderKind::OpenAi);
        assert_eq!(
            openai.embedder.effective_kind(false, true),
            EmbedderKind::OpenAi
        );
        let dir = Config::default().with_local_embedder(Some(PathBuf::from("/m")));
        assert_eq!(dir.embedder.model_dir, Some(PathBuf::from("/m")));
        let c = Config::default().with_embedding_model("nomic-embed-text", Some(768));
        assert_eq!(
            c.embedder.model_for(EmbedderKind::OpenAi),
            "nomic-embed-text"
        );
    }

    #[test]
    fn empty_counts_as_unset() {
        let c = from(&[("OPENAI_API_KEY", ""), ("API_PORT", " ")]).unwrap();
        assert!(c.provider.api_key.is_none());
        assert_eq!(c.server.port, 8000);
    }
}
