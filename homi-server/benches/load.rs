//! Load on the REST server over real HTTP on 127.0.0.1 (server, load
//! generator and the fake provider share the machine's cores):
//! - authenticated memory search with 10,000 memories for the user: requests
//!   per second at 32 connections, errors, latency;
//! - chat turns at 50 concurrent connections with a zero-latency provider
//!   (the server's own time: search embedding, prompt, reply, storing the turn
//!   and its job);
//! - chat turns with the provider answering every request after 300 ms.
//!
//! `cargo bench -p homi-server --bench load` (60 s per phase; HOMI_LOAD_SECS
//! to change it); `cargo test -p homi-server --bench load` is CI's smoke run.
//! `HOMI_LOAD_EMBEDDER=local` embeds with the local model (found as the
//! server finds it, e.g. `HOMI_EMBEDDING_MODEL_DIR`) instead of the fake
//! provider, which then only answers chat requests.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use homi_core::provider::ChatMessage;
use homi_core::{AddOptions, Config, Scope};
use homi_server::{AppState, app};
use homi_testkit::FakeProvider;
use serde_json::{Value, json};

/// The server binary's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

struct Phase {
    ok: usize,
    errors: usize,
    latencies: Vec<Duration>,
    /// The server's own time per request (the provider's excluded).
    own: Vec<Duration>,
    /// The provider's time per request (with the local embedder, the
    /// query's embedding is counted here).
    provider: Vec<Duration>,
    elapsed: Duration,
}

/// `connections` tasks send requests made by `make` for `secs` seconds.
async fn run(
    base: &str,
    token: &str,
    connections: usize,
    duration: Duration,
    path: &'static str,
    make: fn(usize) -> Value,
) -> Phase {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let url = format!("{base}{path}");
        let token = token.to_owned();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .tcp_nodelay(true)
                .build()
                .unwrap();
            let (mut ok, mut errors, mut lat, mut own, mut provider) =
                (0usize, 0usize, Vec::new(), Vec::new(), Vec::new());
            let mut i = c * 1_000_000;
            while start.elapsed() < duration {
                let t = Instant::now();
                let r = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&make(i))
                    .send()
                    .await;
                match r {
                    Ok(resp) if resp.status().is_success() => {
                        if let Some((t, p)) = own_time(resp.headers()) {
                            own.push(t);
                            provider.push(p);
                        }
                        let _ = resp.bytes().await;
                        ok += 1;
                        lat.push(t.elapsed());
                    }
                    _ => errors += 1,
                }
                i += 1;
            }
            (ok, errors, lat, own, provider)
        }));
    }
    let mut phase = Phase {
        ok: 0,
        errors: 0,
        latencies: Vec::new(),
        own: Vec::new(),
        provider: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        let (ok, errors, lat, own, provider) = t.await.unwrap();
        phase.ok += ok;
        phase.errors += errors;
        phase.latencies.extend(lat);
        phase.own.extend(own);
        phase.provider.extend(provider);
    }
    phase.elapsed = start.elapsed();
    phase.latencies.sort();
    phase.own.sort();
    phase.provider.sort();
    phase
}

/// The server's own time from its `Server-Timing` header (the total less the
/// time it waited for the provider), and the provider's.
fn own_time(headers: &reqwest::header::HeaderMap) -> Option<(Duration, Duration)> {
    let value = headers.get("server-timing")?.to_str().ok()?;
    let mut total = None;
    let mut provider = None;
    for metric in value.split(',') {
        let (name, dur) = metric.trim().split_once(";dur=")?;
        let ms: f64 = dur.parse().ok()?;
        match name {
            "total" => total = Some(ms),
            "provider" => provider = Some(ms),
            _ => {}
        }
    }
    let (total, provider) = (total?, provider?);
    Some((
        Duration::from_secs_f64(((total - provider) / 1000.0).max(0.0)),
        Duration::from_secs_f64((provider / 1000.0).max(0.0)),
    ))
}

/// Runs `wrk` (a separate, lighter load generator: C and epoll) against
/// `path` with a search body varied per request; `None` when wrk is missing.
fn run_wrk(
    base: &str,
    token: &str,
    connections: usize,
    duration: Duration,
    path: &str,
) -> Option<String> {
    let dir = tempfile::tempdir().ok()?;
    let script = dir.path().join("search.lua");
    std::fs::write(
        &script,
        format!(
            r#"wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
local i = 0
request = function()
  i = i + 1
  return wrk.format(nil, nil, nil, '{{"query": "what about topic ' .. (i % 97) .. '", "limit": 5}}')
end
"#
        ),
    )
    .ok()?;
    let out = std::process::Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{}s", duration.as_secs()),
        ])
        .args(["--latency", "-s"])
        .arg(&script)
        .arg(format!("{base}{path}"))
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn report(name: &str, connections: usize, p: &Phase) {
    println!(
        "load/{name}: {connections} connections, {:.0} requests/s, {} ok, {} errors, p50 {:.2} ms, p99 {:.2} ms over {:.0} s",
        p.ok as f64 / p.elapsed.as_secs_f64(),
        p.ok,
        p.errors,
        percentile(&p.latencies, 0.5),
        percentile(&p.latencies, 0.99),
        p.elapsed.as_secs_f64(),
    );
    if !p.own.is_empty() {
        println!(
            "load/{name}: server time without the provider's: p50 {:.2} ms, p99 {:.2} ms; \
             the provider's: p50 {:.2} ms, p99 {:.2} ms",
            percentile(&p.own, 0.5),
            percentile(&p.own, 0.99),
            percentile(&p.provider, 0.5),
            percentile(&p.provider, 0.99),
        );
    }
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let secs: u64 = std::env::var("HOMI_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if smoke { 1 } else { 60 });
    let memories: usize = if smoke { 500 } else { 10_000 };
    // HOMI_LOAD_PHASES=search,chat,slow (default: all) runs a subset, e.g.
    // to profile one phase alone.
    let phases = std::env::var("HOMI_LOAD_PHASES").unwrap_or_else(|_| "search,chat,slow".into());
    let phase = move |name: &str| phases.split(',').any(|p| p.trim() == name);
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let fake = Arc::new(FakeProvider::start().await.unwrap());
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default()
            .with_database_url(format!("sqlite://{}", dir.path().join("load.db").display()))
            .with_openai_base_url(fake.base_url())
            .with_openai_api_key("sk-load");
        config.server.auth_rate_limit_per_minute = 0;
        if std::env::var("HOMI_LOAD_EMBEDDER").as_deref() == Ok("local") {
            config = config.with_local_embedder(
                std::env::var_os("HOMI_EMBEDDING_MODEL_DIR").map(std::path::PathBuf::from),
            );
        }
        let state = AppState::open(&config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = app(state.clone());
        tokio::spawn(homi_server::serve::serve_on(
            listener,
            router,
            homi_server::serve::Limits::from_config(&config),
            std::future::pending(),
        ));
        let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
        state
            .chat
            .queue()
            .spawn_worker(state.memory.clone(), async {
                let _ = stopped.await;
            });
        let http = reqwest::Client::new();
        let up: Value = http
            .post(format!("{base}/api/v1/auth/signup"))
            .json(&json!({"email": "load@example.com", "password": "load test password"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = up["access_token"].as_str().unwrap().to_owned();
        let user = up["user"]["id"].as_str().unwrap().to_owned();

        // The user's memories, written directly (1,000 per call).
        let scope = Scope::user(&user);
        for b in 0..memories.div_ceil(1000) {
            let n = (memories - b * 1000).min(1000);
            let batch: Vec<ChatMessage> = (0..n)
                .map(|i| {
                    ChatMessage::user(format!(
                        "memory {} about topic {}",
                        b * 1000 + i,
                        (b * 1000 + i) % 97
                    ))
                })
                .collect();
            state
                .memory
                .add(batch, &scope, AddOptions::raw())
                .await
                .unwrap();
        }
        let duration = Duration::from_secs(secs);

        // Warm the search path (the store's vector cache loads on first use).
        let _ = run(
            &base,
            &token,
            1,
            Duration::from_millis(200),
            "/api/v1/memories/search",
            |i| json!({"query": format!("topic {}", i % 97), "limit": 5}),
        )
        .await;
        if phase("search") {
            // The full run uses wrk when it is installed (Debian: `apt-get
            // install wrk`): a load generator that costs the machine far less.
            let wrk = if smoke || std::env::var_os("HOMI_LOAD_NO_WRK").is_some() {
                None
            } else {
                let (base, token) = (base.clone(), token.clone());
                tokio::task::spawn_blocking(move || {
                    run_wrk(&base, &token, 32, duration, "/api/v1/memories/search")
                })
                .await
                .unwrap()
            };
            match wrk {
                Some(out) => {
                    println!("load/search ({memories} memories), wrk, 32 connections:\n{out}");
                    assert!(!out.contains("Non-2xx"), "search had errors");
                    assert!(!out.contains("Socket errors"), "search had socket errors");
                }
                None => {
                    let search = run(
                        &base,
                        &token,
                        32,
                        duration,
                        "/api/v1/memories/search",
                        |i| json!({"query": format!("what about topic {}", i % 97), "limit": 5}),
                    )
                    .await;
                    report(&format!("search ({memories} memories)"), 32, &search);
                    assert_eq!(search.errors, 0, "search had errors");
                }
            }
        }
        if phase("chat") {
            let chat = run(
                &base,
                &token,
                50,
                duration,
                "/api/v1/chat",
                |i| json!({"message": format!("Message number {i} about topic {}", i % 97)}),
            )
            .await;
            report("chat (zero-latency provider)", 50, &chat);
            assert_eq!(chat.errors, 0, "chat had errors");
        }
        if phase("slow") {
            fake.set_latency(Duration::from_millis(300));
            let conns: usize = std::env::var("HOMI_LOAD_CHAT_CONNECTIONS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(50);
            let slow = run(
                &base,
                &token,
                conns,
                duration.max(Duration::from_secs(2)),
                "/api/v1/chat",
                |i| json!({"message": format!("Slow message {i}")}),
            )
            .await;
            report("chat (provider answers after 300 ms)", conns, &slow);
            assert_eq!(slow.errors, 0, "slow chat had errors");
        }
        println!(
            "load/jobs after the run: {:?}",
            state.chat.queue().counts().await.unwrap()
        );
    });
}
