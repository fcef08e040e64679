//! What the MCP door adds to a core call, in the server's own time: the same
//! call made on `Memory` directly and as a `tools/call` POSTed to `/mcp`
//! through the whole router (authentication, the rmcp service, JSON-RPC, the
//! tool's rendering), alternately, in one process (no network: the
//! difference is the door's), for a user with N memories:
//! - `list_memories` (10) against `Memory::list_page`;
//! - `search_memories` in keyword mode (no provider call) against
//!   `Memory::search`.
//!
//! `cargo bench -p homi-server --bench mcp` (1,000 memories, 2,000 calls
//! each); `cargo test -p homi-server --bench mcp` is CI's smoke run. Prints
//! one JSON object.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use homi_core::{AddOptions, Config, ListOptions, Scope, SearchMode, SearchOptions};
use homi_server::{AppState, app};
use homi_testkit::FakeProvider;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// The server binary's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn ms(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn summary(mut core: Vec<Duration>, mut door: Vec<Duration>) -> Value {
    core.sort();
    door.sort();
    json!({
        "core_p50_ms": ms(&core, 0.5), "core_p95_ms": ms(&core, 0.95),
        "mcp_p50_ms": ms(&door, 0.5), "mcp_p95_ms": ms(&door, 0.95),
        "added_p50_ms": ms(&door, 0.5) - ms(&core, 0.5),
        "calls": core.len(),
    })
}

/// One JSON-RPC `tools/call` through the router; its structured content.
async fn call(router: &axum::Router, token: &str, tool: &str, arguments: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": tool, "arguments": arguments}});
    let request = Request::post("/mcp")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("host", "localhost")
        .header("mcp-protocol-version", "2025-06-18")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        status.is_success(),
        "{status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    let result = &answer["result"];
    assert_eq!(result["isError"], false, "{answer}");
    result["structuredContent"].clone()
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (memories, calls) = if smoke { (100, 50) } else { (1_000, 2_000) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let fake = FakeProvider::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default()
            .with_database_url(format!("sqlite://{}", dir.path().join("mcp.db").display()))
            .with_openai_base_url(fake.base_url())
            .with_openai_api_key("sk-bench");
        config.server.auth_rate_limit_per_minute = 0;
        let state = AppState::open(&config).await.unwrap();
        let router = app(state.clone());
        let signup = Request::post("/api/v1/auth/signup")
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"email": "bench@example.com", "password": "mcp bench password"}).to_string(),
            ))
            .unwrap();
        let response = router.clone().oneshot(signup).await.unwrap();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let up: Value = serde_json::from_slice(&bytes).unwrap();
        let token = up["access_token"].as_str().unwrap().to_owned();
        let scope = Scope::user(up["user"]["id"].as_str().unwrap());
        const WORDS: [&str; 8] = ["tea", "hiking", "lisbon", "jazz", "rust", "cats", "pizza", "yoga"];
        for chunk in (0..memories).collect::<Vec<_>>().chunks(100) {
            let said: Vec<Value> = chunk
                .iter()
                .map(|i| json!({"role": "user", "content": format!("note {i} about {} and {}", WORDS[i % 8], WORDS[(i / 8) % 8])}))
                .collect();
            let messages = homi_core::Messages::from_json(&Value::Array(said)).unwrap();
            state.memory.add(messages, &scope, AddOptions::raw()).await.unwrap();
        }

        let list = || ListOptions::default().limit(10);
        let search = || SearchOptions::default().limit(10).mode(SearchMode::Keyword);
        // Warm both paths (caches, connections) before measuring.
        for _ in 0..10 {
            state.memory.list_page(&scope, list(), None).await.unwrap();
            call(&router, &token, "list_memories", json!({"limit": 10})).await;
        }
        let (mut core, mut door) = (Vec::new(), Vec::new());
        for _ in 0..calls {
            let t = Instant::now();
            let page = state.memory.list_page(&scope, list(), None).await.unwrap();
            core.push(t.elapsed());
            let t = Instant::now();
            let answer = call(&router, &token, "list_memories", json!({"limit": 10})).await;
            door.push(t.elapsed());
            assert_eq!(answer["results"].as_array().unwrap().len(), page.results.len());
        }
        let listed = summary(core, door);
        let (mut core, mut door) = (Vec::new(), Vec::new());
        for i in 0..calls {
            let query = format!("{} and {}", WORDS[i % 8], WORDS[(i / 3) % 8]);
            let t = Instant::now();
            let found = state.memory.search(&query, &scope, search()).await.unwrap();
            core.push(t.elapsed());
            let t = Instant::now();
            let answer = call(
                &router,
                &token,
                "search_memories",
                json!({"query": query, "top_k": 10, "mode": "keyword"}),
            )
            .await;
            door.push(t.elapsed());
            assert_eq!(answer["results"].as_array().unwrap().len(), found.results.len());
        }
        let searched = summary(core, door);
        println!(
            "{}",
            json!({"memories": memories, "list_memories": listed, "search_memories_keyword": searched})
        );
    });
}
