//! The stores: the ports the clients call (one trait per client, with its
//! rows: [`memory`], [`chat`], [`jobs`], [`auth`]) and one module per
//! database implementing all of them. [`sqlite`] is the embedded default.
//! Every method takes the caller's scope or user and filters by it in SQL.

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
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "memory")]
pub mod usage;
#[cfg(feature = "sqlite")]
pub(crate) mod vector;

#[cfg(feature = "memory")]
pub use memory::*;

/// Whether a database URL names an in-memory SQLite database, which each
/// connection opens afresh: one connection kept forever, never shared.
#[cfg(feature = "memory")]
pub(crate) fn sqlite_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}
