//! The durable job queue, unchanged on SQLite and on Postgres: extraction runs
//! after the fact, failures are retried with backoff and end dead after the
//! last attempt, a job whose worker died is taken over, and concurrent workers
//! (separate connections, as separate processes have) never run a job twice.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use homi_core::jobs::{JobCounts, JobOutcome, JobQueue, QueueOptions};
use homi_core::provider::ChatMessage;
use homi_core::{Config, Memory, Scope};
use homi_testkit::{FakeProvider, Fault, Target};

use crate::common;
use common::{Backend, postgres_holds, sqlite_files_hold};

struct Env {
    backend: Backend,
    fake: FakeProvider,
    config: Config,
    memory: Memory,
    dir: tempfile::TempDir,
}

async fn env(backend: Backend) -> Option<Env> {
    let dir = tempfile::tempdir().unwrap();
    let url = common::database_url(backend, dir.path()).await?;
    let fake = FakeProvider::start().await.unwrap();
    let config = common::provider_config(&url, &fake.base_url(), 64, 0);
    let memory = Memory::open(&config).await.unwrap();
    Some(Env {
        backend,
        fake,
        config,
        memory,
        dir,
    })
}

impl Env {
    fn queue(&self, options: QueueOptions) -> JobQueue {
        JobQueue::for_memory(&self.memory, options).unwrap()
    }

    async fn holds(&self, needle: &str) -> bool {
        match self.backend {
            Backend::Sqlite => sqlite_files_hold(&self.dir.path().join("homi.db"), needle).await,
            Backend::Postgres => postgres_holds(&self.config.database_url, needle).await,
        }
    }

    /// Whether a job row's payload still holds `needle` (as SQL sees it).
    async fn job_payload_holds(&self, needle: &str) -> bool {
        let like = format!("%{needle}%");
        let n: i64 = match self.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.config.database_url)
                    .await
                    .unwrap();
                sqlx::query_scalar("SELECT COUNT(*) FROM homi_jobs WHERE payload LIKE ?")
                    .bind(like)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
            Backend::Postgres => postgres_job_payloads(&self.config.database_url, &like).await,
        };
        n > 0
    }
}

#[cfg(feature = "postgres")]
async fn postgres_job_payloads(url: &str, like: &str) -> i64 {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM homi_jobs WHERE payload::text LIKE $1")
        .bind(like)
        .fetch_one(&pool)
        .await
        .unwrap()
}

#[cfg(not(feature = "postgres"))]
async fn postgres_job_payloads(_: &str, _: &str) -> i64 {
    unreachable!("Postgres tests are compiled only with the postgres feature")
}

fn fast() -> QueueOptions {
    QueueOptions::default().backoff(Duration::ZERO, Duration::ZERO)
}

async fn extraction_runs_after_the_fact_and_keeps_no_payload(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let q = e.queue(QueueOptions::default());
    let alice = Scope::user("alice");
    q.enqueue_extraction(&alice, vec![ChatMessage::user("I keep bees on the roof")])
        .await
        .unwrap();
    assert_eq!(e.fake.stats().chat_requests, 0, "enqueueing calls no model");
    assert_eq!(q.counts().await.unwrap().queued, 1);
    let run = q.run_next(&e.memory).await.unwrap().unwrap();
    assert_eq!(run.outcome, JobOutcome::Done);
    assert_eq!(run.attempt, 1);
    let all = e.memory.get_all(&alice, Default::default()).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].memory, "I keep bees on the roof");
    assert!(q.run_next(&e.memory).await.unwrap().is_none());
    assert_eq!(
        q.counts().await.unwrap(),
        JobCounts {
            done: 1,
            ..Default::default()
        }
    );
    // Only the memory keeps the text; the finished job does not.
    e.memory.delete_all(&alice).await.unwrap();
    assert!(!e.holds("bees on the roof").await);
    let err = q
        .enqueue_extraction(&Scope::default(), vec![ChatMessage::user("x")])
        .await;
    assert!(err.unwrap_err().to_string().contains("user_id"));
}

async fn failures_retry_with_backoff_then_die(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    // A real backoff: the retry waits.
    let q = e.queue(QueueOptions::default().max_attempts(3));
    let bob = Scope::user("bob");
    q.enqueue_extraction(&bob, vec![ChatMessage::user("Bob plays the oboe")])
        .await
        .unwrap();
    e.fake.push_fault(Target::Any, Fault::ServerError, 1);
    let run = q.run_next(&e.memory).await.unwrap().unwrap();
    let JobOutcome::Retry { at, error } = run.outcome else {
        panic!("{run:?}")
    };
    assert!(error.contains("model provider"), "{error}");
    assert!(at > chrono::Utc::now(), "the retry waits");
    assert!(
        q.run_next(&e.memory).await.unwrap().is_none(),
        "not runnable yet"
    );
    let c = q.counts().await.unwrap();
    assert_eq!((c.queued, c.retrying), (1, 1));

    // Without backoff: the provider recovers on the second attempt.
    let Some(e) = env(backend).await else { return };
    let q = e.queue(fast().max_attempts(3));
    q.enqueue_extraction(&bob, vec![ChatMessage::user("Bob plays the oboe")])
        .await
        .unwrap();
    e.fake.push_fault(Target::Any, Fault::ServerError, 1);
    assert!(matches!(
        q.run_next(&e.memory).await.unwrap().unwrap().outcome,
        JobOutcome::Retry { .. }
    ));
    let run = q.run_next(&e.memory).await.unwrap().unwrap();
    assert_eq!((run.attempt, run.outcome), (2, JobOutcome::Done));
    assert_eq!(
        e.memory
            .get_all(&bob, Default::default())
            .await
            .unwrap()
            .len(),
        1
    );

    // A provider that keeps failing: dead after the last attempt, payload gone.
    q.enqueue_extraction(&bob, vec![ChatMessage::user("Bob fears the dentist")])
        .await
        .unwrap();
    e.fake.push_fault(Target::Any, Fault::ServerError, 100);
    for attempt in 1..=3 {
        let run = q.run_next(&e.memory).await.unwrap().unwrap();
        assert_eq!(run.attempt, attempt);
        if attempt < 3 {
            assert!(matches!(run.outcome, JobOutcome::Retry { .. }), "{run:?}");
        } else {
            assert!(matches!(run.outcome, JobOutcome::Dead { .. }), "{run:?}");
        }
    }
    assert!(q.run_next(&e.memory).await.unwrap().is_none());
    let c = q.counts().await.unwrap();
    assert_eq!((c.done, c.dead, c.queued), (1, 1, 0));
    assert!(
        !e.job_payload_holds("fears the dentist").await,
        "a dead job keeps no payload"
    );
    // Forgetting the user's memories leaves no trace of it in the files either.
    e.memory.delete_all(&bob).await.unwrap();
    assert!(!e.holds("fears the dentist").await);
}

async fn a_job_whose_worker_died_is_taken_over(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    // The first worker claims with a lease that runs out at once, then "dies".
    let dying = e.queue(fast().lease(Duration::ZERO).max_attempts(2));
    dying
        .enqueue_extraction(
            &Scope::user("carol"),
            vec![ChatMessage::user("Carol sails")],
        )
        .await
        .unwrap();
    let store = e.memory.store().clone().job_store().unwrap();
    let claimed = store
        .claim(chrono::Utc::now(), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.attempt, 1);
    assert_eq!(dying.counts().await.unwrap().running, 1);
    // A restarted worker takes it over.
    let after_restart = e.queue(fast());
    let run = after_restart.run_next(&e.memory).await.unwrap().unwrap();
    assert_eq!(
        (run.id, run.attempt, run.outcome),
        (claimed.id, 2, JobOutcome::Done)
    );

    // A job whose worker dies on every attempt ends dead, not looping.
    dying
        .enqueue_extraction(&Scope::user("carol"), vec![ChatMessage::user("Carol rows")])
        .await
        .unwrap();
    for attempt in 1..=2 {
        let job = store
            .claim(chrono::Utc::now(), Duration::ZERO)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(job.attempt, attempt);
    }
    assert!(
        store
            .claim(chrono::Utc::now(), Duration::ZERO)
            .await
            .unwrap()
            .is_none()
    );
    let c = after_restart.counts().await.unwrap();
    assert_eq!((c.running, c.dead, c.done), (0, 1, 1));
    assert!(!e.job_payload_holds("Carol rows").await);
}

async fn concurrent_workers_run_each_job_once(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let q = e.queue(fast());
    let scope = Scope::user("dave");
    for i in 0..24 {
        q.enqueue_extraction(
            &scope,
            vec![ChatMessage::user(format!("Dave fact number {i}"))],
        )
        .await
        .unwrap();
    }
    // Three workers, each on its own connections (as three processes would be).
    let mut handles = Vec::new();
    for _ in 0..3 {
        let memory = Memory::open(&e.config).await.unwrap();
        let q = JobQueue::for_memory(&memory, fast()).unwrap();
        handles.push(tokio::spawn(async move {
            let mut ran = Vec::new();
            while let Some(run) = q.run_next(&memory).await.unwrap() {
                assert_eq!(run.outcome, JobOutcome::Done);
                ran.push(run.id);
            }
            ran
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let distinct: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(
        (all.len(), distinct.len()),
        (24, 24),
        "each job ran exactly once"
    );
    assert_eq!(e.fake.stats().chat_requests, 24);
    assert_eq!(
        e.memory
            .get_all(&scope, Default::default())
            .await
            .unwrap()
            .len(),
        24
    );
}

async fn a_worker_runs_jobs_until_shut_down(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let q = e.queue(fast().poll_interval(Duration::from_secs(60)));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = q.spawn_worker(e.memory.clone(), async {
        let _ = stopped.await;
    });
    let erin = Scope::user("erin");
    q.enqueue_extraction(&erin, vec![ChatMessage::user("Erin grows chillies")])
        .await
        .unwrap();
    // The local enqueue wakes the worker (the poll interval is a minute).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while q.counts().await.unwrap().done < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker never ran the job"
        );
        tokio::task::yield_now().await;
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("the worker stops on shutdown")
        .unwrap();
    assert_eq!(
        e.memory
            .get_all(&erin, Default::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Waits until `done` jobs are done.
async fn wait_done(q: &JobQueue, done: u64, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    while q.counts().await.unwrap().done < done {
        assert!(
            std::time::Instant::now() < deadline,
            "jobs did not finish in {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn a_worker_runs_users_in_parallel_and_each_users_jobs_one_at_a_time(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    // Every provider request takes 200 ms; an extraction makes three (embed
    // the messages, the chat call, embed the facts): at least 600 ms a job.
    e.fake.set_latency(Duration::from_millis(200));
    let q = e.queue(fast().concurrency(6).poll_interval(Duration::from_secs(60)));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = q.spawn_worker(e.memory.clone(), async {
        let _ = stopped.await;
    });
    let start = std::time::Instant::now();
    for u in 0..6 {
        q.enqueue_extraction(
            &Scope::user(format!("user-{u}")),
            vec![ChatMessage::user(format!("User {u} keeps bees"))],
        )
        .await
        .unwrap();
    }
    wait_done(&q, 6, Duration::from_secs(30)).await;
    let parallel = start.elapsed();
    // One after another would take at least 3.6 s.
    assert!(
        parallel < Duration::from_millis(2500),
        "six users took {parallel:?}"
    );

    let start = std::time::Instant::now();
    let ann = Scope::user("ann");
    for fact in ["Ann keeps bees", "Ann sells honey", "Ann lives in Porto"] {
        q.enqueue_extraction(&ann, vec![ChatMessage::user(fact)])
            .await
            .unwrap();
    }
    wait_done(&q, 9, Duration::from_secs(30)).await;
    let serial = start.elapsed();
    // Three jobs of one user never overlap: at least three jobs' time.
    assert!(
        serial >= Duration::from_millis(1800),
        "one user's jobs took {serial:?}"
    );
    assert_eq!(
        e.memory
            .get_all(&ann, Default::default())
            .await
            .unwrap()
            .len(),
        3
    );
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("the worker stops on shutdown")
        .unwrap();
}

async fn deleting_memories_drops_extractions_not_run_yet(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let q = e.queue(fast());
    let dora = Scope::user("dora");
    let ed = Scope::user("ed");
    q.enqueue_extraction(&dora, vec![ChatMessage::user("Dora plays the oboe")])
        .await
        .unwrap();
    q.enqueue_extraction(
        &Scope::user("dora").with_agent("tutor"),
        vec![ChatMessage::user("Dora practises scales")],
    )
    .await
    .unwrap();
    q.enqueue_extraction(&ed, vec![ChatMessage::user("Ed rows")])
        .await
        .unwrap();
    assert_eq!(q.counts().await.unwrap().queued, 3);
    // Deleting one agent's memories drops only that agent's pending job.
    e.memory
        .delete_all(&Scope::user("dora").with_agent("tutor"))
        .await
        .unwrap();
    assert_eq!(q.counts().await.unwrap().queued, 2);
    // Deleting all of Dora's: her extraction must not bring the oboe back.
    e.memory.delete_all(&dora).await.unwrap();
    while q.run_next(&e.memory).await.unwrap().is_some() {}
    assert!(
        e.memory
            .get_all(&dora, Default::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !e.holds("oboe").await,
        "the deleted user's message survives in a job"
    );
    // Ed's job was untouched and ran.
    assert_eq!(
        e.memory
            .get_all(&ed, Default::default())
            .await
            .unwrap()
            .len(),
        1
    );
    // A reset drops every pending job.
    q.enqueue_extraction(&ed, vec![ChatMessage::user("Ed sails")])
        .await
        .unwrap();
    e.memory.reset().await.unwrap();
    assert_eq!(q.counts().await.unwrap().queued, 0);
}

async fn finished_jobs_are_pruned_and_health_reads_the_backlog(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let q = e.queue(fast().max_attempts(1));
    let scope = Scope::user("pia");
    q.enqueue_extraction(&scope, vec![ChatMessage::user("Pia draws maps")])
        .await
        .unwrap();
    q.run_next(&e.memory).await.unwrap().unwrap();
    e.fake.push_fault(Target::Chat, Fault::ServerError, 1);
    q.enqueue_extraction(&scope, vec![ChatMessage::user("Pia skis")])
        .await
        .unwrap();
    q.run_next(&e.memory).await.unwrap().unwrap();
    q.enqueue_extraction(&scope, vec![ChatMessage::user("Pia sings")])
        .await
        .unwrap();
    let c = q.counts().await.unwrap();
    assert_eq!((c.done, c.dead, c.queued), (1, 1, 1));
    // The backlog leaves the finished jobs unread.
    let b = q.backlog().await.unwrap();
    assert_eq!((b.queued, b.running, b.done, b.dead), (1, 0, 0, 0));
    // Nothing is old enough yet; a week on, both finished jobs are, and
    // the queued one is never pruned.
    assert_eq!(q.prune_finished().await.unwrap(), 0);
    let store = e.memory.store().clone().job_store().unwrap();
    let later = chrono::Utc::now() + chrono::Duration::days(8);
    assert_eq!(store.prune(later, later).await.unwrap(), 2);
    let c = q.counts().await.unwrap();
    assert_eq!((c.done, c.dead, c.queued), (0, 0, 1));
}

async fn only_the_holder_of_the_lease_finishes_a_job(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let q = e.queue(fast());
    q.enqueue_extraction(&Scope::user("fay"), vec![ChatMessage::user("Fay knits")])
        .await
        .unwrap();
    let store = e.memory.store().clone().job_store().unwrap();
    let now = chrono::Utc::now();
    // Worker A claims; its lease runs out (a stalled process) and worker B
    // takes the job over.
    let a = store
        .claim(now, Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    let later = now + chrono::Duration::seconds(2);
    let b = store
        .claim(later, Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((a.id, a.attempt, b.attempt), (b.id, 1, 2));
    assert_ne!(a.lease, b.lease);
    // A comes back: it can neither renew, nor complete, nor fail the job.
    assert!(
        !store
            .renew(a.id, a.lease, later, Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(!store.complete(a.id, a.lease, later).await.unwrap());
    assert!(
        !store
            .fail(a.id, a.lease, "late", None, later)
            .await
            .unwrap()
    );
    assert_eq!(q.counts().await.unwrap().running, 1);
    // B, the holder, completes it: once.
    assert!(
        store
            .renew(b.id, b.lease, later, Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(store.complete(b.id, b.lease, later).await.unwrap());
    assert!(!store.complete(b.id, b.lease, later).await.unwrap());
    let c = q.counts().await.unwrap();
    assert_eq!((c.running, c.done, c.dead, c.queued), (0, 1, 0, 0));
}

async fn a_long_job_keeps_its_lease(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    // Three provider calls of 400 ms: the job outlasts its 600 ms lease.
    e.fake.set_latency(Duration::from_millis(400));
    let lease = Duration::from_millis(600);
    let q = e.queue(fast().lease(lease));
    q.enqueue_extraction(&Scope::user("gus"), vec![ChatMessage::user("Gus paints")])
        .await
        .unwrap();
    let memory = e.memory.clone();
    let runner = q.clone();
    let first = tokio::spawn(async move { runner.run_next(&memory).await.unwrap() });
    // Another worker (its own connections) keeps trying meanwhile.
    let other_memory = Memory::open(&e.config).await.unwrap();
    let other = JobQueue::for_memory(&other_memory, fast().lease(lease)).unwrap();
    while !first.is_finished() {
        let run = other.run_next(&other_memory).await.unwrap();
        assert!(run.is_none(), "a running job was taken over: {run:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run = first.await.unwrap().unwrap();
    assert_eq!(run.outcome, JobOutcome::Done);
    assert_eq!(e.fake.stats().chat_requests, 1, "the extraction ran once");
    assert_eq!(q.counts().await.unwrap().done, 1);
}

async fn a_users_backlog_holds_one_worker_at_most(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let q = e.queue(
        fast()
            .concurrency(2)
            .poll_interval(Duration::from_millis(50)),
    );
    let hoarder = Scope::user("hoarder");
    for i in 0..500 {
        q.enqueue_extraction(&hoarder, vec![ChatMessage::user(format!("Fact {i}"))])
            .await
            .unwrap();
    }
    q.enqueue_extraction(&Scope::user("ivy"), vec![ChatMessage::user("Ivy hikes")])
        .await
        .unwrap();
    e.fake.set_latency(Duration::from_millis(100));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = q.spawn_worker(e.memory.clone(), async {
        let _ = stopped.await;
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while q.user_counts("ivy").await.unwrap().done < 1 {
        assert!(std::time::Instant::now() < deadline, "Ivy's job never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Ivy's job ran beside the backlog's first, not after 500 of them.
    let hoarded = q.user_counts("hoarder").await.unwrap().done;
    assert!(
        hoarded <= 2,
        "{hoarded} of the backlog ran before Ivy's job"
    );
    stop.send(()).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(10), worker).await;
}

/// A job claimed before a delete-all writes nothing after it, even when it
/// waits for the user's turn meanwhile: job A runs slowly; "forget
/// everything" deletes it mid-run; job B, queued next, is claimed and waits
/// behind A; a second delete-all comes while B waits. B's memories must not
/// appear (its deletions are fixed when it is claimed, not when its turn
/// comes).
async fn a_job_waiting_for_its_turn_loses_to_a_delete_all(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let q = e.queue(fast());
    let kit = Scope::user("kit");
    e.fake.set_latency(Duration::from_millis(500));
    q.enqueue_extraction(&kit, vec![ChatMessage::user("Kit rows boats")])
        .await
        .unwrap();
    let (memory, runner) = (e.memory.clone(), q.clone());
    let a = tokio::spawn(async move { runner.run_next(&memory).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(200)).await;
    e.memory.delete_all(&kit).await.unwrap();
    q.enqueue_extraction(&kit, vec![ChatMessage::user("Kit's locker code is 4711")])
        .await
        .unwrap();
    let (memory, runner) = (e.memory.clone(), q.clone());
    let b = tokio::spawn(async move { runner.run_next(&memory).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !a.is_finished(),
        "job A ended before the test could race it"
    );
    e.memory.delete_all(&kit).await.unwrap();
    // Both jobs were deleted under their workers: neither is recorded.
    for run in [a.await.unwrap(), b.await.unwrap()] {
        let run = run.expect("a job was claimed");
        assert_eq!(run.outcome, JobOutcome::LeaseLost, "{run:?}");
    }
    e.fake.set_latency(Duration::ZERO);
    while q.run_next(&e.memory).await.unwrap().is_some() {}
    let left = e.memory.get_all(&kit, Default::default()).await.unwrap();
    assert!(
        left.is_empty(),
        "memories written after the delete-all: {left:?}"
    );
}

conformance!(
    finished_jobs_are_pruned_and_health_reads_the_backlog,
    only_the_holder_of_the_lease_finishes_a_job,
    a_long_job_keeps_its_lease,
    a_users_backlog_holds_one_worker_at_most,
    a_job_waiting_for_its_turn_loses_to_a_delete_all,
    deleting_memories_drops_extractions_not_run_yet,
    a_worker_runs_users_in_parallel_and_each_users_jobs_one_at_a_time,
    extraction_runs_after_the_fact_and_keeps_no_payload,
    failures_retry_with_backoff_then_die,
    a_job_whose_worker_died_is_taken_over,
    concurrent_workers_run_each_job_once,
    a_worker_runs_jobs_until_shut_down,
);
