#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "auth")]
pub mod auth;
#[cfg(feature = "memory")]
pub mod budget;
#[cfg(feature = "chat")]
pub mod chat;
pub mod config;
pub mod doctor;
pub mod error;
#[cfg(feature = "memory")]
pub mod jobs;
#[cfg(test)]
mod layers;
pub mod mem0_config;
#[cfg(feature = "memory")]
pub mod memory;
#[cfg(feature = "memory")]
pub mod model;
#[cfg(any(feature = "memory", feature = "auth"))]
pub mod open;
pub mod provider;
#[cfg(any(feature = "memory", feature = "auth"))]
pub mod store;
#[cfg(feature = "memory")]
pub mod transfer;

pub use config::Config;
pub use error::{Error, ErrorKind, Result};
#[cfg(feature = "memory")]
pub use memory::{
    Access, AddEvent, AddOptions, AddResult, Event, Filter, HistoryEntry, ListOptions, Memory,
    MemoryBuilder, MemoryEdit, MemoryItem, MemoryPage, Messages, Metadata, Scope, SearchMode,
    SearchOptions, SearchResult, Usage,
};
#[cfg(all(feature = "memory", any(feature = "openai", feature = "local")))]
pub use open::Homi;

/// The Rust quick starts of the repository's README, compiled with the doc
/// tests so that they stay true.
#[cfg(all(doctest, feature = "auth"))]
#[doc = include_str!("../../README.md")]
pub struct RepositoryReadme;
