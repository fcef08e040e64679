//! The REST door where mem0 users meet it: adding memories, mem0's search
//! parameters, paging with a cursor, and the OpenAI-compatible endpoint with
//! a service key (as OpenAI's SDKs send one) — each with its user kept apart.

use super::*;

async fn adding_searching_and_paging_as_mem0_users_do(backend: Backend) {
    let Some((s, _fake)) = start(backend, true).await else {
        return;
    };
    let ann = s.signup("ann@example.com").await;
    let bob = s.signup("bob@example.com").await;
    let (status, added) = s
        .post(
            "/api/v1/memories",
            Some(&ann),
            json!({
                "messages": [
                    {"role": "user", "content": "I keep bees on the roof"},
                    {"role": "tool", "content": "{\"ok\": true}"},
                    {"role": "user", "content": "I grow tomatoes"}
                ],
                "infer": false,
                "metadata": {"topic": "garden"},
                "timestamp": "2024-05-01T10:00:00Z"
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{added}");
    let texts: Vec<&str> = added["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["memory"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["I keep bees on the roof", "I grow tomatoes"]);
    let (status, more) = s
        .post(
            "/api/v1/memories",
            Some(&ann),
            json!({"messages": "I read about bees in the evening", "infer": false, "metadata": {"topic": "books"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{more}");
    // Memories are the caller's own: a user id in the body is refused.
    let (status, body) = s
        .post(
            "/api/v1/memories",
            Some(&bob),
            json!({"messages": "x", "user_id": "ann"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // mem0's search parameters.
    let (status, found) = s
        .post(
            "/api/v1/memories/search",
            Some(&ann),
            json!({"query": "bees", "filters": {"topic": "garden"}, "top_k": 10, "mode": "keyword"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["memories"], json!(["I keep bees on the roof"]));
    let (_, found) = s
        .post(
            "/api/v1/memories/search",
            Some(&ann),
            json!({"query": "bees on the roof", "threshold": 0.99, "mode": "keyword"}),
        )
        .await;
    assert_eq!(
        found["memories"],
        json!(["I keep bees on the roof"]),
        "{found}"
    );
    let (_, before) = s
        .post(
            "/api/v1/memories/search",
            Some(&ann),
            json!({"query": "bees", "as_of": "2024-04-01T00:00:00Z", "mode": "keyword"}),
        )
        .await;
    assert_eq!(before["memories"], json!([]), "nothing was said before May");
    let (status, body) = s
        .post(
            "/api/v1/memories/search",
            Some(&bob),
            json!({"query": "bees", "filters": {"user_id": "ann"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    for bad in [
        json!({"query": "x", "top_k": 101}),
        json!({"query": "x", "as_of": "soon"}),
    ] {
        let (status, body) = s
            .post("/api/v1/memories/search", Some(&ann), bad.clone())
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    // Pages: every memory once, then no cursor.
    let mut seen = Vec::new();
    let mut path = "/api/v1/memories?limit=2".to_owned();
    loop {
        let (status, page) = s.get(&path, Some(&ann)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for m in page["results"].as_array().unwrap() {
            seen.push(m["memory"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/memories?limit=2&cursor={c}"),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "I grow tomatoes",
            "I keep bees on the roof",
            "I read about bees in the evening"
        ]
    );
    let (_, bobs) = s.get("/api/v1/memories", Some(&bob)).await;
    assert_eq!(bobs["results"], json!([]));
    assert!(bobs["next_cursor"].is_null());
    let (status, body) = s.get("/api/v1/memories?cursor=garbage", Some(&ann)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("cursor"),
        "{body}"
    );
}

/// A backend's service key through the OpenAI-compatible endpoint: as the
/// SDK's API key, with the user in `X-User-Id`.
async fn the_openai_endpoint_takes_service_keys(backend: Backend) {
    use homi_core::auth::{KeyScope, NewApiKey};
    let Some((s, _fake)) = start(backend, true).await else {
        return;
    };
    let writer = s
        .state
        .auth
        .create_api_key(NewApiKey::new("backend", "acme", vec![KeyScope::Write]))
        .await
        .unwrap();
    let reader = s
        .state
        .auth
        .create_api_key(NewApiKey::new("analytics", "acme", vec![KeyScope::Read]))
        .await
        .unwrap();
    let completion = |key: &str, user: Option<&str>| {
        let mut req = s
            .http
            .post(format!("{}/v1/chat/completions", s.base))
            .bearer_auth(key)
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": "I sail on Sundays"}]}));
        if let Some(u) = user {
            req = req.header("X-User-Id", u);
        }
        req.send()
    };
    let resp = completion(writer.secret(), Some("carl")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "You said: I sail on Sundays"
    );
    s.run_jobs().await;
    let found = s
        .state
        .memory
        .get_all(
            &homi_core::Scope::user("acme:carl"),
            homi_core::ListOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(found[0].memory, "I sail on Sundays");
    // No user named: an OpenAI-shaped 400; a read key may not write a turn.
    let resp = completion(writer.secret(), None).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("X-User-Id"),
        "{body}"
    );
    let resp = completion(reader.secret(), Some("carl")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // The read key lists the models.
    let resp = s
        .http
        .get(format!("{}/v1/models", s.base))
        .bearer_auth(reader.secret())
        .header("X-User-Id", "carl")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

/// Tool calls and their results reach the model as they came, after the
/// user's message when an agent's loop ends with them; only the user's
/// message and the reply are stored and extracted.
async fn tool_messages_reach_the_model_and_nothing_else(backend: Backend) {
    let Some((s, fake)) = start(backend, true).await else {
        return;
    };
    let fake = fake.unwrap();
    let ann = s.signup("ann@example.com").await;
    let call = json!({"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Porto\"}"}});
    let (status, body) = s
        .post(
            "/v1/chat/completions",
            Some(&ann),
            json!({"model": "m", "messages": [
                {"role": "user", "content": "Check the weather in Porto"},
                {"role": "assistant", "content": null, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 24 degrees"}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sent = fake
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == "/v1/chat/completions")
        .unwrap()
        .body;
    let messages = sent["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool"], "{sent}");
    assert_eq!(messages[2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(messages[3]["tool_call_id"], "call_1");
    assert_eq!(messages[3]["content"], "sunny, 24 degrees");
    s.run_jobs().await;
    let session = body["homi"]["session_id"].as_str().unwrap();
    let (_, stored) = s
        .get(&format!("/api/v1/sessions/{session}/messages"), Some(&ann))
        .await;
    let stored: Vec<(&str, &str)> = stored
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(stored[0], ("user", "Check the weather in Porto"));
    assert!(!s.holds("24 degrees").await, "a tool's result was stored");
    // Only tool messages may follow the user's; one message needs a role.
    for (bad, field) in [
        (
            json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]),
            "messages[1]",
        ),
        (json!([{"content": "a"}]), "messages[0].role"),
    ] {
        let (status, body) = s
            .post(
                "/v1/chat/completions",
                Some(&ann),
                json!({"model": "m", "messages": bad}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(field),
            "{body}"
        );
    }
}

conformance!(
    tool_messages_reach_the_model_and_nothing_else,
    adding_searching_and_paging_as_mem0_users_do,
    the_openai_endpoint_takes_service_keys,
);
