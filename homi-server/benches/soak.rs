//! Soak: mixed load over real HTTP against real `homi-server` processes,
//! with a provider in trouble and a server killed in the middle; then the
//! promises are checked in the database.
//!
//! - users sign up, then for the whole run chat, search, list a page of
//!   their memories, export them all (page after page), delete one, delete
//!   all, sign in again and read their profile;
//! - the fake provider fails every 20th request (5 %) and stalls every 100th
//!   after its headers (1 %);
//! - halfway, the first server process is killed (SIGKILL) and restarted;
//! - at the end, once the extraction queue has drained: every message that
//!   was answered is stored exactly once (and none twice), every job is done
//!   or dead with a reason (a job gets two attempts, so some die), no memory
//!   a user saw deleted has come back and none holds a message sent before
//!   the user's last delete-all, no response ever carried another user's
//!   text, and the servers' memory (RSS) is reported, and checked flat on
//!   full runs (before the kill, and after the restart).
//!
//! SQLite runs one server process; Postgres (started by `scripts/pg.sh`) two
//! on one database, the users' requests spread over both.
//!
//! `cargo bench -p homi-server --bench soak` (10 minutes, 50 users, per
//! store; `HOMI_SOAK_SECS`, `HOMI_SOAK_USERS`, `HOMI_SOAK_STORES=sqlite,postgres`);
//! `cargo test -p homi-server --bench soak` is CI's smoke run (20 s, 6 users).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::{HashMap, HashSet};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use homi_testkit::db::{self, Backend};
use homi_testkit::{FakeProvider, process};
use serde_json::{Value, json};

/// One server process, restartable on its port.
struct Server {
    port: u16,
    child: Child,
}

fn spawn(url: &str, fake: &FakeProvider, port: u16, log: &std::path::Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    process::server_command(env!("CARGO_BIN_EXE_homi-server"), url, fake, port)
        .env("HOMI_AUTH_RATE_LIMIT", "0")
        .env("HOMI_PROVIDER_TIMEOUT_SECS", "3")
        .env("HOMI_PROVIDER_DEADLINE_SECS", "3")
        .env("HOMI_PROVIDER_STREAM_IDLE_SECS", "3")
        .env("HOMI_PROVIDER_MAX_RETRIES", "1")
        .env("HOMI_JOB_MAX_ATTEMPTS", "2")
        .env("RUST_LOG", "warn")
        .stderr(log)
        .spawn()
        .unwrap()
}

async fn wait_healthy(port: u16) {
    assert!(
        process::wait_healthy(port, Duration::from_secs(60)).await,
        "a server did not start"
    );
}

/// A process's resident memory, in MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// What one user did and saw.
#[derive(Default)]
struct Seen {
    /// Each message sent, and whether any HTTP answer came back for it.
    messages: Vec<(String, bool)>,
    /// Texts of memories the user saw deleted.
    deleted: Vec<String>,
    /// The number of the user's last request that deleted all their
    /// memories: no memory may hold a message numbered below it.
    forgot_at: usize,
    /// Responses that carried another user's tag.
    violations: Vec<String>,
    /// Answers by status (0: no answer: the connection failed).
    statuses: HashMap<u16, u64>,
}

fn tag(user: usize) -> String {
    format!("zq{user:03}q")
}

/// Checks a response body for other users' tags.
fn check_isolation(seen: &mut Seen, user: usize, users: usize, body: &str) {
    if !body.contains("zq") {
        return;
    }
    for other in (0..users).filter(|&o| o != user) {
        if body.contains(&tag(other)) {
            seen.violations
                .push(format!("user {user} saw {}: {body:.200}", tag(other)));
        }
    }
}

/// Sends a request; the status (0 without an answer) and the body.
async fn send(seen: &mut Seen, req: reqwest::RequestBuilder) -> (u16, Value, String) {
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            *seen.statuses.entry(status).or_default() += 1;
            let json = serde_json::from_str(&text).unwrap_or(Value::Null);
            (status, json, text)
        }
        Err(_) => {
            *seen.statuses.entry(0).or_default() += 1;
            // The server is down (killed, restarting): do not spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            (0, Value::Null, String::new())
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn user_load(
    user: usize,
    users: usize,
    ports: Arc<Vec<u16>>,
    email: String,
    mut token: String,
    until: Instant,
) -> Seen {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut seen = Seen::default();
    let mut listed: Vec<(String, String)> = Vec::new();
    let mut n = 0usize;
    while Instant::now() < until {
        n += 1;
        let base = format!("http://127.0.0.1:{}", ports[(user + n) % ports.len()]);
        match n % 20 {
            0..=9 => {
                let message = format!("{} note {n}: I keep {n} bees on roof {user}", tag(user));
                let (status, _, body) = send(
                    &mut seen,
                    http.post(format!("{base}/api/v1/chat"))
                        .bearer_auth(&token)
                        .json(&json!({"message": message})),
                )
                .await;
                check_isolation(&mut seen, user, users, &body);
                seen.messages.push((message, status != 0));
            }
            10..=12 => {
                let (_, _, body) = send(
                    &mut seen,
                    http.post(format!("{base}/api/v1/memories/search"))
                        .bearer_auth(&token)
                        .json(&json!({"query": "bees on the roof", "limit": 10})),
                )
                .await;
                check_isolation(&mut seen, user, users, &body);
            }
            13..=14 => {
                // 13: the first page; 14: an export, every page in turn.
                let mut pages = Vec::new();
                let mut cursor: Option<String> = None;
                let complete = loop {
                    let mut url = format!("{base}/api/v1/memories?limit=100");
                    if let Some(c) = &cursor {
                        url.push_str(&format!("&cursor={c}"));
                    }
                    let (status, json, body) =
                        send(&mut seen, http.get(url).bearer_auth(&token)).await;
                    check_isolation(&mut seen, user, users, &body);
                    if status != 200 {
                        break false;
                    }
                    pages.extend(json["results"].as_array().into_iter().flatten().filter_map(
                        |m| {
                            Some((
                                m["id"].as_str()?.to_owned(),
                                m["memory"].as_str()?.to_owned(),
                            ))
                        },
                    ));
                    cursor = json["next_cursor"].as_str().map(str::to_owned);
                    if n % 20 == 13 || cursor.is_none() || pages.len() >= 5_000 {
                        break true;
                    }
                };
                if complete {
                    listed = pages;
                }
            }
            15..=16 => {
                if let Some((id, text)) = listed.pop() {
                    let (status, _, _) = send(
                        &mut seen,
                        http.delete(format!("{base}/api/v1/memories/{id}"))
                            .bearer_auth(&token),
                    )
                    .await;
                    if status == 200 {
                        seen.deleted.push(text);
                    }
                }
            }
            17 => {
                // Forget everything: what was listed just before is gone.
                let (status, _, _) = send(
                    &mut seen,
                    http.delete(format!("{base}/api/v1/memories"))
                        .bearer_auth(&token),
                )
                .await;
                if status == 200 {
                    seen.deleted.extend(listed.drain(..).map(|(_, t)| t));
                    seen.forgot_at = n;
                }
            }
            18 => {
                let (status, json, _) = send(
                    &mut seen,
                    http.post(format!("{base}/api/v1/auth/signin"))
                        .json(&json!({"email": email, "password": "soak test password"})),
                )
                .await;
                if status == 200
                    && let Some(t) = json["access_token"].as_str()
                {
                    token = t.to_owned();
                }
            }
            _ => {
                let (_, _, body) = send(
                    &mut seen,
                    http.get(format!("{base}/api/v1/auth/me"))
                        .bearer_auth(&token),
                )
                .await;
                check_isolation(&mut seen, user, users, &body);
            }
        }
    }
    seen
}

async fn soak(backend: Backend, secs: u64, users: usize, full: bool) {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = db::database_url(backend, dir.path()).await else {
        println!("soak {backend:?}: skipped (no database)");
        return;
    };
    let fake = FakeProvider::start().await.unwrap();
    let processes = if backend == Backend::Postgres { 2 } else { 1 };
    let log = dir.path().join("servers.log");
    let http = reqwest::Client::new();
    let mut servers: Vec<Server> = Vec::new();
    for _ in 0..processes {
        let port = process::free_port().unwrap();
        let child = spawn(&url, &fake, port, &log);
        wait_healthy(port).await;
        servers.push(Server { port, child });
    }
    let ports = Arc::new(servers.iter().map(|s| s.port).collect::<Vec<_>>());

    // Sign everyone up (the provider behaves meanwhile), then let trouble in.
    let mut tokens = Vec::new();
    for u in 0..users {
        let email = format!("soak{u}@example.com");
        let up: Value = http
            .post(format!("http://127.0.0.1:{}/api/v1/auth/signup", ports[0]))
            .json(&json!({"email": email, "password": "soak test password"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tokens.push((email, up["access_token"].as_str().unwrap().to_owned()));
    }
    fake.set_chaos(20, 100);

    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let tasks: Vec<_> = tokens
        .into_iter()
        .enumerate()
        .map(|(u, (email, token))| {
            tokio::spawn(user_load(u, users, ports.clone(), email, token, until))
        })
        .collect();

    // Memory samples every 2 s; the kill and restart halfway.
    let mut rss: Vec<f64> = Vec::new();
    let mut killed = false;
    let mut killed_at = 0;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let total: f64 = servers.iter().filter_map(|s| rss_mib(s.child.id())).sum();
        rss.push(total);
        if !killed && started.elapsed() >= Duration::from_secs(secs / 2) {
            killed = true;
            killed_at = rss.len();
            let s = &mut servers[0];
            s.child.kill().unwrap();
            s.child.wait().unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            s.child = spawn(&url, &fake, s.port, &log);
            wait_healthy(s.port).await;
        }
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    fake.set_chaos(0, 0);

    // The queue drains: retries, and the jobs of turns the kill cut short.
    let drain = Instant::now();
    let active = loop {
        let n = db::number(
            &url,
            "SELECT count(*) FROM homi_jobs WHERE state IN ('queued', 'running')",
        )
        .await;
        if n == 0 || drain.elapsed() > Duration::from_secs(180) {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let drained_in = drain.elapsed();

    // Every answered message once, none twice.
    let stored = db::texts(
        &url,
        "SELECT content FROM homi_conversation_messages WHERE role = 'user'",
    )
    .await;
    let mut count: HashMap<&str, usize> = HashMap::new();
    for c in &stored {
        *count.entry(c.as_str()).or_default() += 1;
    }
    let (mut sent, mut answered, mut lost, mut twice) = (0, 0, Vec::new(), Vec::new());
    for s in &seen {
        for (m, got_answer) in &s.messages {
            sent += 1;
            let n = count.get(m.as_str()).copied().unwrap_or(0);
            if *got_answer {
                answered += 1;
                if n == 0 {
                    lost.push(m.clone());
                }
            }
            if n > 1 {
                twice.push(m.clone());
            }
        }
    }
    let dead_without_reason = db::number(
        &url,
        "SELECT count(*) FROM homi_jobs WHERE state = 'dead' AND (last_error IS NULL OR last_error = '')",
    )
    .await;
    let done = db::number(&url, "SELECT count(*) FROM homi_jobs WHERE state = 'done'").await;
    let dead = db::number(&url, "SELECT count(*) FROM homi_jobs WHERE state = 'dead'").await;
    let memories: HashSet<String> = db::texts(&url, "SELECT memory FROM homi_memories")
        .await
        .into_iter()
        .collect();
    let mut came_back: Vec<&String> = seen
        .iter()
        .flat_map(|s| &s.deleted)
        .filter(|t| memories.contains(*t))
        .collect();
    // The fake provider extracts each user message as it is: a memory
    // "zqUUUq note N: …" comes from user UUU's request N, which no memory
    // may outlive once a later delete-all was answered.
    came_back.extend(memories.iter().filter(|m| {
        let numbered = || -> Option<(usize, usize)> {
            let user = m.strip_prefix("zq")?.get(..3)?.parse().ok()?;
            let (_, rest) = m.split_once(" note ")?;
            Some((user, rest.split(':').next()?.parse().ok()?))
        };
        numbered().is_some_and(|(user, n)| seen.get(user).is_some_and(|s| n < s.forgot_at))
    }));
    came_back.sort();
    came_back.dedup();
    let deleted: usize = seen.iter().map(|s| s.deleted.len()).sum();
    let violations: Vec<&String> = seen.iter().flat_map(|s| &s.violations).collect();
    let mut statuses: HashMap<u16, u64> = HashMap::new();
    for s in &seen {
        for (k, v) in &s.statuses {
            *statuses.entry(*k).or_default() += v;
        }
    }
    let requests: u64 = statuses.values().sum();
    let mut by_status: Vec<_> = statuses.into_iter().collect();
    by_status.sort();

    // Memory, before the kill and after the restart apart (a fresh process
    // starts small): each run's second quarter (warmed up) against its last.
    let mean = |part: &[f64]| part.iter().sum::<f64>() / part.len().max(1) as f64;
    let trend = |run: &[f64]| -> (f64, f64) {
        let n = (run.len() / 4).max(1);
        let warm = run.get(n..2 * n).unwrap_or(run);
        (mean(warm), mean(&run[run.len().saturating_sub(n)..]))
    };
    let (before, after) = rss.split_at(killed_at.min(rss.len()));
    let ((warm, last), (warm2, last2)) = (trend(before), trend(after));
    let flat = last <= warm * 1.25 + 16.0 && last2 <= warm2 * 1.25 + 16.0;

    println!(
        "soak {backend:?}: {processes} process(es), {users} users, {secs} s: {requests} requests \
         ({:.0}/s), statuses {by_status:?}; {sent} messages ({answered} answered, {} lost, {} stored twice); \
         jobs {done} done, {dead} dead ({dead_without_reason} without a reason), {active} still active, \
         drained in {:.1} s; {deleted} deletions seen, {} came back; {} isolation violations; \
         RSS {warm:.0} → {last:.0} MiB before the kill, {warm2:.0} → {last2:.0} MiB after \
         (2nd quarter → last quarter of each), {}",
        requests as f64 / secs as f64,
        lost.len(),
        twice.len(),
        drained_in.as_secs_f64(),
        came_back.len(),
        violations.len(),
        if flat { "flat" } else { "GROWING" },
    );
    for s in &mut servers {
        let _ = s.child.kill();
        let _ = s.child.wait();
    }
    assert!(
        lost.is_empty(),
        "answered messages not stored: {:?}",
        &lost[..lost.len().min(5)]
    );
    assert!(
        twice.is_empty(),
        "messages stored twice: {:?}",
        &twice[..twice.len().min(5)]
    );
    assert_eq!(active, 0, "jobs still queued or running after the drain");
    assert_eq!(dead_without_reason, 0, "dead jobs without a reason");
    assert!(
        came_back.is_empty(),
        "deleted memories came back: {came_back:?}"
    );
    assert!(violations.is_empty(), "isolation: {violations:?}");
    if full {
        assert!(flat, "the servers' memory grew: {rss:?}");
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let secs: u64 = std::env::var("HOMI_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 600 } else { 20 });
    let users: usize = std::env::var("HOMI_SOAK_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 50 } else { 6 });
    let stores = std::env::var("HOMI_SOAK_STORES").unwrap_or_else(|_| "sqlite,postgres".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for store in stores.split(',').map(str::trim) {
            let backend = match store {
                "sqlite" => Backend::Sqlite,
                "postgres" => Backend::Postgres,
                other => panic!("HOMI_SOAK_STORES: '{other}' is not sqlite or postgres"),
            };
            soak(backend, secs, users, full).await;
        }
    });
}
