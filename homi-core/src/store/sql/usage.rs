//! [`UsageStore`] on any SQL store, written once.

use async_trait::async_trait;

use super::{Columns, Exec, SqlStore, binds};
use crate::error::Result;
use crate::store::usage::UsageStore;

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl<S: SqlStore> UsageStore for S {
    async fn add_tokens(&self, user: &str, day: &str, tokens: u64) -> Result<()> {
        let mut c = self.writer().await?;
        let ([u, d, t], args) = binds::<S::D, 3>([user.into(), day.into(), signed(tokens).into()]);
        let sql = format!(
            "INSERT INTO homi_usage (user_id, day, tokens) VALUES ({u}, {d}, {t}) \
             ON CONFLICT (user_id, day) DO UPDATE SET tokens = homi_usage.tokens + excluded.tokens"
        );
        c.run(sql, args).await?;
        Ok(())
    }

    async fn tokens(&self, user: &str, day: &str) -> Result<u64> {
        let mut c = self.read().await?;
        let ([u, d], args) = binds::<S::D, 2>([user.into(), day.into()]);
        let sql = format!(
            "SELECT CAST(tokens AS BIGINT) FROM homi_usage WHERE user_id = {u} AND day = {d}"
        );
        Ok(match c.optional(sql, args).await? {
            Some(row) => u64::try_from(row.int(0)?).unwrap_or(0),
            None => 0,
        })
    }

    async fn prune_before(&self, day: &str) -> Result<u64> {
        let mut c = self.writer().await?;
        let ([d], args) = binds::<S::D, 1>([day.into()]);
        c.run(format!("DELETE FROM homi_usage WHERE day < {d}"), args)
            .await
    }
}
