//! The composition root: the one module that names a database backend. It
//! opens the database `DATABASE_URL` names (SQLite or Postgres, running its
//! migrations), and builds the clients over it: [`Homi::open`] all of them
//! on one store and one connection pool, [`Memory::open`], [`Chat::open`] and
//! [`Auth::open`] one each.
//!
//! The layers of the core, bottom to top: `error`; `config`; `mem0_config`;
//! `model` (the data types) and `provider` (the models); `store` (the ports
//! and the two dialects); the clients (`memory`; `jobs`, `transfer`,
//! `import`; `chat`, `auth`); this module; `doctor`. A module imports only from layers below
//! its own (ARCHITECTURE.md; `src/layers.rs` checks it).

use std::sync::Arc;

#[cfg(feature = "auth")]
use crate::auth::Auth;
#[cfg(all(feature = "chat", feature = "openai"))]
use crate::chat::Chat;
use crate::config::Config;
use crate::error::{Error, Result};
#[cfg(all(feature = "memory", any(feature = "openai", feature = "local")))]
use crate::jobs::JobQueue;
#[cfg(all(
    feature = "memory",
    any(feature = "openai", feature = "local"),
    not(all(feature = "chat", feature = "openai"))
))]
use crate::jobs::QueueOptions;
#[cfg(feature = "memory")]
use crate::memory::Memory;
#[cfg(feature = "memory")]
use crate::store::Store;
#[cfg(feature = "auth")]
use crate::store::auth::AuthStore;
#[cfg(all(feature = "memory", any(feature = "openai", feature = "local")))]
use crate::transfer::{REEMBED_BATCH, ReembedProgress, ReembedReport};

/// The stores of one database: the memories, and (with the `auth` feature)
/// the accounts and auth sessions, sharing one connection pool.
#[cfg(feature = "memory")]
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Stores {
    /// The memory store.
    pub memory: Arc<dyn Store>,
    /// The accounts and auth sessions.
    #[cfg(feature = "auth")]
    pub auth: Arc<dyn AuthStore>,
}

/// Opens the store `config.database_url` names: `sqlite:` URLs with the
/// `sqlite` feature, `postgres://` / `postgresql://` with the `postgres` feature.
#[cfg(feature = "memory")]
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>> {
    Ok(open_stores(config).await?.memory)
}

/// Like [`open_store`], with every store of the database.
#[cfg(feature = "memory")]
pub async fn open_stores(config: &Config) -> Result<Stores> {
    let url = config.database_url.as_str();
    if url.starts_with("sqlite:") {
        #[cfg(feature = "sqlite")]
        {
            let options = crate::store::sqlite::SqliteOptions {
                cache_bytes: config.memory.vector_cache_mb.saturating_mul(1024 * 1024),
                ..crate::store::sqlite::SqliteOptions::default()
            };
            let store = Arc::new(crate::store::sqlite::SqliteStore::open_with(url, options).await?);
            return Ok(Stores {
                memory: store.clone(),
                #[cfg(feature = "auth")]
                auth: store,
            });
        }
        #[cfg(not(feature = "sqlite"))]
        return Err(Error::config(
            "DATABASE_URL",
            "sqlite: URLs need homi-core's `sqlite` feature, which this build does not include",
        ));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        {
            let options = crate::store::postgres::PostgresOptions {
                max_connections: config.database_max_connections,
                min_connections: config.database_min_connections,
                acquire_timeout: config.database_acquire_timeout,
                collection: config.collection.clone(),
                ..crate::store::postgres::PostgresOptions::default()
            };
            let store =
                Arc::new(crate::store::postgres::PostgresStore::open_with(url, options).await?);
            return Ok(Stores {
                memory: store.clone(),
                #[cfg(feature = "auth")]
                auth: store,
            });
        }
        #[cfg(not(feature = "postgres"))]
        return Err(Error::config(
            "DATABASE_URL",
            format!(
                "'{}' needs homi-core's `postgres` feature, which this build does not include",
                config.redacted_database_url()
            ),
        ));
    }
    Err(Error::config(
        "DATABASE_URL",
        format!(
            "'{}' is not supported: use sqlite://path/to/file.db or postgres://user:pass@host/db",
            config.redacted_database_url()
        ),
    ))
}

/// The stores this process has open, by database, for [`open_stores_shared`].
#[cfg(feature = "memory")]
static SHARED: std::sync::Mutex<Vec<SharedStores>> = std::sync::Mutex::new(Vec::new());

#[cfg(feature = "memory")]
struct SharedStores {
    /// The process that opened them (a forked child opens its own).
    pid: u32,
    /// The database and the settings it was opened with ([`store_key`]).
    key: String,
    memory: std::sync::Weak<dyn Store>,
    #[cfg(feature = "auth")]
    auth: std::sync::Weak<dyn AuthStore>,
}

#[cfg(feature = "memory")]
impl SharedStores {
    fn get(&self, pid: u32, key: &str) -> Option<Stores> {
        if self.pid != pid || self.key != key {
            return None;
        }
        Some(Stores {
            memory: self.memory.upgrade()?,
            #[cfg(feature = "auth")]
            auth: self.auth.upgrade()?,
        })
    }
}

/// Like [`open_stores`], except that a database this process has open
/// already, and still uses, is shared instead of opened again: clients
/// opened one by one (Python's `Memory`, `Chat` and `Auth`) then share one
/// store, one connection pool and, on SQLite, one writer and one vector
/// cache. A store is shared only with a configuration naming the same
/// database URL (as written: a relative SQLite path is not resolved) and the
/// same store settings (pool size and timeout, vector cache size). An
/// in-memory SQLite database is never shared (each open is its own database).
#[cfg(feature = "memory")]
pub async fn open_stores_shared(config: &Config) -> Result<Stores> {
    let url = config.database_url.as_str();
    if crate::store::sqlite_in_memory(url) {
        return open_stores(config).await;
    }
    let pid = std::process::id();
    let key = store_key(config);
    let find = |shared: &[SharedStores]| shared.iter().find_map(|s| s.get(pid, &key));
    if let Some(stores) = find(&SHARED.lock().unwrap_or_else(|e| e.into_inner())) {
        return Ok(stores);
    }
    let opened = open_stores(config).await?;
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    shared.retain(|s| s.memory.strong_count() > 0);
    // Opened meanwhile by another caller: use that one, drop this one.
    if let Some(stores) = find(&shared) {
        return Ok(stores);
    }
    shared.push(SharedStores {
        pid,
        key,
        memory: std::sync::Arc::downgrade(&opened.memory),
        #[cfg(feature = "auth")]
        auth: std::sync::Arc::downgrade(&opened.auth),
    });
    Ok(opened)
}

/// What decides whether two configurations may share a store: the database
/// and every setting [`open_stores`] opens it with.
#[cfg(feature = "memory")]
fn store_key(config: &Config) -> String {
    format!(
        "{} collection={:?} cache={} pool={}..{} acquire={:?}",
        config.database_url,
        config.collection,
        config.memory.vector_cache_mb,
        config.database_min_connections,
        config.database_max_connections,
        config.database_acquire_timeout
    )
}

/// Opens the database (running its migrations) and closes it again: what
/// `homi migrate` does.
#[cfg(feature = "memory")]
pub async fn migrate(config: &Config) -> Result<()> {
    open_store(config).await.map(drop)
}

/// Every client of one database, on one store and one connection pool (what
/// the server opens). Which clients there are follows homi-core's features:
/// `chat` needs `chat` and `openai`, `auth` needs `auth`.
#[cfg(all(feature = "memory", any(feature = "openai", feature = "local")))]
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Homi {
    /// Memories.
    pub memory: Memory,
    /// Chat turns and conversations (the extraction queue is [`Homi::jobs`]).
    #[cfg(all(feature = "chat", feature = "openai"))]
    pub chat: Chat,
    /// Accounts, sessions and API keys.
    #[cfg(feature = "auth")]
    pub auth: Auth,
    /// The durable job queue (memory extraction after chat turns).
    pub jobs: JobQueue,
}

#[cfg(all(feature = "memory", any(feature = "openai", feature = "local")))]
impl Homi {
    /// Opens the database `config.database_url` names and every client over
    /// it, as [`Memory::open`], [`Chat::open`] and [`Auth::open`] each would,
    /// sharing one store.
    pub async fn open(config: &Config) -> Result<Homi> {
        let stores = open_stores(config).await?;
        let memory = Memory::with_store(config, stores.memory).await?;
        #[cfg(all(feature = "chat", feature = "openai"))]
        let chat = Chat::with_memory(config, memory.clone())?;
        #[cfg(all(feature = "chat", feature = "openai"))]
        let jobs = chat.queue().clone();
        #[cfg(not(all(feature = "chat", feature = "openai")))]
        let jobs = JobQueue::for_memory(&memory, QueueOptions::from_config(config))?;
        #[cfg(feature = "auth")]
        let auth = Auth::with_store(config, stores.auth).await?;
        Ok(Homi {
            memory,
            #[cfg(all(feature = "chat", feature = "openai"))]
            chat,
            #[cfg(feature = "auth")]
            auth,
            jobs,
        })
    }
}

#[cfg(feature = "memory")]
impl Memory {
    /// Opens the store named by `config.database_url` with no embedder and
    /// no chat model, so that it opens whatever embedder the store records:
    /// for moving memories ([`Memory::export_jsonl`], [`Memory::reembed`],
    /// the mem0 import). Calls that need a model fail with a
    /// `ProviderNotConfigured` error.
    pub async fn open_without_provider(config: &Config) -> Result<Memory> {
        Memory::builder(open_store(config).await?).build().await
    }
}

#[cfg(all(feature = "memory", any(feature = "openai", feature = "local")))]
impl Memory {
    /// Opens the store named by `config.database_url`, the embedder of
    /// `config.embedder` ([`crate::provider::open_embedder`]: the local one or
    /// the provider's) and the chat model of `config.provider`. Without a
    /// provider, reads and deletions work, `add(infer=true)` fails with a
    /// `ProviderNotConfigured` error saying what to set, and so do `add` and
    /// `search` unless the local embedder runs.
    pub async fn open(config: &Config) -> Result<Memory> {
        Memory::with_store(config, open_store(config).await?).await
    }

    /// Like [`Memory::open`], on the store this process has open already for
    /// the same database, if any ([`open_stores_shared`]).
    pub async fn open_shared(config: &Config) -> Result<Memory> {
        Memory::with_store(config, open_stores_shared(config).await?.memory).await
    }
}

#[cfg(all(feature = "chat", feature = "openai"))]
impl Chat {
    /// Opens the store, the memory and the chat model the configuration names.
    /// Without a model provider, turns fail with a `ProviderNotConfigured`
    /// error that says what to set; conversations can still be read.
    pub async fn open(config: &Config) -> Result<Chat> {
        Chat::with_memory(config, Memory::open(config).await?)
    }

    /// Like [`Chat::open`], on the store this process has open already for
    /// the same database, if any ([`open_stores_shared`]).
    pub async fn open_shared(config: &Config) -> Result<Chat> {
        Chat::with_memory(config, Memory::open_shared(config).await?)
    }
}

#[cfg(feature = "auth")]
impl Auth {
    /// Opens the store `config.database_url` names and the backend the
    /// configuration chooses: Supabase Auth when `SUPABASE_URL` and
    /// `SUPABASE_KEY` are set, built-in accounts otherwise.
    pub async fn open(config: &Config) -> Result<Auth> {
        Auth::with_store(config, open_auth_store(config, false).await?).await
    }

    /// Like [`Auth::open`], on the store this process has open already for
    /// the same database, if any.
    pub async fn open_shared(config: &Config) -> Result<Auth> {
        Auth::with_store(config, open_auth_store(config, true).await?).await
    }
}

/// Opens the configured database as an [`AuthStore`].
#[cfg(feature = "auth")]
async fn open_auth_store(config: &Config, shared: bool) -> Result<Arc<dyn AuthStore>> {
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    {
        Ok(if shared {
            open_stores_shared(config).await?.auth
        } else {
            open_stores(config).await?.auth
        })
    }
    #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
    {
        let _ = shared;
        Err(Error::config(
            "DATABASE_URL",
            format!(
                "'{}' cannot be opened: this build of homi-core has neither the `sqlite` nor the `postgres` feature",
                config.redacted_database_url()
            ),
        ))
    }
}

/// [`Memory::reembed`] on the store `config` names, to the embedder it
/// names: what `homi memory reembed` does.
#[cfg(all(feature = "memory", any(feature = "openai", feature = "local")))]
pub async fn reembed_with_config(
    config: &Config,
    progress: impl FnMut(ReembedProgress),
) -> Result<ReembedReport> {
    let Some(embedder) = crate::provider::open_embedder(config).await? else {
        return Err(Error::ProviderNotConfigured(
            "set OPENAI_API_KEY to use OpenAI, or OPENAI_BASE_URL to use any OpenAI-compatible \
             server, or HOMI_EMBEDDER=local for the local embedder"
                .to_owned(),
        ));
    };
    Memory::open_without_provider(config)
        .await?
        .reembed(embedder.as_ref(), REEMBED_BATCH, progress)
        .await
}
