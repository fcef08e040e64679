//! The provider layer against the fake OpenAI-compatible server, over real HTTP
//! through async-openai.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use homi_core::provider::openai::{OpenAiChatModel, OpenAiEmbedder};
use homi_core::provider::{ChatChunk, ChatMessage, ChatModel, ChatRequest, Embedder, JsonSchema};
use homi_core::{Config, ErrorKind};
use homi_testkit::{FakeProvider, Fault, Target};
use serde_json::{Value, json};

fn config(fake: &FakeProvider) -> Config {
    Config::default()
        .with_openai_base_url(fake.base_url())
        .with_openai_api_key("sk-test")
        .with_provider_timeout(Duration::from_secs(5))
        .with_provider_max_retries(2)
}

fn hello() -> ChatRequest {
    ChatRequest::new(vec![
        ChatMessage::system("Be brief."),
        ChatMessage::user("hello there"),
    ])
}

#[tokio::test]
async fn completes_and_reports_tokens() {
    let fake = FakeProvider::start().await.unwrap();
    let model = OpenAiChatModel::new(&config(&fake).provider).unwrap();
    let answer = model.complete(hello()).await.unwrap();
    assert_eq!(answer.content, "You said: hello there");
    assert!(answer.usage.prompt_tokens > 0 && answer.usage.completion_tokens > 0);
    let sent = &fake.requests()[0];
    assert_eq!(sent.body["model"], "gpt-4o-mini");
    assert_eq!(sent.body["messages"][0]["role"], "system");
}

#[tokio::test]
async fn structured_output_sends_a_strict_json_schema() {
    let fake = FakeProvider::start().await.unwrap();
    let model = OpenAiChatModel::new(&config(&fake).provider).unwrap();
    let mut req = hello();
    req.json_schema = Some(JsonSchema {
        name: "answer".into(),
        schema: json!({"type": "object", "properties": {}, "additionalProperties": false}),
    });
    model.complete(req).await.unwrap();
    let body = &fake.requests()[0].body;
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["name"], "answer");
    assert_eq!(body["response_format"]["json_schema"]["strict"], true);
}

#[tokio::test]
async fn streams_deltas_then_usage() {
    let fake = FakeProvider::start().await.unwrap();
    let model = OpenAiChatModel::new(&config(&fake).provider).unwrap();
    let mut stream = model.stream(hello()).await.unwrap();
    let mut text = String::new();
    let mut deltas = 0;
    let mut done = None;
    while let Some(chunk) = stream.next().await {
        match chunk.unwrap() {
            ChatChunk::Delta(d) => {
                deltas += 1;
                text.push_str(&d);
            }
            ChatChunk::Done(u) => done = Some(u),
        }
    }
    assert_eq!(text, "You said: hello there");
    assert!(deltas >= 3, "expected several deltas, got {deltas}");
    assert!(
        done.expect("a final event")
            .expect("usage")
            .completion_tokens
            > 0
    );
    assert_eq!(fake.requests()[0].body["stream"], true);
}

#[tokio::test]
async fn embeds_in_batches_in_order() {
    let fake = FakeProvider::start().await.unwrap();
    let mut cfg = config(&fake).with_embedding_model("text-embedding-3-small", Some(32));
    cfg.embedder.batch_size = 2;
    let embedder = OpenAiEmbedder::new(&cfg.provider, &cfg.embedder).unwrap();
    let texts: Vec<String> = (0..5).map(|i| format!("text number {i}")).collect();
    let out = embedder.embed(&texts).await.unwrap();
    assert_eq!(out.requests, 3);
    assert_eq!(fake.stats().embedding_requests, 3);
    assert_eq!(out.vectors.len(), 5);
    assert!(out.vectors.iter().all(|v| v.len() == 32));
    assert_eq!(
        out.vectors[4],
        homi_testkit::lexical_embedding("text number 4", 32)
    );
    assert_eq!(fake.requests()[0].body["dimensions"], 32);
}

#[tokio::test]
async fn asks_for_base64_and_falls_back_to_floats() {
    use homi_testkit::Base64Support;
    let texts: Vec<String> = vec!["alpha beta".into(), "gamma".into()];
    let expected: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| homi_testkit::lexical_embedding(t, 1536))
        .collect();
    for support in [
        Base64Support::Yes,
        Base64Support::Ignored,
        Base64Support::Refused,
    ] {
        let fake = FakeProvider::start().await.unwrap();
        fake.set_base64(support);
        let cfg = config(&fake);
        let embedder = OpenAiEmbedder::new(&cfg.provider, &cfg.embedder).unwrap();
        for round in 0..2 {
            let out = embedder.embed(&texts).await.unwrap();
            assert_eq!(out.vectors, expected, "{support:?}, round {round}");
        }
        let formats: Vec<Value> = fake
            .requests()
            .iter()
            .map(|r| r.body["encoding_format"].clone())
            .collect();
        match support {
            // Base64 every time.
            Base64Support::Yes => assert_eq!(formats, vec![json!("base64"); 2]),
            // The float answer is used, and floats are asked for from then on.
            Base64Support::Ignored => assert_eq!(formats, vec![json!("base64"), Value::Null]),
            // Asked again at once for floats, and floats from then on.
            Base64Support::Refused => {
                assert_eq!(formats, vec![json!("base64"), Value::Null, Value::Null]);
            }
        }
    }
}

#[tokio::test]
async fn retries_server_errors() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push_fault(Target::Chat, Fault::ServerError, 1);
    let model = OpenAiChatModel::new(&config(&fake).provider).unwrap();
    assert_eq!(
        model.complete(hello()).await.unwrap().content,
        "You said: hello there"
    );
    assert_eq!(fake.stats().chat_requests, 2);
}

#[tokio::test]
async fn persistent_server_errors_are_provider_unavailable() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push_fault(Target::Any, Fault::ServerError, 10);
    let model = OpenAiChatModel::new(&config(&fake).with_provider_max_retries(1).provider).unwrap();
    let err = model.complete(hello()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ProviderUnavailable);
    assert!(err.to_string().contains("500"), "{err}");
    assert_eq!(fake.stats().chat_requests, 2);
}

#[tokio::test]
async fn honours_retry_after() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push_fault(
        Target::Chat,
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
    );
    let model = OpenAiChatModel::new(&config(&fake).provider).unwrap();
    let start = Instant::now();
    model.complete(hello()).await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(990),
        "waited only {:?}",
        start.elapsed()
    );
    assert_eq!(fake.stats().chat_requests, 2);
}

#[tokio::test]
async fn long_retry_after_is_reported_not_waited() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push_fault(
        Target::Chat,
        Fault::RateLimited {
            retry_after_secs: 120,
        },
        1,
    );
    let model = OpenAiChatModel::new(&config(&fake).provider).unwrap();
    let err = model.complete(hello()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
    assert_eq!(fake.stats().chat_requests, 1);
}

#[tokio::test]
async fn times_out() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push_fault(Target::Chat, Fault::Timeout { delay_ms: 3000 }, 5);
    let cfg = config(&fake)
        .with_provider_timeout(Duration::from_millis(200))
        .with_provider_max_retries(1);
    let model = OpenAiChatModel::new(&cfg.provider).unwrap();
    let err = model.complete(hello()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ProviderTimeout, "{err}");
}

#[tokio::test]
async fn malformed_json_keeps_the_raw_body() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push_fault(Target::Chat, Fault::MalformedJson, 1);
    let model = OpenAiChatModel::new(&config(&fake).provider).unwrap();
    let err = model.complete(hello()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ProviderInvalidResponse);
    assert!(err.to_string().contains("chatcmpl-fake"), "{err}");
}

#[tokio::test]
async fn wrong_embedding_shape_is_invalid_response() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push_fault(Target::Embeddings, Fault::WrongSchema, 1);
    let cfg = config(&fake);
    let embedder = OpenAiEmbedder::new(&cfg.provider, &cfg.embedder).unwrap();
    let err = embedder.embed(&["x".to_string()]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ProviderInvalidResponse);
}

#[tokio::test]
async fn unreachable_server_is_provider_unavailable() {
    let fake = FakeProvider::start().await.unwrap();
    let url = fake.base_url();
    fake.stop().await;
    let cfg = Config::default()
        .with_openai_base_url(url)
        .with_provider_max_retries(1)
        .with_provider_timeout(Duration::from_secs(2));
    let model = OpenAiChatModel::new(&cfg.provider).unwrap();
    let err = model.complete(hello()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ProviderUnavailable, "{err}");
}

#[cfg(feature = "local")]
mod local;

#[tokio::test]
async fn a_provider_that_stalls_after_its_headers_fails_by_the_deadline() {
    let fake = FakeProvider::start().await.unwrap();
    let mut config = Config::default()
        .with_openai_base_url(fake.base_url())
        .with_provider_timeout(Duration::from_secs(30))
        .with_provider_max_retries(0);
    config.provider.deadline = Duration::from_millis(500);
    config.provider.stream_idle_timeout = Duration::from_millis(500);
    let model = OpenAiChatModel::new(&config.provider).unwrap();
    let embedder = OpenAiEmbedder::new(&config.provider, &config.embedder).unwrap();

    // A chat answer that stops mid-JSON: the per-attempt timeout (30 s)
    // ended with its headers; the deadline ends the call.
    fake.push_fault(Target::Chat, Fault::Stall, 1);
    let started = Instant::now();
    let err = model
        .complete(ChatRequest::new(vec![ChatMessage::user("Hi")]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ProviderTimeout, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // Embeddings that stop after their first bytes.
    fake.push_fault(Target::Embeddings, Fault::Stall, 1);
    let err = embedder.embed(&["one".to_owned()]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ProviderTimeout, "{err}");

    // A stream that stops after its first words: they arrive, then the error.
    fake.push_fault(Target::Chat, Fault::Stall, 1);
    let started = Instant::now();
    let chunks: Vec<_> = model
        .stream(ChatRequest::new(vec![ChatMessage::user("Hi")]))
        .await
        .unwrap()
        .collect()
        .await;
    assert!(
        matches!(&chunks[0], Ok(ChatChunk::Delta(d)) if d == "Half an "),
        "{chunks:?}"
    );
    assert!(
        matches!(chunks.last(), Some(Err(e)) if e.kind() == ErrorKind::ProviderTimeout),
        "{chunks:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // The provider back: the same clients work.
    model
        .complete(ChatRequest::new(vec![ChatMessage::user("Hi")]))
        .await
        .unwrap();
}

/// A mem0 configuration as a user writes it: the chat model on Azure OpenAI
/// with its sampling settings, the embedder on another server, custom
/// instructions. Each server gets only its calls, in its own protocol, and
/// the settings and instructions reach the model.
#[tokio::test]
async fn a_mem0_config_with_azure_chat_and_a_separate_embedder_server() {
    let chat = FakeProvider::start().await.unwrap();
    let embeddings = FakeProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default()
        .apply_mem0(&json!({
            "llm": {"provider": "azure_openai", "config": {
                "model": "gpt-4o", "temperature": 0.3, "max_tokens": 321, "top_p": 0.8,
                "azure_kwargs": {"api_key": "az-key", "azure_deployment": "chat-dep",
                    "azure_endpoint": chat.base_url().trim_end_matches("/v1"), "api_version": "2024-10-21"}}},
            "embedder": {"provider": "openai", "config": {
                "model": "text-embedding-3-small", "embedding_dims": 64,
                "api_key": "sk-emb", "openai_base_url": embeddings.base_url()}},
            "vector_store": {"provider": "qdrant", "config": {"path": dir.path().join("mem0").to_str().unwrap()}},
            "custom_instructions": "Only remember what the person eats."
        }))
        .unwrap();
    let memory = homi_core::Memory::open(&config).await.unwrap();
    let scope = homi_core::Scope::user("alice");
    memory
        .add(
            "I had ramen for lunch",
            &scope,
            homi_core::AddOptions::default(),
        )
        .await
        .unwrap();
    assert!(
        dir.path().join("mem0").join("homi.db").exists(),
        "the store lives in the qdrant path"
    );
    let chat_calls = chat.requests();
    assert!(!chat_calls.is_empty());
    for call in &chat_calls {
        assert_eq!(call.path, "/openai/deployments/chat-dep/chat/completions");
        assert_eq!(
            call.body["temperature"]
                .as_f64()
                .map(|t| (t * 10.0).round()),
            Some(3.0)
        );
        assert_eq!(
            call.body["top_p"].as_f64().map(|t| (t * 10.0).round()),
            Some(8.0)
        );
        assert_eq!(call.body["max_tokens"], 321);
        let system = call.body["messages"][0]["content"].as_str().unwrap();
        assert!(
            system.contains("Only remember what the person eats."),
            "{system}"
        );
    }
    let embedding_calls = embeddings.requests();
    assert!(!embedding_calls.is_empty());
    assert!(embedding_calls.iter().all(|c| c.path == "/v1/embeddings"));
    assert_eq!(chat.stats().embedding_requests, 0);
    assert_eq!(embeddings.stats().chat_requests, 0);

    // `prompt=` on one call replaces the configured instructions.
    memory
        .add(
            "I moved to Porto",
            &scope,
            homi_core::AddOptions::default().instructions("Only remember places."),
        )
        .await
        .unwrap();
    let last = chat.requests().pop().unwrap();
    let system = last.body["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.contains("Only remember places.") && !system.contains("eats"),
        "{system}"
    );
}

/// OpenAI's reasoning models take `max_completion_tokens`, others `max_tokens`.
#[tokio::test]
async fn max_tokens_takes_the_field_the_model_knows() {
    let fake = FakeProvider::start().await.unwrap();
    for (model, field) in [
        ("gpt-5-mini", "max_completion_tokens"),
        ("o3", "max_completion_tokens"),
        ("llama3.1", "max_tokens"),
    ] {
        let mut c = config(&fake).with_chat_model(model);
        c.provider.sampling.max_tokens = Some(64);
        OpenAiChatModel::new(&c.provider)
            .unwrap()
            .complete(hello())
            .await
            .unwrap();
        let body = fake.requests().pop().unwrap().body;
        assert_eq!(body[field], 64, "{model}: {body}");
        let other = if field == "max_tokens" {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        assert!(body.get(other).is_none(), "{model}: {body}");
    }
}
