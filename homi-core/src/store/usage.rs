//! The spend port: model tokens each user spent per UTC day, for the
//! per-user daily budget ([`crate::budget`]).

use async_trait::async_trait;

use crate::error::Result;

/// Tokens per user and day, kept in the store so that every process on one
/// database counts the same spend.
#[async_trait]
pub trait UsageStore: Send + Sync + std::fmt::Debug {
    /// Adds `tokens` to `user`'s spend on `day` (`YYYY-MM-DD`, UTC).
    async fn add_tokens(&self, user: &str, day: &str, tokens: u64) -> Result<()>;

    /// `user`'s spend on `day`.
    async fn tokens(&self, user: &str, day: &str) -> Result<u64>;

    /// Forgets the days before `day`; returns how many rows.
    async fn prune_before(&self, day: &str) -> Result<u64>;
}
