//! Memories and sessions by id, the OpenAI-compatible endpoint, rate
//! limits and CORS, service keys, the OpenAPI document and timeouts.

use super::*;

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
        .json(&json!({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}))
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
    // A key sent as a bearer token (as OpenAI's SDKs send theirs) is still
    // a key: it names its user; a token is not a key.
    let (st, body) = s
        .post(
            "/api/v1/memories/search",
            Some(&writer_key),
            json!({"query": "x"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("X-User-Id"),
        "{body}"
    );
    let (st, found) = s
        .http
        .post(format!("{}/api/v1/memories/search", s.base))
        .bearer_auth(&writer_key)
        .header("X-User-Id", "bob")
        .json(&json!({"query": "cello"}))
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(st, StatusCode::OK, "{found:?}");
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
    slow_requests_time_out_but_streams_and_turns_run_to_their_end,
    openapi_document_lists_every_route,
    service_keys_act_within_their_scopes_and_namespace,
    openai_compatible_completions,
    auth_routes_are_rate_limited_per_address_and_cors_is_opt_in,
    memories_and_sessions_one_by_one,
);
