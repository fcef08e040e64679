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
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
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
            Backend::Sqlite => common::sqlite_files_hold(&self._dir.path().join("homi.db"), needle),
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
        "homi_jobs{state=\"done\"}",
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

fn token_in(mail: &homi_testkit::smtp::ReceivedMail, label: &str) -> String {
    let body = mail.body_text();
    body.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no '{label}' in {body}"))
        .trim()
        .to_owned()
}

/// Every account route after sign-up: email confirmation, refresh (rotation
/// and reuse), profile update, change-password, reset by email, auth health;
/// each with its failure paths, as JSON.
async fn account_routes_work_and_fail_clearly(backend: Backend) {
    let smtp = homi_testkit::smtp::SmtpSink::start().await.unwrap();
    let smtp_url = smtp.url();
    let Some((s, _)) = start_configured(backend, false, |c| {
        c.auth.smtp_url = Some(smtp_url.into());
        c.auth.public_url = "https://app.homi.test".into();
        c.auth.require_email_confirmation = true;
        c.server.auth_rate_limit_per_minute = 0;
    })
    .await
    else {
        return;
    };
    let pw = "correct horse battery";
    let (status, up) = s
        .post(
            "/api/v1/auth/signup",
            None,
            json!({"email": "ada@example.com", "password": pw, "full_name": "Ada"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{up}");
    assert_eq!(up["confirmation_required"], true);
    assert!(up["access_token"].is_null());
    let signin = json!({"email": "ada@example.com", "password": pw});
    let (status, body) = s.post("/api/v1/auth/signin", None, signin.clone()).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");

    // The confirmation link.
    let mail = &smtp.wait_for(1, Duration::from_secs(10)).await.unwrap()[0];
    let token = token_in(mail, "Confirmation token: ");
    let (status, body) = s.get("/api/v1/auth/confirm", None).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    );
    assert!(body["detail"].as_str().unwrap().contains("token"), "{body}");
    let (status, user) = s
        .get(&format!("/api/v1/auth/confirm?token={token}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert!(user["email_confirmed_at"].is_string(), "{user}");
    let (status, body) = s
        .get(&format!("/api/v1/auth/confirm?token={token}"), None)
        .await;
    assert!(status.is_client_error(), "a used link: {status} {body}");
    assert!(body["error"].is_string(), "{body}");

    // Refresh: a new pair each time; replaying a spent token ends the session.
    let (status, first) = s.post("/api/v1/auth/signin", None, signin.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, other) = s.post("/api/v1/auth/signin", None, signin.clone()).await;
    assert_eq!(status, StatusCode::OK, "{other}");
    let other_token = other["access_token"].as_str().unwrap().to_owned();
    let (status, next) = s
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": first["refresh_token"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{next}");
    assert_eq!(next["token_type"], "bearer");
    assert_ne!(next["refresh_token"], first["refresh_token"]);
    let next_token = next["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        s.get("/api/v1/auth/me", Some(&next_token)).await.0,
        StatusCode::OK
    );
    let (status, body) = s
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": first["refresh_token"]}),
        )
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = s.get("/api/v1/auth/me", Some(&next_token)).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = s.post("/api/v1/auth/refresh", None, json!({})).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    );
    assert!(body["detail"].as_str().unwrap().contains("refresh_token"));
    let (status, body) = s
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": "forged"}),
        )
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");

    // The profile.
    let (status, me) = s
        .put(
            "/api/v1/auth/me",
            Some(&other_token),
            json!({"full_name": "Ada Lovelace"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["full_name"], "Ada Lovelace");
    let (_, me) = s.get("/api/v1/auth/me", Some(&other_token)).await;
    assert_eq!(me["full_name"], "Ada Lovelace");
    for (body, field) in [
        (json!({"full_name": "Ada\0"}), "full_name"),
        (json!({"email": "not an email"}), "email"),
        (json!({"age": 36}), "age"),
    ] {
        let (status, answer) = s.put("/api/v1/auth/me", Some(&other_token), body).await;
        assert_error(
            status,
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        );
        assert!(
            answer["detail"].as_str().unwrap().contains(field),
            "{answer}"
        );
    }
    let (status, body) = s
        .put("/api/v1/auth/me", None, json!({"full_name": "X"}))
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");

    // Change-password: the caller's session stays, the others end.
    let (_, third) = s.post("/api/v1/auth/signin", None, signin.clone()).await;
    let third_token = third["access_token"].as_str().unwrap().to_owned();
    let (status, body) = s
        .post(
            "/api/v1/auth/change-password",
            Some(&other_token),
            json!({"current_password": "wrong password", "new_password": "a new password"}),
        )
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = s
        .post(
            "/api/v1/auth/change-password",
            Some(&other_token),
            json!({"current_password": pw, "new_password": "short"}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    );
    let (status, body) = s
        .post(
            "/api/v1/auth/change-password",
            Some(&other_token),
            json!({"current_password": pw, "new_password": "a new password"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        s.get("/api/v1/auth/me", Some(&other_token)).await.0,
        StatusCode::OK
    );
    let (status, body) = s.get("/api/v1/auth/me", Some(&third_token)).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = s.post("/api/v1/auth/signin", None, signin.clone()).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");

    // Reset by email: the same answer for any address; one mail, one use.
    smtp.clear();
    let (status, known) = s
        .post(
            "/api/v1/auth/reset-password",
            None,
            json!({"email": "ada@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{known}");
    let (status, unknown) = s
        .post(
            "/api/v1/auth/reset-password",
            None,
            json!({"email": "nobody@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(known, unknown);
    let mail = &smtp.wait_for(1, Duration::from_secs(10)).await.unwrap()[0];
    assert_eq!(mail.to, vec!["ada@example.com".to_owned()]);
    let reset = token_in(mail, "Reset token: ");
    let confirm = json!({"token": reset, "new_password": "reset password 1"});
    let (status, body) = s
        .post("/api/v1/auth/reset-password/confirm", None, confirm.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = s
        .post("/api/v1/auth/reset-password/confirm", None, confirm)
        .await;
    assert!(
        status.is_client_error(),
        "a used reset token: {status} {body}"
    );
    assert!(body["error"].is_string(), "{body}");
    let (status, body) = s.get("/api/v1/auth/me", Some(&other_token)).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, signed_in) = s
        .post(
            "/api/v1/auth/signin",
            None,
            json!({"email": "ada@example.com", "password": "reset password 1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    let (status, body) = s
        .post("/api/v1/auth/reset-password", None, json!({"mail": "x"}))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    );

    let (status, health) = s.get("/api/v1/auth/health", None).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["healthy"], true, "{health}");

    // Query strings and methods the server does not take are JSON errors too.
    let token = signed_in["access_token"].as_str().unwrap().to_owned();
    for path in [
        "/api/v1/memories?limit=many",
        "/api/v1/memories?offset=3",
        "/api/v1/sessions?limit=-1",
    ] {
        let (status, answer) = s.get(path, Some(&token)).await;
        assert_error(
            status,
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        );
    }
    let (status, answer) = s.delete("/api/v1/auth/signin", None).await;
    assert_error(
        status,
        &answer,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

async fn users_never_reach_each_others_data(backend: Backend) {
    let Some((s, _fake)) = start(backend, true).await else {
        return;
    };
    let alice = s.signup("alice@example.com").await;
    let mallory = s.signup("mallory@example.com").await;
    let (_, turn) = s
        .post(
            "/api/v1/chat",
            Some(&alice),
            json!({"message": "My bank PIN is 4321"}),
        )
        .await;
    s.run_jobs().await;
    let (status, found) = s
        .post(
            "/api/v1/memories/search",
            Some(&mallory),
            json!({"query": "bank PIN", "limit": 20}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["memories"], json!([]));
    let (status, body) = s
        .post(
            "/api/v1/chat",
            Some(&mallory),
            json!({"message": "what was my PIN?", "session_id": turn["session_id"]}),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (_, summary) = s.get("/api/v1/memories/summary", Some(&mallory)).await;
    assert_eq!(summary["memory_count"], 0);
    let (_, deleted) = s
        .send(
            reqwest::Method::DELETE,
            "/api/v1/memories",
            Some(&mallory),
            None,
        )
        .await;
    assert_eq!(deleted["deleted"], 0);
    let (_, found) = s
        .post(
            "/api/v1/memories/search",
            Some(&alice),
            json!({"query": "bank PIN"}),
        )
        .await;
    assert_eq!(found["memories"], json!(["My bank PIN is 4321"]));
    let memory_id = found["results"][0]["id"].as_str().unwrap().to_owned();
    let session = turn["session_id"].as_str().unwrap().to_owned();

    // The OpenAI-compatible door: none of Alice's memories, not her conversation.
    let completions = |token: &str, session: Option<&str>, stream: bool| {
        let mut r = s
            .http
            .post(format!("{}/v1/chat/completions", s.base))
            .bearer_auth(token)
            .json(&json!({"model": "m", "stream": stream,
                          "messages": [{"role": "user", "content": "What is my bank PIN?"}]}));
        if let Some(id) = session {
            r = r.header("x-homi-session-id", id);
        }
        r.send()
    };
    let resp = completions(&mallory, None, false).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["homi"]["memories_used"], json!([]), "{body}");
    let resp = completions(&mallory, None, true).await.unwrap();
    let text = resp.text().await.unwrap();
    // Everything in the stream but its random ids and times.
    let said: String = text
        .lines()
        .map(|line| {
            match line
                .strip_prefix("data: ")
                .map(serde_json::from_str::<Value>)
            {
                Some(Ok(Value::Object(mut chunk))) => {
                    chunk.remove("id");
                    chunk.remove("created");
                    Value::Object(chunk).to_string()
                }
                _ => line.to_owned(),
            }
        })
        .collect();
    assert!(text.contains("data: "), "{text}");
    assert!(!said.contains("4321"), "{text}");
    let resp = completions(&mallory, Some(&session), false).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = completions(&mallory, Some(&session), true).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // Alice's own completion is given her memory.
    let resp = completions(&alice, None, false).await.unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["homi"]["memories_used"],
        json!(["My bank PIN is 4321"])
    );

    // The streamed turn, her conversation, her memory one by one.
    let (status, body) = s
        .post(
            "/api/v1/chat/stream",
            Some(&mallory),
            json!({"message": "what was my PIN?", "session_id": session}),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    for path in [
        format!("/api/v1/sessions/{session}/messages"),
        format!("/api/v1/memories/{memory_id}"),
        format!("/api/v1/memories/{memory_id}/history"),
    ] {
        let (status, body) = s.get(&path, Some(&mallory)).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    let (status, body) = s
        .put(
            &format!("/api/v1/memories/{memory_id}"),
            Some(&mallory),
            json!({"memory": "My PIN is 0000"}),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    for path in [
        format!("/api/v1/sessions/{session}"),
        format!("/api/v1/memories/{memory_id}"),
    ] {
        let (status, body) = s.delete(&path, Some(&mallory)).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    let (_, sessions) = s.get("/api/v1/sessions", Some(&mallory)).await;
    assert!(
        !sessions.to_string().contains(&session),
        "Mallory's conversations: {sessions}"
    );
    // Mallory has none (a text search of the body would also match her own
    // random user id now and then).
    let (status, listed) = s.get("/api/v1/memories", Some(&mallory)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["results"], json!([]), "{listed}");
    // Everything of Alice's is still there.
    let (status, kept) = s
        .get(&format!("/api/v1/memories/{memory_id}"), Some(&alice))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kept["memory"], "My bank PIN is 4321");
    let (status, messages) = s
        .get(
            &format!("/api/v1/sessions/{session}/messages"),
            Some(&alice),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(messages.as_array().unwrap().len(), 2, "{messages}");
}

async fn provider_trouble_is_5xx_and_loses_nothing(backend: Backend) {
    let Some((s, fake)) = start(backend, true).await else {
        return;
    };
    let fake = fake.unwrap();
    let token = s.signup("carol@example.com").await;
    fake.push_fault(Target::Chat, Fault::ServerError, 1);
    let (status, body) = s
        .post(
            "/api/v1/chat",
            Some(&token),
            json!({"message": "I adopted a cat named Miso", "session_id": "carol-1"}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_GATEWAY,
        "provider_unavailable",
    );
    let user = s
        .state
        .auth
        .verify_access_token(&token)
        .await
        .unwrap()
        .user_id
        .to_string();
    let kept = s.state.chat.messages(&user, "carol-1", 10).await.unwrap();
    assert_eq!(kept.len(), 1, "the message is saved");
    s.run_jobs().await;
    let (_, found) = s
        .post(
            "/api/v1/memories/search",
            Some(&token),
            json!({"query": "cat"}),
        )
        .await;
    assert_eq!(found["memories"], json!(["I adopted a cat named Miso"]));
    fake.push_fault(Target::Chat, Fault::Timeout { delay_ms: 3_000 }, 1);
    let (status, body) = s
        .post(
            "/api/v1/chat",
            Some(&token),
            json!({"message": "Still there?", "session_id": "carol-2"}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::GATEWAY_TIMEOUT,
        "provider_timeout",
    );
    let kept = s.state.chat.messages(&user, "carol-2", 10).await.unwrap();
    assert_eq!(kept.len(), 1, "the message is saved");
    assert_eq!(kept[0].content, "Still there?");
    // The embeddings fail too: the extraction job waits for the provider.
    fake.push_fault(Target::Embeddings, Fault::ServerError, 1);
    let (status, body) = s
        .post(
            "/api/v1/chat",
            Some(&token),
            json!({"message": "My sister is called Ines", "session_id": "carol-3"}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_GATEWAY,
        "provider_unavailable",
    );
    s.run_jobs().await;
    let (_, found) = s
        .post(
            "/api/v1/memories/search",
            Some(&token),
            json!({"query": "sister"}),
        )
        .await;
    assert!(
        found["memories"]
            .as_array()
            .unwrap()
            .contains(&json!("My sister is called Ines")),
        "{found}"
    );
}

async fn without_a_provider_auth_works_and_chat_says_what_to_set(backend: Backend) {
    let Some((s, _)) = start(backend, false).await else {
        return;
    };
    let token = s.signup("nokey@example.com").await;
    let (status, body) = s
        .post("/api/v1/chat", Some(&token), json!({"message": "hello"}))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "provider_not_configured",
    );
    assert!(
        body["detail"].as_str().unwrap().contains("OPENAI_API_KEY"),
        "{body}"
    );
    let (status, ready) = s.get("/api/v1/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        ready["provider"]
            .as_str()
            .unwrap()
            .starts_with("not configured")
    );
    let (status, _) = s.get("/api/v1/memories/summary", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
}

async fn memories_and_sessions_one_by_one(backend: Backend) {
    let Some((s, _fake)) = start(backend, true).await else {
        return;
    };
    let alice = s.signup("one@example.com").await;
    let bob = s.signup("two@example.com").await;
    let (_, turn) = s
        .post(
            "/api/v1/chat",
            Some(&alice),
            json!({"message": "I have two cats"}),
        )
        .await;
    s.run_jobs().await;
    let (status, list) = s.get("/api/v1/memories", Some(&alice)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let id = list["results"][0]["id"].as_str().unwrap().to_owned();
    let (status, one) = s.get(&format!("/api/v1/memories/{id}"), Some(&alice)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["memory"], "I have two cats");
    // Bob reaches none of it.
    for path in [
        format!("/api/v1/memories/{id}"),
        format!("/api/v1/memories/{id}/history"),
    ] {
        let (status, body) = s.get(&path, Some(&bob)).await;
        assert!(
            status == StatusCode::NOT_FOUND || body == json!([]),
            "{path}: {status} {body}"
        );
    }
    let (status, body) = s
        .send(
            reqwest::Method::PUT,
            &format!("/api/v1/memories/{id}"),
            Some(&bob),
            Some(json!({"memory": "hijacked"})),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = s
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/memories/{id}"),
            Some(&bob),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (_, bob_sessions) = s.get("/api/v1/sessions", Some(&bob)).await;
    assert_eq!(bob_sessions, json!([]));
    let session = turn["session_id"].as_str().unwrap();
    let (status, bob_messages) = s
        .get(&format!("/api/v1/sessions/{session}/messages"), Some(&bob))
        .await;
    assert_error(status, &bob_messages, StatusCode::NOT_FOUND, "not_found");

    // Alice updates, reads the history, lists her sessions, deletes.
    let (status, updated) = s
        .send(
            reqwest::Method::PUT,
            &format!("/api/v1/memories/{id}"),
            Some(&alice),
            Some(json!({"memory": "I have three cats"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["memory"], "I have three cats");
    let (_, history) = s
        .get(&format!("/api/v1/memories/{id}/history"), Some(&alice))
        .await;
    let events: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["ADD", "UPDATE"]);
    let (_, sessions) = s.get("/api/v1/sessions", Some(&alice)).await;
    assert_eq!(sessions[0]["id"], session);
    let (_, messages) = s
        .get(
            &format!("/api/v1/sessions/{session}/messages"),
            Some(&alice),
        )
        .await;
    assert_eq!(messages.as_array().unwrap().len(), 2);
    let (status, _) = s
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/memories/{id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = s.get(&format!("/api/v1/memories/{id}"), Some(&alice)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = s.get("/api/v1/memories/not-a-uuid", Some(&alice)).await;
    assert!(status.is_client_error(), "{status} {body}");
    let (status, _) = s
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/sessions/{session}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, sessions) = s.get("/api/v1/sessions", Some(&alice)).await;
    assert_eq!(sessions, json!([]));
}

async fn openai_compatible_completions(backend: Backend) {
    let Some((s, _fake)) = start(backend, true).await else {
        return;
    };
    let token = s.signup("sdk@example.com").await;
    let resp = s
        .http
        .post(format!("{}/v1/chat/completions", s.base))
        .bearer_auth(&token)
        .header("x-homi-session-id", "from-an-sdk")
        .json(&json!({"model": "anything", "temperature": 0.2,
                      "messages": [{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": [{"type": "text", "text": "I sing in a choir"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "You said: I sing in a choir"
    );
    assert_eq!(body["homi"]["session_id"], "from-an-sdk");
    // The client's system message replaced the persona in what the model saw.
    let user = s
        .state
        .auth
        .verify_access_token(&token)
        .await
        .unwrap()
        .user_id
        .to_string();
    assert_eq!(
        s.state
            .chat
            .messages(&user, "from-an-sdk", 10)
            .await
            .unwrap()
            .len(),
        2
    );

    let text = s
        .http
        .post(format!("{}/v1/chat/completions", s.base))
        .bearer_auth(&token)
        .json(&json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "stream it"}]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, "You said: stream it");

    let resp = s
        .http
        .post(format!("{}/v1/chat/completions", s.base))
        .bearer_auth("sk-not-a-homi-token")
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "unauthorized", "{body}");
    let resp = s
        .http
        .post(format!("{}/v1/chat/completions", s.base))
        .bearer_auth(&token)
        .json(&json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("messages[0].role"),
        "{body}"
    );
    let (status, models) = s.get("/v1/models", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(models["object"], "list");
}

async fn auth_routes_are_rate_limited_per_address_and_cors_is_opt_in(backend: Backend) {
    let Some((s, _fake)) = start_with(backend, false, |st| {
        st.auth_rate_limit_per_minute = 3;
        st.cors_origins = vec!["https://app.example".into()];
    })
    .await
    else {
        return;
    };
    let body = json!({"email": "nobody@example.com", "password": "a wrong password"});
    for _ in 0..3 {
        let (status, _) = s.post("/api/v1/auth/signin", None, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let resp = s
        .http
        .post(format!("{}/api/v1/auth/signin", s.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&wait), "{wait}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited", "{body}");
    // Routes for signed-in users are not limited by it.
    assert_eq!(s.get("/health", None).await.0, StatusCode::OK);

    let preflight = s
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/api/v1/chat", s.base))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let other = s
        .http
        .get(format!("{}/health", s.base))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

/// A request with an API key (and optionally a user, a bearer token too).
async fn keyed(
    s: &Server,
    method: reqwest::Method,
    path: &str,
    key: &str,
    user: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = s
        .http
        .request(method, format!("{}{path}", s.base))
        .header("X-API-Key", key);
    if let Some(u) = user {
        req = req.header("X-User-Id", u);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn service_keys_act_within_their_scopes_and_namespace(backend: Backend) {
    use homi_core::auth::{KeyScope, NewApiKey};
    use reqwest::Method;
    let Some((s, _fake)) = start(backend, true).await else {
        return;
    };
    // The first admin key comes from the core (the CLI's `key create`).
    let admin = s
        .state
        .auth
        .create_api_key(NewApiKey::new("ops", "ops", vec![KeyScope::Admin]))
        .await
        .unwrap();
    let admin = admin.secret();
    let create = |name: &str, namespace: &str, scopes: Value| json!({"name": name, "namespace": namespace, "scopes": scopes});
    let (st, writer) = keyed(
        &s,
        Method::POST,
        "/api/v1/admin/keys",
        admin,
        None,
        Some(create("backend", "acme", json!(["write"]))),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{writer}");
    let writer_key = writer["secret"].as_str().unwrap().to_owned();
    assert!(writer_key.starts_with("homi_sk_"));
    assert_eq!(writer["scopes"], json!(["write"]));
    let (_, reader) = keyed(
        &s,
        Method::POST,
        "/api/v1/admin/keys",
        admin,
        None,
        Some(create("analytics", "acme", json!(["read"]))),
    )
    .await;
    let reader_key = reader["secret"].as_str().unwrap().to_owned();
    let (_, other) = keyed(
        &s,
        Method::POST,
        "/api/v1/admin/keys",
        admin,
        None,
        Some(create("other", "globex", json!(["write"]))),
    )
    .await;
    let other_key = other["secret"].as_str().unwrap().to_owned();
    // Bad requests name what is wrong.
    let (st, body) = keyed(
        &s,
        Method::POST,
        "/api/v1/admin/keys",
        admin,
        None,
        Some(create("x", "acme", json!(["root"]))),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("root"));
    let (st, _) = keyed(
        &s,
        Method::POST,
        "/api/v1/admin/keys",
        admin,
        None,
        Some(create("x", "Not Valid", json!(["read"]))),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);

    // The writer acts for its users: chat and add, then search.
    let (st, body) = keyed(
        &s,
        Method::POST,
        "/api/v1/chat",
        &writer_key,
        Some("bob"),
        Some(json!({"message": "I play the cello"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], "acme:bob");
    s.run_jobs().await;
    let (st, found) = keyed(
        &s,
        Method::POST,
        "/api/v1/memories/search",
        &reader_key,
        Some("bob"),
        Some(json!({"query": "cello"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{found}");
    assert!(found["memories"].to_string().contains("cello"), "{found}");
    assert_eq!(found["user_id"], "acme:bob");

    // A read key never writes; scopes are not inherited upwards.
    for (method, path, body) in [
        (Method::POST, "/api/v1/chat", Some(json!({"message": "hi"}))),
        (Method::DELETE, "/api/v1/memories", None),
    ] {
        let (st, body) = keyed(&s, method, path, &reader_key, Some("bob"), body).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{path}: {body}");
        assert!(body["detail"].as_str().unwrap().contains("write"));
    }
    // Neither the writer nor the reader manages keys.
    for k in [&writer_key, &reader_key] {
        let (st, _) = keyed(&s, Method::GET, "/api/v1/admin/keys", k, None, None).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
    }
    // The admin key reaches no memories.
    let (st, _) = keyed(
        &s,
        Method::POST,
        "/api/v1/memories/search",
        admin,
        Some("bob"),
        Some(json!({"query": "cello"})),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // Another namespace's key naming the same user sees nothing of acme's bob.
    let (st, found) = keyed(
        &s,
        Method::POST,
        "/api/v1/memories/search",
        &other_key,
        Some("bob"),
        Some(json!({"query": "cello"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(found["results"], json!([]), "{found}");
    assert_eq!(found["user_id"], "globex:bob");
    // A signed-up user's memories are out of every key's reach: naming their
    // id lands in the key's namespace, never on their account.
    let token = s.signup("carol@example.com").await;
    let (_, me) = s.get("/api/v1/auth/me", Some(&token)).await;
    let carol = me["id"].as_str().unwrap().to_owned();
    let (st, _) = s
        .post(
            "/api/v1/chat",
            Some(&token),
            json!({"message": "I keep bees"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    s.run_jobs().await;
    let (_, found) = keyed(
        &s,
        Method::POST,
        "/api/v1/memories/search",
        &writer_key,
        Some(&carol),
        Some(json!({"query": "bees"})),
    )
    .await;
    assert_eq!(found["results"], json!([]), "{found}");
    let (_, listed) = keyed(
        &s,
        Method::GET,
        "/api/v1/memories",
        &writer_key,
        Some(&carol),
        None,
    )
    .await;
    assert_eq!(listed["results"], json!([]), "{listed}");
    // And carol's token sees none of bob's.
    let (_, found) = s
        .post(
            "/api/v1/memories/search",
            Some(&token),
            json!({"query": "cello"}),
        )
        .await;
    assert!(!found["memories"].to_string().contains("cello"), "{found}");

    // Keys and tokens are never confused.
    let (st, body) = keyed(
        &s,
        Method::POST,
        "/api/v1/memories/search",
        &writer_key,
        None,
        Some(json!({"query": "x"})),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "a key must name its user");
    assert!(body["detail"].as_str().unwrap().contains("X-User-Id"));
    // A key naming a blank user is refused before any memory is touched,
    // on a search, a list, a deletion of everything and one memory by id.
    let id = uuid::Uuid::new_v4();
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/memories/search".to_owned(),
            Some(json!({"query": "x"})),
        ),
        (Method::GET, "/api/v1/memories".to_owned(), None),
        (Method::DELETE, "/api/v1/memories".to_owned(), None),
        (Method::GET, format!("/api/v1/memories/{id}"), None),
        (Method::DELETE, format!("/api/v1/memories/{id}"), None),
    ] {
        let (st, body) = keyed(&s, method.clone(), &path, &writer_key, Some("  "), body).await;
        assert_eq!(
            st,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {path}: {body}"
        );
        assert!(body["detail"].as_str().unwrap().contains("user"), "{body}");
    }
    let (st, _) = s
        .http
        .post(format!("{}/api/v1/memories/search", s.base))
        .bearer_auth(&token)
        .header("X-User-Id", "bob")
        .json(&json!({"query": "x"}))
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(
        st,
        StatusCode::BAD_REQUEST,
        "a token user cannot name another user"
    );
    let (st, _) = s
        .http
        .post(format!("{}/api/v1/memories/search", s.base))
        .bearer_auth(&token)
        .header("X-API-Key", &writer_key)
        .json(&json!({"query": "x"}))
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(st, StatusCode::BAD_REQUEST, "both credentials at once");
    // A key sent as a bearer token is not a token, and a token is not a key.
    let (st, _) = s
        .post(
            "/api/v1/memories/search",
            Some(&writer_key),
            json!({"query": "x"}),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = keyed(
        &s,
        Method::POST,
        "/api/v1/memories/search",
        &token,
        Some("bob"),
        Some(json!({"query": "x"})),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // Account routes are for users only.
    let (st, _) = keyed(
        &s,
        Method::GET,
        "/api/v1/auth/me",
        &writer_key,
        Some("bob"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // Listing shows no secrets; revoking works at once.
    let (st, listed) = keyed(&s, Method::GET, "/api/v1/admin/keys", admin, None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(listed["keys"].as_array().unwrap().len(), 4);
    assert!(!listed.to_string().contains(&writer_key));
    assert!(!listed.to_string().contains("secret"));
    let id = writer["id"].as_str().unwrap();
    let (st, _) = keyed(
        &s,
        Method::DELETE,
        &format!("/api/v1/admin/keys/{id}"),
        admin,
        None,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = keyed(
        &s,
        Method::GET,
        "/api/v1/memories",
        &writer_key,
        Some("bob"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = keyed(
        &s,
        Method::DELETE,
        &format!("/api/v1/admin/keys/{id}"),
        admin,
        None,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // Nothing but digests is stored.
    assert!(!s.holds(&writer_key).await);
}

async fn openapi_document_lists_every_route(backend: Backend) {
    let Some((s, _fake)) = start(backend, true).await else {
        return;
    };
    let (st, doc) = s.get("/openapi.json", None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    // Every route of the original, and the ones beyond it.
    for path in [
        "/api/v1/auth/signup",
        "/api/v1/auth/signin",
        "/api/v1/auth/signout",
        "/api/v1/auth/refresh",
        "/api/v1/auth/me",
        "/api/v1/auth/change-password",
        "/api/v1/auth/reset-password",
        "/api/v1/auth/reset-password/confirm",
        "/api/v1/auth/health",
        "/api/v1/chat",
        "/api/v1/chat/stream",
        "/api/v1/memories/search",
        "/api/v1/memories/summary",
        "/api/v1/memories",
        "/api/v1/memories/{id}",
        "/api/v1/memories/{id}/history",
        "/api/v1/sessions",
        "/api/v1/sessions/{id}",
        "/api/v1/sessions/{id}/messages",
        "/api/v1/admin/keys",
        "/api/v1/admin/keys/{id}",
        "/",
        "/health",
        "/api/v1/health",
        "/v1/chat/completions",
        "/v1/models",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    // Every documented operation exists: unauthenticated, it answers
    // anything but "no such route".
    for (path, item) in paths {
        let concrete = path.replace("{id}", "00000000-0000-0000-0000-000000000000");
        for method in item.as_object().unwrap().keys() {
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let resp = s
                .http
                .request(m, format!("{}{concrete}", s.base))
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            assert!(
                !(status == StatusCode::NOT_FOUND
                    && body["error"] == "not_found"
                    && body["detail"] == "there is no such endpoint"),
                "{method} {path} is documented but not served"
            );
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        }
    }
    // The types are in it, with the security schemes.
    let schemas = &doc["components"]["schemas"];
    for name in [
        "TurnResult",
        "MemoryItem",
        "HistoryEntry",
        "User",
        "ErrorBody",
        "ChatBody",
        "SearchAnswer",
    ] {
        assert!(schemas.get(name).is_some(), "no schema {name}");
    }
    assert_eq!(schemas["ChatBody"]["required"], json!(["message"]));
    let security = &doc["components"]["securitySchemes"];
    assert_eq!(security["bearer"]["scheme"], "bearer");
    assert_eq!(security["api_key"]["name"], "X-API-Key");
}

async fn slow_requests_time_out_but_streams_and_turns_run_to_their_end(backend: Backend) {
    let Some((s, fake)) = start_with(backend, true, |st| {
        st.request_timeout = Duration::from_millis(700);
    })
    .await
    else {
        return;
    };
    let fake = fake.unwrap();
    let token = s.signup("slow@example.com").await;
    // Each provider request takes 1 s: the turn outlasts the time limit.
    fake.set_latency(Duration::from_millis(1000));
    let started = std::time::Instant::now();
    let (st, body) = s
        .post(
            "/api/v1/chat",
            Some(&token),
            json!({"message": "I collect stamps"}),
        )
        .await;
    assert_eq!(st, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["error"], "timeout");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("HOMI_REQUEST_TIMEOUT_SECS")
    );
    assert!(started.elapsed() < Duration::from_millis(1500));
    // The turn went on without the client: reply stored, extraction queued.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, sessions) = s.get("/api/v1/sessions", Some(&token)).await;
        if let Some(id) = sessions[0]["id"].as_str() {
            let (_, m) = s
                .get(&format!("/api/v1/sessions/{id}/messages"), Some(&token))
                .await;
            if m.as_array().unwrap().len() == 2 {
                assert_eq!(m[1]["content"], "You said: I collect stamps");
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the turn never finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fake.set_latency(Duration::ZERO);
    s.run_jobs().await;
    let (_, found) = s
        .post(
            "/api/v1/memories/search",
            Some(&token),
            json!({"query": "stamps"}),
        )
        .await;
    assert!(found["memories"].to_string().contains("stamps"), "{found}");

    // A stream that lasts longer than the limit is not cut.
    fake.set_chunk_delay(Duration::from_millis(120));
    let started = std::time::Instant::now();
    let resp = s
        .http
        .post(format!("{}/api/v1/chat/stream", s.base))
        .bearer_auth(&token)
        .json(&json!({"message": "one two three four five six seven eight"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    assert!(
        started.elapsed() > Duration::from_millis(700),
        "the stream was too quick to tell"
    );
    assert!(text.contains("event: done"), "{text}");
    assert!(text.contains("You said: one two three four five six seven eight"));
}

conformance!(
    account_routes_work_and_fail_clearly,
    slow_requests_time_out_but_streams_and_turns_run_to_their_end,
    openapi_document_lists_every_route,
    service_keys_act_within_their_scopes_and_namespace,
    openai_compatible_completions,
    auth_routes_are_rate_limited_per_address_and_cors_is_opt_in,
    the_original_walkthrough,
    streaming_chat_sends_server_sent_events,
    bad_input_gets_a_clear_4xx,
    users_never_reach_each_others_data,
    provider_trouble_is_5xx_and_loses_nothing,
    without_a_provider_auth_works_and_chat_says_what_to_set,
    memories_and_sessions_one_by_one,
);
