//! The data model: what a memory, its scope, its history and a filter are,
//! and how memory text splits into search terms. It imports nothing of the
//! core but [`crate::error`], and the layers above it (the store ports and
//! their dialects, the clients) build on it.

pub mod filter;
pub mod keywords;
pub mod types;

pub use filter::{Field, Filter, Op};
pub use types::{Access, Event, HistoryEntry, MemoryItem, Metadata, Scope, ScoreDetails};
