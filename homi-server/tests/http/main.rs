//! The REST server over real HTTP on 127.0.0.1, against the fake provider:
//! the original backend's walkthrough, every error answered as JSON with the
//! right status (never a 5xx for a client's mistake), isolation between users,
//! and provider failures that lose nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use homi_core::Config;
use homi_server::{AppState, app};
use homi_testkit::{FakeProvider, Fault, Target};
use reqwest::StatusCode;
use serde_json::{Value, json};

use homi_testkit::conformance;
use homi_testkit::db::{self as common, Backend};

mod accounts;
mod budgets;
mod clients;
mod connections;
mod crash;
mod keys;
mod mem0_rest;
mod stalls;

struct Server {
    backend: Backend,
    database_url: String,
    base: String,
    state: AppState,
    http: reqwest::Client,
    _fake: Option<FakeProvider>,
    _dir: tempfile::TempDir,
}

async fn start(backend: Backend, with_provider: bool) -> Option<(Server, Option<FakeProvider>)> {
    start_with(backend, with_provider, |_| {}).await
}

async fn start_with(
    backend: Backend,
    with_provider: bool,
    tweak: impl FnOnce(&mut AppState),
) -> Option<(Server, Option<FakeProvider>)> {
    launch(backend, with_provider, |_| {}, tweak).await
}

async fn start_configured(
    backend: Backend,
    with_provider: bool,
    configure: impl FnOnce(&mut Config),
) -> Option<(Server, Option<FakeProvider>)> {
    launch(backend, with_provider, configure, |_| {}).await
}

async fn launch(
    backend: Backend,
    with_provider: bool,
    configure: impl FnOnce(&mut Config),
    tweak: impl FnOnce(&mut AppState),
) -> Option<(Server, Option<FakeProvider>)> {
    let dir = tempfile::tempdir().unwrap();
    let url = common::database_url(backend, dir.path()).await?;
    let mut config = Config::default().with_database_url(url.clone());
    let fake = if with_provider {
        let fake = FakeProvider::start().await.unwrap();
        config = config
            .with_openai_base_url(fake.base_url())
            .with_openai_api_key("sk-test")
            .with_embedding_model("text-embedding-3-small", Some(64))
            .with_provider_timeout(Duration::from_secs(2))
            .with_provider_max_retries(0);
        Some(fake)
    } else {
        None
    };
    configure(&mut config);
    let mut state = AppState::open(&config).await.unwrap();
    tweak(&mut state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = app(state.clone());
    let limits = homi_server::serve::Limits::from_config(&config);
    tokio::spawn(homi_server::serve::serve_on(
        listener,
        router,
        limits,
        std::future::pending(),
    ));
    let server = Server {
        backend,
        database_url: url,
        base,
        state,
        http: reqwest::Client::new(),
        _fake: None,
        _dir: dir,
    };
    Some((server, fake))
}

impl Server {
    /// Whether any byte of the store (files or rows) holds `needle`.
    async fn holds(&self, needle: &str) -> bool {
        match self.backend {
            Backend::Sqlite => {
                common::sqlite_files_hold(&self._dir.path().join("homi.db"), needle).await
            }
            Backend::Postgres => common::postgres_holds(&self.database_url, needle).await,
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, token, None).await
    }

    async fn put(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::PUT, path, token, Some(body))
            .await
    }

    async fn delete(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.send(reqwest::Method::DELETE, path, token, None).await
    }

    async fn signup(&self, email: &str) -> String {
        let (status, body) = self
            .post(
                "/api/v1/auth/signup",
                None,
                json!({"email": email, "password": "correct horse battery", "full_name": "Test User"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn run_jobs(&self) {
        while self
            .state
            .chat
            .queue()
            .run_next(&self.state.memory)
            .await
            .unwrap()
            .is_some()
        {}
    }
}

/// An error answer: the status, and a JSON body with a code and a sentence.
fn assert_error(status: StatusCode, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}

async fn the_original_walkthrough(backend: Backend) {
    let Some((s, _fake)) = start(backend, true).await else {
        return;
    };
    let (status, root) = s.get("/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(root["status"], "running");
    assert_eq!(s.get("/health", None).await.0, StatusCode::OK);

    // Sign up, sign in (the original README's first two calls).
    let (status, up) = s
        .post(
            "/api/v1/auth/signup",
            None,
            json!({"email": "john@example.com", "password": "securepassword123", "full_name": "John Doe"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{up}");
    assert_eq!(up["token_type"], "bearer");
    assert_eq!(up["user"]["email"], "john@example.com");
    let (status, signin) = s
        .post(
            "/api/v1/auth/signin",
            None,
            json!({"email": "john@example.com", "password": "securepassword123"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{signin}");
    let token = signin["access_token"].as_str().unwrap().to_owned();
    assert!(signin["refresh_token"].is_string() && signin["expires_in"].is_u64());

    // Chat with memory.
    let (status, turn) = s
        .post(
            "/api/v1/chat",
            Some(&token),
            json!({"message": "Hi! I love pizza and I'm learning Spanish"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{turn}");
    assert_eq!(
        turn["response"],
        "You said: Hi! I love pizza and I'm learning Spanish"
    );
    assert_eq!(turn["user_id"], up["user"]["id"]);
    for key in ["session_id", "memories_used", "timestamp"] {
        assert!(turn.get(key).is_some(), "{key} in {turn}");
    }
    s.run_jobs().await;

    // Memory search.
    let (status, found) = s
        .post(
            "/api/v1/memories/search",
            Some(&token),
            json!({"query": "What food do I like?", "limit": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(
        found["memories"],
        json!(["Hi! I love pizza and I'm learning Spanish"])
    );
    assert_eq!(found["results"][0]["memory"], found["memories"][0]);
    assert_eq!(found["query"], "What food do I like?");
    // Words alone, or meaning alone, when asked.
    for mode in ["keyword", "semantic", "hybrid"] {
        let (status, found) = s
            .post(
                "/api/v1/memories/search",
                Some(&token),
                json!({"query": "pizza", "limit": 5, "mode": mode}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{found}");
        assert_eq!(
            found["memories"],
            json!(["Hi! I love pizza and I'm learning Spanish"]),
            "{mode}"
        );
    }

    // The next turn is given the memory, in the same session.
    let (_, next) = s
        .post(
            "/api/v1/chat",
            Some(&token),
            json!({"message": "What should I cook tonight, pizza?", "session_id": turn["session_id"]}),
        )
        .await;
    assert_eq!(next["session_id"], turn["session_id"]);
    assert_eq!(next["memories_used"], found["memories"]);

    let (status, summary) = s.get("/api/v1/memories/summary", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["memory_count"], 1);

    let (status, me) = s.get("/api/v1/auth/me", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["full_name"], "John Doe");

    let (status, deleted) = s
        .send(
            reqwest::Method::DELETE,
            "/api/v1/memories",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["deleted"], 1);

    let (status, ready) = s.get("/api/v1/health", None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["database"], "ok");
    assert_eq!(ready["provider"], "configured");

    // Prometheus metrics: requests per route and status, latency, jobs, model use.
    let metrics = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "homi_http_requests_total{method=\"POST\",route=\"/api/v1/chat\",status=\"200\"}",
        "homi_http_request_duration_seconds_bucket",
        "homi_jobs{state=\"queued\"}",
        "homi_model_calls_total{operation=\"search\",model=\"embeddings\"}",
        "homi_model_tokens_total{operation=\"chat\",kind=\"prompt\"}",
        "homi_model_calls_total{operation=\"extraction\",model=\"chat\"}",
        "homi_model_tokens_total{operation=\"extraction\",kind=\"completion\"}",
        "homi_jobs_run_total{outcome=\"done\"}",
        "homi_http_request_own_seconds_bucket{route=\"/api/v1/chat\"",
    ] {
        assert!(metrics.contains(needle), "{needle} not in:\n{metrics}");
    }

    // Sign-out ends the token at once.
    assert_eq!(
        s.post("/api/v1/auth/signout", Some(&token), json!({}))
            .await
            .0,
        StatusCode::OK
    );
    let (status, body) = s.get("/api/v1/auth/me", Some(&token)).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
}

async fn streaming_chat_sends_server_sent_events(backend: Backend) {
    let Some((s, _fake)) = start(backend, true).await else {
        return;
    };
    let token = s.signup("stream@example.com").await;
    let resp = s
        .http
        .post(format!("{}/api/v1/chat/stream", s.base))
        .bearer_auth(&token)
        .json(&json!({"message": "Tell me something"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = resp.text().await.unwrap();
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events.first(), Some(&"memories"), "{text}");
    assert_eq!(events.last(), Some(&"done"), "{text}");
    assert!(
        events.iter().filter(|e| **e == "delta").count() >= 2,
        "{text}"
    );
    let done: Value = serde_json::from_str(
        text.lines()
            .rev()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(done["response"], "You said: Tell me something");
}

async fn bad_input_gets_a_clear_4xx(backend: Backend) {
    let Some((s, _fake)) = start(backend, true).await else {
        return;
    };
    let token = s.signup("bad@example.com").await;
    let raw = |body: Vec<u8>, content_type: Option<&str>| {
        let mut r = s
            .http
            .post(format!("{}/api/v1/chat", s.base))
            .bearer_auth(&token)
            .body(body);
        if let Some(ct) = content_type {
            r = r.header("content-type", ct);
        }
        r.send()
    };
    let check = |resp: reqwest::Response, want: StatusCode, code: &'static str| async move {
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_error(status, &body, want, code);
        body
    };
    check(
        raw(b"{not json".to_vec(), Some("application/json"))
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_json",
    )
    .await;
    check(
        raw(
            vec![b'{', b'"', 0xff, 0xfe, b'"', b'}'],
            Some("application/json"),
        )
        .await
        .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_json",
    )
    .await;
    check(
        raw(b"{\"message\": \"hi\"}".to_vec(), None).await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let huge = serde_json::to_vec(&json!({"message": "x".repeat(200_000)})).unwrap();
    check(
        raw(huge, Some("application/json")).await.unwrap(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;

    for (body, code, field) in [
        (json!({"message": 5}), "invalid_input", "message"),
        (json!({}), "invalid_input", "message"),
        (
            json!({"message": "hi", "user_id": "someone-else"}),
            "invalid_input",
            "user_id",
        ),
        (json!({"message": "   "}), "invalid_input", "message"),
        (
            json!({"message": "x".repeat(2001)}),
            "invalid_input",
            "message",
        ),
        (json!({"message": "a\0b"}), "invalid_input", "message"),
        (
            json!({"message": "hi", "session_id": "s\0"}),
            "invalid_input",
            "session_id",
        ),
    ] {
        let (status, answer) = s.post("/api/v1/chat", Some(&token), body.clone()).await;
        assert_error(status, &answer, StatusCode::UNPROCESSABLE_ENTITY, code);
        assert!(
            answer["detail"].as_str().unwrap().contains(field),
            "{body} → {answer}"
        );
    }
    let (status, answer) = s
        .post(
            "/api/v1/memories/search",
            Some(&token),
            json!({"query": "x", "mode": "fuzzy"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("mode"),
        "{answer}"
    );
    for limit in [0, 21] {
        let (status, answer) = s
            .post(
                "/api/v1/memories/search",
                Some(&token),
                json!({"query": "x", "limit": limit}),
            )
            .await;
        assert_error(
            status,
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        );
        assert!(answer["detail"].as_str().unwrap().contains("limit"));
    }
    let (status, answer) = s
        .post(
            "/api/v1/auth/signup",
            None,
            json!({"email": "not-an-email", "password": "long enough pw"}),
        )
        .await;
    assert_error(
        status,
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    );
    let (status, answer) = s
        .post(
            "/api/v1/auth/signup",
            None,
            json!({"email": "bad@example.com", "password": "long enough pw"}),
        )
        .await;
    assert_error(status, &answer, StatusCode::CONFLICT, "conflict");
    let (status, answer) = s
        .post(
            "/api/v1/auth/signin",
            None,
            json!({"email": "bad@example.com", "password": "wrong password"}),
        )
        .await;
    assert_error(status, &answer, StatusCode::UNAUTHORIZED, "unauthorized");

    // Authorization headers.
    for header in [
        None,
        Some("Basic dXNlcjpwYXNz"),
        Some("Bearer"),
        Some("Bearer not.a.jwt"),
        Some("bearer  "),
    ] {
        let mut r = s.http.get(format!("{}/api/v1/auth/me", s.base));
        if let Some(h) = header {
            r = r.header("authorization", h);
        }
        let resp = r.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{header:?}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized");
    }
    let (status, body) = s.get("/api/v1/nothing-here", None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    // NUL characters, which Postgres cannot store, are the client's error.
    let (status, answer) = s
        .post(
            "/api/v1/auth/signup",
            None,
            json!({"email": "nul@example.com", "password": "long enough pw", "full_name": "N\0"}),
        )
        .await;
    assert_error(
        status,
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    );
    assert!(answer["detail"].as_str().unwrap().contains("full_name"));
    let (status, answer) = s
        .post(
            "/api/v1/memories/search",
            Some(&token),
            json!({"query": "q\0"}),
        )
        .await;
    assert!(!status.is_server_error(), "{status} {answer}");
}

/// With `HOMI_METRICS_TOKEN`, `/metrics` answers only its bearer.
#[tokio::test]
async fn metrics_can_require_a_token() {
    let token = "a-long-random-metrics-token-0123";
    let Some((s, _)) = start_with(Backend::Sqlite, false, |state| {
        state.metrics_token = Some(secrecy::SecretString::from(token.to_owned()));
    })
    .await
    else {
        return;
    };
    let metrics = |auth: Option<String>| {
        let mut req = s.http.get(format!("{}/metrics", s.base));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    for auth in [
        None,
        Some("Bearer wrong-token".to_owned()),
        Some(format!("Bearer {token}x")),
        Some(token.to_owned()),
    ] {
        let resp = metrics(auth.clone()).await.unwrap();
        let status = resp.status();
        assert_eq!(resp.headers()["www-authenticate"], "Bearer", "{auth:?}");
        let body: Value = resp.json().await.unwrap();
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("HOMI_METRICS_TOKEN")
        );
    }
    let resp = metrics(Some(format!("Bearer {token}"))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("homi_http_requests_total")
    );
    // Other routes stay as they were.
    let (status, health) = s.get("/health", None).await;
    assert_eq!(status, StatusCode::OK, "{health}");
}

conformance!(
    the_original_walkthrough,
    streaming_chat_sends_server_sent_events,
    bad_input_gets_a_clear_4xx,
);
