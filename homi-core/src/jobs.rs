//! Durable jobs: memory extraction that runs after a chat turn has been
//! answered, survives a crash or a restart, and is retried with backoff.
//!
//! A [`JobQueue`] writes jobs to the store; workers ([`JobQueue::run_next`],
//! or the loop of [`JobQueue::spawn_worker`]) claim them one at a time under a
//! lease. A worker that dies loses its lease and another worker takes the job
//! over; on Postgres, several processes share one queue (claims use
//! `FOR UPDATE SKIP LOCKED`). A failed attempt is retried after an
//! exponential backoff; after the last attempt the job is *dead* and stays
//! visible in [`JobCounts`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> homi_core::Result<()> {
//! # let fake = homi_testkit::FakeProvider::start().await.unwrap();
//! use homi_core::jobs::{JobOutcome, JobQueue, QueueOptions};
//! use homi_core::provider::ChatMessage;
//! use homi_core::{Config, Memory, Scope};
//! let config = Config::default()
//!     .with_database_url("sqlite::memory:")
//!     .with_openai_base_url(fake.base_url())
//!     .with_embedding_model("text-embedding-3-small", Some(64));
//! let memory = Memory::open(&config).await?;
//! let queue = JobQueue::for_memory(&memory, QueueOptions::default())?;
//! let alice = Scope::user("alice");
//! queue
//!     .enqueue_extraction(&alice, vec![ChatMessage::user("I moved to Lisbon")])
//!     .await?;
//! let run = queue.run_next(&memory).await?.expect("a job was queued");
//! assert!(matches!(run.outcome, JobOutcome::Done));
//! assert_eq!(memory.get_all(&alice, Default::default()).await?.len(), 1);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{Error, ErrorKind, Result};
use crate::memory::{AddOptions, Memory, Scope};
use crate::provider::ChatMessage;
use crate::store::DeletionMark;
pub use crate::store::jobs::{Job, JobCounts, JobKind, JobStore, NewJob};

/// Queue settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct QueueOptions {
    /// How long a claim lasts before another worker may take the job.
    pub lease: Duration,
    /// Attempts before a job is dead.
    pub max_attempts: u32,
    /// Backoff after the first failure; it doubles per attempt.
    pub backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// How often an idle worker looks for jobs enqueued by other processes.
    pub poll_interval: Duration,
    /// Jobs a worker runs at once (one user's jobs still one at a time).
    pub concurrency: usize,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(300),
            max_attempts: 8,
            backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(600),
            poll_interval: Duration::from_secs(1),
            concurrency: 8,
        }
    }
}

impl QueueOptions {
    /// The queue settings of `config` (`HOMI_JOB_LEASE_SECS`, `HOMI_JOB_MAX_ATTEMPTS`,
    /// `HOMI_JOB_CONCURRENCY`).
    pub fn from_config(config: &crate::Config) -> Self {
        QueueOptions::default()
            .lease(config.memory.job_lease)
            .max_attempts(config.memory.job_max_attempts)
            .concurrency(config.memory.job_concurrency)
    }

    /// Sets the lease.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }
    /// Sets the attempts before a job is dead (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }
    /// Sets the first backoff and the longest one.
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.backoff = first;
        self.max_backoff = max.max(first);
        self
    }
    /// Sets how many jobs a worker runs at once (at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }
    /// Sets how often an idle worker polls.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every;
        self
    }

    /// The wait before attempt `attempt + 1`, after `attempt` failed:
    /// `backoff · 2^(attempt-1)`, capped, with up to 20 % jitter taken off so
    /// that jobs failing together do not retry together.
    pub fn backoff_after(&self, attempt: u32) -> Duration {
        let doubled = self
            .backoff
            .checked_mul(1u32 << attempt.saturating_sub(1).min(20))
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff);
        let jitter = doubled.mul_f64(0.2 * jitter_unit());
        doubled.saturating_sub(jitter)
    }
}

/// A number in [0, 1] (randomness only spreads retries out).
fn jitter_unit() -> f64 {
    let b = Uuid::new_v4();
    f64::from(u16::from_le_bytes([b.as_bytes()[0], b.as_bytes()[1]])) / f64::from(u16::MAX)
}

/// The input of an extraction job.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Extraction {
    scope: Scope,
    messages: Vec<ChatMessage>,
    /// The scope's deletion epochs when the messages arrived: a delete-all
    /// after them wins over this job, wherever it is by then (see
    /// [`DeletionMark`]). Jobs queued without one take theirs when claimed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<Vec<(String, i64)>>,
}

/// What running one job did.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    /// It finished.
    Done,
    /// It failed and runs again at `at`.
    Retry {
        /// When.
        at: DateTime<Utc>,
        /// Why it failed.
        error: String,
    },
    /// It failed on its last attempt (or its input is invalid).
    Dead {
        /// Why.
        error: String,
    },
    /// This worker no longer holds the job: its lease ran out and another
    /// worker took the job over, or the job was dropped with its scope's
    /// memories (a delete-all). What this attempt did is not recorded.
    LeaseLost,
}

/// One job run by [`JobQueue::run_next`].
#[derive(Debug, Clone, PartialEq)]
pub struct JobRun {
    /// The job.
    pub id: Uuid,
    /// Its attempt number.
    pub attempt: u32,
    /// What happened.
    pub outcome: JobOutcome,
    /// The model calls and tokens the job used (zero when it failed before).
    pub usage: crate::memory::Usage,
}

/// Called after every job a worker of this process runs (for metrics).
pub type JobObserver = Arc<dyn Fn(&JobRun) + Send + Sync>;

/// The queue: enqueues jobs and runs them.
#[derive(Debug, Clone)]
pub struct JobQueue {
    store: Arc<dyn JobStore>,
    options: QueueOptions,
    wake: Arc<tokio::sync::Notify>,
    /// The users whose jobs this process is running: a user's jobs run one
    /// at a time, so two extractions never decide on the same memories at once.
    users: Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    observer: Arc<ObserverSlot>,
}

#[derive(Default)]
struct ObserverSlot(std::sync::OnceLock<JobObserver>);

impl std::fmt::Debug for ObserverSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "observed"
        } else {
            "unobserved"
        })
    }
}

impl JobQueue {
    /// A queue on a store.
    pub fn new(store: Arc<dyn JobStore>, options: QueueOptions) -> Self {
        Self {
            store,
            options,
            wake: Arc::new(tokio::sync::Notify::new()),
            users: Arc::default(),
            observer: Arc::default(),
        }
    }

    /// A queue on the store `memory` uses.
    pub fn for_memory(memory: &Memory, options: QueueOptions) -> Result<Self> {
        let store = memory.store().clone().job_store().ok_or_else(|| {
            Error::config(
                "DATABASE_URL",
                "this store keeps no job queue (use the SQLite or Postgres store)",
            )
        })?;
        Ok(Self::new(store, options))
    }

    /// The job that extracts memories from `messages` into `scope` (to
    /// enqueue with something else in one transaction).
    pub fn extraction_job(&self, scope: &Scope, messages: Vec<ChatMessage>) -> Result<NewJob> {
        self.extraction_job_since(scope, messages, None)
    }

    /// [`JobQueue::extraction_job`] for messages that arrived when the
    /// scope's deletions stood at `since`: a delete-all after that wins over
    /// the job, even one that comes once the job is claimed.
    pub(crate) fn extraction_job_since(
        &self,
        scope: &Scope,
        messages: Vec<ChatMessage>,
        since: Option<&DeletionMark>,
    ) -> Result<NewJob> {
        scope.validate(true)?;
        if messages.is_empty() {
            return Err(Error::invalid(
                "messages",
                "at least one message is required",
            ));
        }
        let payload = serde_json::to_value(Extraction {
            scope: scope.clone(),
            messages,
            since: since.map(|m| m.epochs.clone()),
        })
        .map_err(|e| Error::storage(format!("cannot encode a job: {e}")))?;
        Ok(NewJob {
            kind: JobKind::ExtractMemories,
            user_id: scope.user_id.clone(),
            payload,
            max_attempts: self.options.max_attempts,
            not_before: None,
        })
    }

    /// Lets job `id` run now if it waits for later (a turn that failed
    /// before its reply: its message is extracted without waiting).
    pub async fn hurry(&self, id: Uuid) -> Result<()> {
        self.store.hurry(id, Utc::now()).await?;
        self.wake();
        Ok(())
    }

    /// Enqueues memory extraction for a turn's messages in `scope`.
    pub async fn enqueue_extraction(
        &self,
        scope: &Scope,
        messages: Vec<ChatMessage>,
    ) -> Result<Uuid> {
        let job = self.extraction_job(scope, messages)?;
        let id = self.store.enqueue(&job, Utc::now()).await?;
        self.wake();
        Ok(id)
    }

    /// Wakes this process's idle workers (after a job was written elsewhere,
    /// e.g. with a chat turn).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Jobs per state.
    pub async fn counts(&self) -> Result<JobCounts> {
        self.store.counts(None).await
    }

    /// The jobs waiting or running, read without reading the finished ones
    /// (done and dead are 0): for health checks and metrics.
    pub async fn backlog(&self) -> Result<JobCounts> {
        self.store.backlog().await
    }

    /// Deletes done jobs older than a day and dead ones older than a week
    /// (their payloads are gone already; a dead job's error is kept that
    /// long for its operator). Returns how many.
    pub async fn prune_finished(&self) -> Result<u64> {
        let now = Utc::now();
        self.store
            .prune(
                now - chrono::Duration::days(1),
                now - chrono::Duration::days(7),
            )
            .await
    }

    /// One user's jobs per state.
    pub async fn user_counts(&self, user: &str) -> Result<JobCounts> {
        self.store.counts(Some(user)).await
    }

    /// Claims and runs the next runnable job; `None` when there is none.
    ///
    /// The lease is renewed while the job runs (a third of the lease at a
    /// time), so a job that takes long is not taken over; if a renewal finds
    /// the lease gone, the work stops and nothing of it is recorded
    /// ([`JobOutcome::LeaseLost`]).
    pub async fn run_next(&self, memory: &Memory) -> Result<Option<JobRun>> {
        let Some(job) = self.store.claim(Utc::now(), self.options.lease).await? else {
            return Ok(None);
        };
        let work = async {
            // The deletions the work answers to are fixed before it waits for
            // the user's turn: a delete-all meanwhile (which also deletes this
            // job) wins.
            let (extraction, since) = match job.kind {
                JobKind::ExtractMemories => extraction(memory, &job.payload).await?,
            };
            let _one_at_a_time = self.hold_user(job.user_id.as_deref()).await;
            run_extraction(memory, extraction, since).await
        };
        let result = tokio::select! {
            result = work => Some(result),
            () = self.keep_lease(&job) => None,
        };
        let Some(result) = result else {
            return Ok(Some(self.observed(JobRun {
                id: job.id,
                attempt: job.attempt,
                outcome: JobOutcome::LeaseLost,
                usage: crate::memory::Usage::default(),
            })));
        };
        let (result, usage) = match result {
            Ok(usage) => (Ok(()), usage),
            // The user deleted the scope's memories after this work's
            // messages came: there is nothing to write, now or on a retry.
            Err(Error::DeletedMeanwhile) => {
                tracing::info!(job = %job.id, "the scope's memories were deleted after this job's messages; nothing written");
                (Ok(()), crate::memory::Usage::default())
            }
            Err(e) => (Err(e), crate::memory::Usage::default()),
        };
        let now = Utc::now();
        let outcome = match result {
            Ok(()) => {
                if self.store.complete(job.id, job.lease, now).await? {
                    JobOutcome::Done
                } else {
                    JobOutcome::LeaseLost
                }
            }
            Err(e) => {
                let error = e.to_string();
                // Input that cannot work never will: no retry.
                let hopeless = e.kind() == ErrorKind::InvalidInput;
                if hopeless || job.attempt >= job.max_attempts {
                    tracing::warn!(job = %job.id, attempt = job.attempt, %error, "job failed for good");
                    if self
                        .store
                        .fail(job.id, job.lease, &error, None, now)
                        .await?
                    {
                        JobOutcome::Dead { error }
                    } else {
                        JobOutcome::LeaseLost
                    }
                } else {
                    let wait = self.options.backoff_after(job.attempt);
                    let at =
                        now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::zero());
                    tracing::info!(job = %job.id, attempt = job.attempt, %error, retry_in = ?wait, "job failed; will retry");
                    if self
                        .store
                        .fail(job.id, job.lease, &error, Some(at), now)
                        .await?
                    {
                        JobOutcome::Retry { at, error }
                    } else {
                        JobOutcome::LeaseLost
                    }
                }
            }
        };
        Ok(Some(self.observed(JobRun {
            id: job.id,
            attempt: job.attempt,
            outcome,
            usage,
        })))
    }

    /// Tells the observer about a run, and hands it back.
    fn observed(&self, run: JobRun) -> JobRun {
        if run.outcome == JobOutcome::LeaseLost {
            tracing::warn!(job = %run.id, attempt = run.attempt, "no longer holds the job (its lease was taken over, or the job was deleted with its scope's memories); its result is dropped");
        }
        if let Some(observe) = self.observer.0.get() {
            observe(&run);
        }
        run
    }

    /// Renews `job`'s lease every third of it; returns once the lease is
    /// lost (never, while this worker holds it). A renewal that fails (the
    /// database briefly unreachable) is tried again at the next beat.
    async fn keep_lease(&self, job: &Job) {
        let lease = self.options.lease;
        let beat = (lease / 3).max(Duration::from_millis(10));
        loop {
            tokio::time::sleep(beat).await;
            match self.store.renew(job.id, job.lease, Utc::now(), lease).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(job = %job.id, error = %e, "could not renew a job's lease")
                }
            }
        }
    }

    /// Waits until no job is queued or running (in any process), for at most
    /// `timeout`; returns the counts then (jobs waiting for a retry after a
    /// failure do not hold it up).
    pub async fn wait_until_idle(&self, timeout: Duration) -> Result<JobCounts> {
        self.wait_idle(None, timeout).await
    }

    /// [`JobQueue::wait_until_idle`] for one user's jobs.
    pub async fn wait_until_user_idle(&self, user: &str, timeout: Duration) -> Result<JobCounts> {
        self.wait_idle(Some(user), timeout).await
    }

    async fn wait_idle(&self, user: Option<&str>, timeout: Duration) -> Result<JobCounts> {
        let started = std::time::Instant::now();
        loop {
            let counts = self.store.counts(user).await?;
            if counts.queued + counts.running == 0 || started.elapsed() >= timeout {
                return Ok(counts);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sets the function called after every job this process runs (once;
    /// later calls are ignored). The server counts model use with it.
    pub fn observe(&self, observer: JobObserver) {
        let _ = self.observer.0.set(observer);
    }

    /// Waits until no other job of `user` runs in this process, and holds
    /// that until the guard drops.
    async fn hold_user(&self, user: Option<&str>) -> Option<UserTurn> {
        let user = user?.to_owned();
        let lock = {
            let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
            users.entry(user.clone()).or_default().clone()
        };
        let guard = lock.clone().lock_owned().await;
        Some(UserTurn {
            users: self.users.clone(),
            user,
            lock,
            _guard: guard,
        })
    }

    /// Runs jobs until `shutdown` resolves, [`QueueOptions::concurrency`] at a
    /// time: everything runnable, then waits for a local enqueue or the poll
    /// interval. A job interrupted by the shutdown keeps its lease and runs
    /// again after it.
    pub fn spawn_worker(
        &self,
        memory: Memory,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let shutdown = futures::FutureExt::shared(futures::FutureExt::boxed(shutdown));
        let loops: Vec<_> = (0..self.options.concurrency.max(1))
            .map(|_| self.spawn_loop(memory.clone(), shutdown.clone()))
            .collect();
        tokio::spawn(async move {
            for l in loops {
                let _ = l.await;
            }
        })
    }

    fn spawn_loop(
        &self,
        memory: Memory,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::pin!(shutdown);
            loop {
                let idle = match queue.run_next(&memory).await {
                    Ok(Some(_)) => false,
                    Ok(None) => true,
                    Err(e) => {
                        tracing::error!(error = %e, "the job queue failed; trying again");
                        true
                    }
                };
                if idle {
                    tokio::select! {
                        _ = &mut shutdown => return,
                        _ = queue.wake.notified() => {}
                        _ = tokio::time::sleep(queue.options.poll_interval) => {}
                    }
                } else if futures::FutureExt::now_or_never(&mut shutdown).is_some() {
                    return;
                }
            }
        })
    }
}

/// One user's turn at running a job; leaving it frees the user's entry when
/// no other job of theirs waits.
struct UserTurn {
    users: Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    user: String,
    lock: Arc<tokio::sync::Mutex<()>>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for UserTurn {
    fn drop(&mut self) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        // Held by the map, by `lock` and by the guard: nobody else waits.
        if Arc::strong_count(&self.lock) <= 3 {
            users.remove(&self.user);
        }
    }
}

/// An extraction job's input, and the deletion mark its writes answer to:
/// the one it was queued with, else one taken now.
async fn extraction(memory: &Memory, payload: &Value) -> Result<(Extraction, DeletionMark)> {
    let mut job: Extraction = serde_json::from_value(payload.clone())
        .map_err(|e| Error::invalid("job payload", e.to_string()))?;
    let since = match job.since.take() {
        Some(epochs) => DeletionMark {
            scope: job.scope.clone(),
            epochs,
        },
        None => memory.deletion_mark(&job.scope).await?,
    };
    Ok((job, since))
}

async fn run_extraction(
    memory: &Memory,
    job: Extraction,
    since: DeletionMark,
) -> Result<crate::memory::Usage> {
    let added = memory
        .add_unmetered(
            job.messages.into(),
            &job.scope,
            AddOptions::default(),
            Some(since),
        )
        .await?;
    // The user asked for this work with their turn: it is charged, never refused.
    if let Some(user) = job.scope.user_id.as_deref() {
        memory
            .budgets()
            .charge(user, added.usage.total_tokens())
            .await;
    }
    Ok(added.usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let o = QueueOptions::default().backoff(Duration::from_secs(2), Duration::from_secs(60));
        let first = o.backoff_after(1);
        assert!(first <= Duration::from_secs(2) && first >= Duration::from_millis(1600));
        let third = o.backoff_after(3);
        assert!(third <= Duration::from_secs(8) && third >= Duration::from_millis(6400));
        assert!(o.backoff_after(30) <= Duration::from_secs(60));
    }
}
