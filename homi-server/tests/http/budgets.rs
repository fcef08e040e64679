//! Per-user budgets on model spend over real HTTP: requests per minute and
//! tokens per day, answered 429 with `Retry-After`; a client's own system
//! messages on `/v1/chat/completions` are capped and count as spend.

use homi_testkit::db::Backend;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Server, assert_error, start_configured};

async fn chat(s: &Server, token: &str, message: &str) -> reqwest::Response {
    s.http
        .post(format!("{}/api/v1/chat", s.base))
        .bearer_auth(token)
        .json(&json!({"message": message}))
        .send()
        .await
        .unwrap()
}

fn retry_after(resp: &reqwest::Response) -> u64 {
    resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn requests_per_minute_are_per_user(backend: Backend) {
    let Some((s, _fake)) = start_configured(backend, true, |c| c.memory.user_rpm = 3).await else {
        return;
    };
    let (ann, bob) = (
        s.signup("ann@example.com").await,
        s.signup("bob@example.com").await,
    );
    for i in 0..3 {
        let resp = chat(&s, &ann, &format!("Message {i}")).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let resp = chat(&s, &ann, "One too many").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&resp) >= 1);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("HOMI_USER_RPM"),
        "{body}"
    );
    // Searching spends the model too.
    let (status, body) = s
        .post("/api/v1/memories/search", Some(&ann), json!({"query": "x"}))
        .await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // Bob has his own allowance.
    assert_eq!(chat(&s, &bob, "Hello").await.status(), StatusCode::OK);
}

async fn tokens_per_day_count_in_the_store(backend: Backend) {
    let Some((s, _fake)) =
        start_configured(backend, true, |c| c.memory.user_tokens_per_day = 300).await
    else {
        return;
    };
    let (ann, bob) = (
        s.signup("ann@example.com").await,
        s.signup("bob@example.com").await,
    );
    // Ann's own system message (about 400 tokens) is taken, and counted.
    let system = "Answer as a ship's captain would, in full sentences. ".repeat(30);
    let resp = s
        .http
        .post(format!("{}/v1/chat/completions", s.base))
        .bearer_auth(&ann)
        .json(&json!({"model": "homi", "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": "Where are we headed?"}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{}",
        resp.text().await.unwrap()
    );
    // Her day's tokens are spent: the next turn waits for midnight (UTC).
    let resp = chat(&s, &ann, "And now?").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&resp);
    assert!((1..=86_400).contains(&wait), "{wait}");
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("HOMI_USER_TOKENS_PER_DAY"),
        "{body}"
    );
    // Bob's day is his own.
    assert_eq!(chat(&s, &bob, "Hello").await.status(), StatusCode::OK);

    // A system message longer than half the prompt budget is refused whole.
    let huge = "Always answer in verse. ".repeat(2000);
    let resp = s
        .http
        .post(format!("{}/v1/chat/completions", s.base))
        .bearer_auth(&bob)
        .json(&json!({"model": "homi", "messages": [
            {"role": "system", "content": huge},
            {"role": "user", "content": "Hi"}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = resp.json().await.unwrap();
    assert!(body.to_string().contains("system messages"), "{body}");
}

homi_testkit::conformance!(
    requests_per_minute_are_per_user,
    tokens_per_day_count_in_the_store
);
