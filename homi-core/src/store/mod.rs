//! The stores: the ports the clients call (one trait per client, with its
//! rows: [`memory`], [`chat`], [`jobs`], [`auth`]) and one module per
//! database implementing all of them. [`sqlite`] is the embedded default.
//! Every method takes the caller's scope or user and filters by it in SQL.

#[cfg(feature = "memory")]
use crate::error::Result;

#[cfg(feature = "auth")]
pub mod auth;
#[cfg(feature = "chat")]
pub mod chat;
#[cfg(feature = "memory")]
pub mod jobs;
#[cfg(feature = "sqlite")]
pub(crate) mod keyword_index;
#[cfg(feature = "memory")]
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "sqlite")]
pub(crate) mod vector;

#[cfg(feature = "memory")]
pub use memory::*;

/// The stores of one database: the memories, and (with the `auth` feature)
/// the accounts and auth sessions, sharing one connection pool.
#[cfg(feature = "memory")]
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Stores {
    /// The memory store.
    pub memory: std::sync::Arc<dyn Store>,
    /// The accounts and auth sessions.
    #[cfg(feature = "auth")]
    pub auth: std::sync::Arc<dyn auth::AuthStore>,
}

/// Opens the store `config.database_url` names: `sqlite:` URLs with the
/// `sqlite` feature, `postgres://` / `postgresql://` with the `postgres` feature.
#[cfg(feature = "memory")]
pub async fn open(config: &crate::Config) -> Result<std::sync::Arc<dyn Store>> {
    Ok(open_stores(config).await?.memory)
}

/// Like [`open`], with every store of the database.
#[cfg(feature = "memory")]
pub async fn open_stores(config: &crate::Config) -> Result<Stores> {
    let url = config.database_url.as_str();
    if url.starts_with("sqlite:") {
        #[cfg(feature = "sqlite")]
        {
            let options = sqlite::SqliteOptions {
                cache_bytes: config.memory.vector_cache_mb.saturating_mul(1024 * 1024),
                ..sqlite::SqliteOptions::default()
            };
            let store = std::sync::Arc::new(sqlite::SqliteStore::open_with(url, options).await?);
            return Ok(Stores {
                memory: store.clone(),
                #[cfg(feature = "auth")]
                auth: store,
            });
        }
        #[cfg(not(feature = "sqlite"))]
        return Err(crate::Error::config(
            "DATABASE_URL",
            "sqlite: URLs need homi-core's `sqlite` feature, which this build does not include",
        ));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        {
            let options = postgres::PostgresOptions {
                max_connections: config.database_max_connections,
                min_connections: config.database_min_connections,
                acquire_timeout: config.database_acquire_timeout,
                ..postgres::PostgresOptions::default()
            };
            let store =
                std::sync::Arc::new(postgres::PostgresStore::open_with(url, options).await?);
            return Ok(Stores {
                memory: store.clone(),
                #[cfg(feature = "auth")]
                auth: store,
            });
        }
        #[cfg(not(feature = "postgres"))]
        return Err(crate::Error::config(
            "DATABASE_URL",
            format!(
                "'{}' needs homi-core's `postgres` feature, which this build does not include",
                config.redacted_database_url()
            ),
        ));
    }
    Err(crate::Error::config(
        "DATABASE_URL",
        format!(
            "'{}' is not supported: use sqlite://path/to/file.db or postgres://user:pass@host/db",
            config.redacted_database_url()
        ),
    ))
}
