//! The data model: what a memory, its scope, its history and a filter are,
//! and how memory text splits into search terms. The bottom layer of the
//! core: it imports nothing but [`crate::error`], and every other layer
//! (the store ports, the engine and its dialects, the clients) builds on it.

pub mod filter;
pub mod keywords;
pub mod types;

pub use filter::{Field, Filter, Op};
pub use types::{Event, HistoryEntry, MemoryItem, Metadata, Scope};
