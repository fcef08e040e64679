//! A provider that stalls after its headers (mid-answer, mid-stream) holds
//! nobody: the chat turn answers 504, the streams (Homi's and the
//! OpenAI-compatible one) end with an error event,
//! the extraction job fails its attempt and is retried. The user's message
//! is kept and extracted once the provider is back.

use std::time::{Duration, Instant};

use homi_core::jobs::{JobOutcome, JobQueue, QueueOptions};
use homi_testkit::db::Backend;
use homi_testkit::{Fault, Target};
use reqwest::StatusCode;
use serde_json::json;

use super::{assert_error, start_configured};

/// Posts `body` to a streaming `path` while the provider stalls mid-stream:
/// the answer starts (200) and is ended within 5 s; returns its events.
async fn stalled_stream(
    s: &super::Server,
    fake: &homi_testkit::FakeProvider,
    token: &str,
    path: &str,
    body: serde_json::Value,
) -> String {
    fake.push_fault(Target::Chat, Fault::Stall, 1);
    let started = Instant::now();
    let resp = s
        .http
        .post(format!("{}{path}", s.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let events = tokio::time::timeout(Duration::from_secs(10), resp.text())
        .await
        .expect("the stream was never ended")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    events
}

async fn a_stalled_provider_holds_nobody(backend: Backend) {
    let Some((s, fake)) = start_configured(backend, true, |c| {
        c.provider.deadline = Duration::from_secs(1);
        c.provider.stream_idle_timeout = Duration::from_secs(1);
    })
    .await
    else {
        return;
    };
    let fake = fake.unwrap();
    let token = s.signup("stalled@example.com").await;
    let user = s
        .state
        .auth
        .verify_access_token(&token)
        .await
        .unwrap()
        .user_id
        .to_string();

    // Headers, half a JSON answer, then nothing.
    fake.push_fault(Target::Chat, Fault::Stall, 1);
    let started = Instant::now();
    let (status, body) = s
        .post(
            "/api/v1/chat",
            Some(&token),
            json!({"message": "I adopted a cat named Miso", "session_id": "s-1"}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::GATEWAY_TIMEOUT,
        "provider_timeout",
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let kept = s.state.chat.messages(&user, "s-1", 10).await.unwrap();
    assert_eq!(kept.len(), 1, "the message is saved");

    // A stream that stops after its first words.
    let events = stalled_stream(
        &s,
        &fake,
        &token,
        "/api/v1/chat/stream",
        json!({"message": "My sister is called Ines", "session_id": "s-2"}),
    )
    .await;
    assert!(events.contains("event: delta"), "{events}");
    assert!(events.contains("Half an "), "{events}");
    assert!(events.contains("event: error"), "{events}");
    assert!(events.contains("provider_timeout"), "{events}");
    let kept = s.state.chat.messages(&user, "s-2", 10).await.unwrap();
    assert_eq!(kept[0].content, "My sister is called Ines");

    // The OpenAI-compatible stream: an error chunk in OpenAI's shape, then
    // [DONE], by the idle limit.
    let events = stalled_stream(
        &s,
        &fake,
        &token,
        "/v1/chat/completions",
        json!({"model": "homi", "stream": true, "user": "s-3",
               "messages": [{"role": "user", "content": "I play the oboe"}]}),
    )
    .await;
    assert!(events.contains("Half an "), "{events}");
    assert!(events.contains("\"code\":\"provider_timeout\""), "{events}");
    assert!(events.trim_end().ends_with("data: [DONE]"), "{events}");

    // The first extraction job's model call stalls too: its attempt fails
    // by the deadline and the job is to be retried (here at once).
    let queue = JobQueue::for_memory(
        &s.state.memory,
        QueueOptions::default().backoff(Duration::ZERO, Duration::ZERO),
    )
    .unwrap();
    fake.push_fault(Target::Chat, Fault::Stall, 1);
    let started = Instant::now();
    let run = queue
        .run_next(&s.state.memory)
        .await
        .unwrap()
        .expect("an extraction job was queued");
    assert!(
        matches!(&run.outcome, JobOutcome::Retry { error, .. } if error.contains("did not answer")),
        "{run:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // With the provider back, every message becomes a memory.
    while queue.run_next(&s.state.memory).await.unwrap().is_some() {}
    let (_, all) = s.get("/api/v1/memories", Some(&token)).await;
    let all = all.to_string();
    assert!(all.contains("I adopted a cat named Miso"), "{all}");
    assert!(all.contains("My sister is called Ines"), "{all}");
    assert!(all.contains("I play the oboe"), "{all}");
}

homi_testkit::conformance!(a_stalled_provider_holds_nobody);
