//! The job queue's port: the [`JobStore`] trait the queue calls, and its
//! rows.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::Result;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobKind {
    /// `Memory::add(messages, scope, infer=true)` for a turn.
    ExtractMemories,
}

impl JobKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::ExtractMemories => "extract_memories",
        }
    }

    /// The kind with this stored name.
    pub fn parse(s: &str) -> Option<JobKind> {
        match s {
            "extract_memories" => Some(JobKind::ExtractMemories),
            _ => None,
        }
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// What it does.
    pub kind: JobKind,
    /// Whose it is (deleting the user deletes their jobs).
    pub user_id: Option<String>,
    /// Its input.
    pub payload: Value,
    /// Attempts before it is dead.
    pub max_attempts: u32,
    /// When it may run first (`None`: at once).
    pub not_before: Option<DateTime<Utc>>,
}

/// A claimed job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Its id.
    pub id: Uuid,
    /// What it does.
    pub kind: JobKind,
    /// Whose it is.
    pub user_id: Option<String>,
    /// Its input.
    pub payload: Value,
    /// This attempt's number (1 for the first).
    pub attempt: u32,
    /// Attempts before it is dead.
    pub max_attempts: u32,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// This claim's lease: renewing it, completing the job and recording a
    /// failure take effect only while it is the job's current lease.
    pub lease: Uuid,
}

/// How many jobs are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobCounts {
    /// Waiting to run (retries included).
    pub queued: u64,
    /// Of those, jobs that failed at least once and wait for another attempt.
    pub retrying: u64,
    /// Claimed by a worker now.
    pub running: u64,
    /// Finished.
    pub done: u64,
    /// Failed on their last attempt.
    pub dead: u64,
}

impl JobCounts {
    /// Counts from `(state, jobs, jobs attempted at least once)` rows.
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub(crate) fn tally(rows: impl IntoIterator<Item = (String, i64, i64)>) -> Self {
        let mut c = JobCounts::default();
        for (state, n, attempted) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            match state.as_str() {
                "queued" => {
                    c.queued = n;
                    c.retrying = u64::try_from(attempted).unwrap_or(0);
                }
                "running" => c.running = n,
                "done" => c.done = n,
                "dead" => c.dead = n,
                _ => {}
            }
        }
        c
    }
}

/// The store side of the queue: one trait, implemented by the SQLite and the
/// Postgres stores.
#[async_trait]
pub trait JobStore: Send + Sync + std::fmt::Debug {
    /// Writes a job, runnable at `now`.
    async fn enqueue(&self, job: &NewJob, now: DateTime<Utc>) -> Result<Uuid>;

    /// Claims a runnable job — first one running with an expired lease, then
    /// the oldest queued with `run_at <= now` whose user has no job running —
    /// counting the attempt and leasing it until `now + lease` under a new
    /// lease token. Concurrent claims (in any process) never get the same
    /// job, nor two jobs of one user.
    async fn claim(&self, now: DateTime<Utc>, lease: Duration) -> Result<Option<Job>>;

    /// Extends a running job's lease to `now + lease`; `false` when `lease_token`
    /// is no longer its lease (it ran out and another worker took the job).
    async fn renew(
        &self,
        id: Uuid,
        lease_token: Uuid,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<bool>;

    /// Marks a claimed job done (its payload is dropped); `false`, changing
    /// nothing, when `lease_token` is no longer its lease.
    async fn complete(&self, id: Uuid, lease_token: Uuid, now: DateTime<Utc>) -> Result<bool>;

    /// Records a failed attempt: queued again at `retry_at`, or dead (payload
    /// dropped) when `retry_at` is `None`; `false`, changing nothing, when
    /// `lease_token` is no longer its lease.
    async fn fail(
        &self,
        id: Uuid,
        lease_token: Uuid,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Lets a queued job that waits for a later `run_at` run at `now`.
    async fn hurry(&self, id: Uuid, now: DateTime<Utc>) -> Result<()>;

    /// The jobs waiting or running (queued, retrying, running; done and
    /// dead are 0): read through the state index, without reading the
    /// finished jobs, so that health checks and metrics stay cheap.
    async fn backlog(&self) -> Result<JobCounts>;

    /// Deletes done jobs last changed before `done_before` and dead ones
    /// before `dead_before`; returns how many.
    async fn prune(&self, done_before: DateTime<Utc>, dead_before: DateTime<Utc>) -> Result<u64>;

    /// Jobs per state: all of them, or `user`'s.
    async fn counts(&self, user: Option<&str>) -> Result<JobCounts>;
}
