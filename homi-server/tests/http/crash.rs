//! A server killed (SIGKILL) while the model works on a chat turn loses no
//! extraction: the user's message and its extraction job were written
//! together before the model was asked, and the restarted server runs it.

use std::process::Child;
use std::time::{Duration, Instant};

use homi_testkit::db::{self as common, Backend};
use homi_testkit::{FakeProvider, Fault, Target, process};
use serde_json::{Value, json};

fn serve(url: &str, fake: &FakeProvider, port: u16) -> Child {
    process::server_command(env!("CARGO_BIN_EXE_homi-server"), url, fake, port)
        // A turn's message waits 3 × 3 s for its reply before it is
        // extracted alone.
        .env("HOMI_PROVIDER_DEADLINE_SECS", "3")
        .spawn()
        .unwrap()
}

async fn wait_healthy(port: u16) {
    assert!(
        process::wait_healthy(port, Duration::from_secs(30)).await,
        "the server did not start"
    );
}

async fn a_turn_killed_mid_answer_loses_no_extraction(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = common::database_url(backend, dir.path()).await else {
        return;
    };
    let fake = FakeProvider::start().await.unwrap();
    let port = process::free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut server = serve(&url, &fake, port);
    wait_healthy(port).await;
    let up: Value = http
        .post(format!("{base}/api/v1/auth/signup"))
        .json(&json!({"email": "kim@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = up["access_token"].as_str().unwrap().to_owned();

    // The model takes its time; the server dies meanwhile.
    fake.push_fault(Target::Chat, Fault::Timeout { delay_ms: 60_000 }, 1);
    let turn = tokio::spawn({
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        async move {
            http.post(format!("{base}/api/v1/chat"))
                .bearer_auth(token)
                .json(&json!({"message": "I adopted a cat named Miso"}))
                .send()
                .await
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.stats().chat_requests == 0 {
        assert!(
            Instant::now() < deadline,
            "the turn never reached the model"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(turn.await.unwrap().is_err(), "the killed server answered");

    // Restarted, the server extracts the message on its own.
    let mut server = serve(&url, &fake, port);
    wait_healthy(port).await;
    let deadline = Instant::now() + Duration::from_secs(40);
    let memories = loop {
        let found: Value = http
            .get(format!("{base}/api/v1/memories"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if found["results"].as_array().is_some_and(|m| !m.is_empty()) {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "the message was never extracted: {found}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(memories.to_string().contains("Miso"), "{memories}");
    server.kill().unwrap();
    server.wait().unwrap();
}

homi_testkit::conformance!(a_turn_killed_mid_answer_loses_no_extraction);
