//! The Chat client, unchanged on SQLite and on Postgres, against the fake
//! provider over real HTTP: memory-augmented turns, streaming, conversations,
//! extraction through the durable queue, provider failures that lose nothing,
//! and users that never see each other's conversations.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use futures::StreamExt;
use homi_core::chat::{Chat, ChatEvent, ChatOptions};
use homi_core::jobs::{JobOutcome, QueueOptions};
use homi_core::provider::Role;
use homi_core::{AddOptions, Config, ErrorKind, Memory, Scope};
use homi_testkit::{FakeProvider, Fault, Target};
use serde_json::Value;

use crate::common;
use common::Backend;

struct Env {
    fake: FakeProvider,
    config: Config,
    chat: Chat,
    _dir: tempfile::TempDir,
}

async fn env(backend: Backend) -> Option<Env> {
    env_with(backend, ChatOptions::default()).await
}

async fn env_with(backend: Backend, options: ChatOptions) -> Option<Env> {
    let dir = tempfile::tempdir().unwrap();
    let url = common::database_url(backend, dir.path()).await?;
    let fake = FakeProvider::start().await.unwrap();
    let config = common::provider_config(&url, &fake.base_url(), 64, 0);
    let chat = chat_for(&config, &fake, options).await;
    Some(Env {
        fake,
        config,
        chat,
        _dir: dir,
    })
}

async fn chat_for(config: &Config, fake: &FakeProvider, options: ChatOptions) -> Chat {
    use homi_core::provider::openai::OpenAiChatModel;
    let _ = fake;
    let memory = Memory::open(config).await.unwrap();
    let model = OpenAiChatModel::new(&config.provider).unwrap();
    Chat::new(
        memory,
        Some(std::sync::Arc::new(model)),
        options,
        QueueOptions::default().backoff(Duration::ZERO, Duration::ZERO),
    )
    .unwrap()
}

/// The messages of the last chat request the provider received.
fn last_chat_messages(fake: &FakeProvider) -> Vec<Value> {
    fake.requests()
        .iter()
        .rev()
        .find(|r| r.path.ends_with("/chat/completions") && r.body.get("response_format").is_none())
        .and_then(|r| r.body["messages"].as_array().cloned())
        .expect("a chat request")
}

async fn run_all_jobs(chat: &Chat) {
    while let Some(run) = chat.queue().run_next(chat.memory()).await.unwrap() {
        assert_eq!(run.outcome, JobOutcome::Done, "{run:?}");
    }
}

async fn turns_use_memories_and_extract_after_the_reply(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let first = e
        .chat
        .turn("alice", "I am allergic to peanuts", None)
        .await
        .unwrap();
    assert_eq!(first.response, "You said: I am allergic to peanuts");
    assert_eq!(first.user_id, "alice");
    assert!(first.memories_used.is_empty());
    // The reply did not wait for extraction: one chat call so far.
    assert_eq!(e.fake.stats().chat_requests, 1);
    let counts = e.chat.queue().counts().await.unwrap();
    assert_eq!(counts.queued, 1);
    run_all_jobs(&e.chat).await;
    let memories = e
        .chat
        .memory()
        .get_all(&Scope::user("alice"), Default::default())
        .await
        .unwrap();
    assert_eq!(memories.len(), 1, "{memories:?}");

    let second = e
        .chat
        .turn(
            "alice",
            "Any snack ideas for peanuts lovers?",
            Some(&first.session_id),
        )
        .await
        .unwrap();
    assert_eq!(second.session_id, first.session_id);
    assert_eq!(second.memories_used, ["I am allergic to peanuts"]);
    assert!(
        second
            .response
            .contains("I remember: I am allergic to peanuts"),
        "{}",
        second.response
    );
    // The prompt: persona + memories as bullets, the earlier turn, the message.
    let sent = last_chat_messages(&e.fake);
    assert_eq!(sent[0]["role"], "system");
    assert!(
        sent[0]["content"]
            .as_str()
            .unwrap()
            .contains("\n- I am allergic to peanuts")
    );
    let roles: Vec<&str> = sent.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);

    let stored = e
        .chat
        .messages("alice", &first.session_id, 100)
        .await
        .unwrap();
    assert_eq!(stored.len(), 4);
    assert_eq!(stored[3].role, Role::Assistant);
    assert_eq!(stored[3].memories_used, ["I am allergic to peanuts"]);
    let conversations = e.chat.conversations("alice", 10, 0).await.unwrap();
    assert_eq!(conversations.len(), 1);
    assert_eq!(
        conversations[0].title.as_deref(),
        Some("I am allergic to peanuts")
    );
}

async fn streaming_yields_memories_then_deltas_then_the_stored_turn(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let first = e.chat.turn("bob", "I play the cello", None).await.unwrap();
    run_all_jobs(&e.chat).await;
    let mut events = e
        .chat
        .stream("bob", "What instrument do I play?", Some(&first.session_id))
        .await
        .unwrap();
    let mut all = Vec::new();
    while let Some(ev) = events.next().await {
        all.push(ev.unwrap());
    }
    let ChatEvent::Memories {
        session_id,
        memories,
    } = &all[0]
    else {
        panic!("first event: {:?}", all[0])
    };
    assert_eq!(session_id, &first.session_id);
    assert_eq!(memories, &["I play the cello"]);
    let text: String = all
        .iter()
        .filter_map(|e| match e {
            ChatEvent::Delta { content } => Some(content.as_str()),
            _ => None,
        })
        .collect();
    assert!(all.len() > 3, "several deltas: {all:?}");
    let ChatEvent::Done(turn) = all.last().unwrap() else {
        panic!("last event: {:?}", all.last())
    };
    assert_eq!(turn.response, text);
    assert!(
        text.starts_with("You said: What instrument do I play?"),
        "{text}"
    );
    // Stored and queued once the stream completed.
    let stored = e
        .chat
        .messages("bob", &first.session_id, 100)
        .await
        .unwrap();
    assert_eq!(stored.last().unwrap().content, text);
    assert_eq!(e.chat.queue().counts().await.unwrap().queued, 1);
}

async fn a_provider_failure_keeps_the_message_and_extracts_later(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    e.fake.push_fault(Target::Chat, Fault::ServerError, 1);
    let err = e
        .chat
        .turn("carol", "My sister is called Dana", Some("carol-session"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ProviderUnavailable, "{err}");
    let stored = e
        .chat
        .messages("carol", "carol-session", 100)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "the user's message is kept");
    assert_eq!(stored[0].content, "My sister is called Dana");
    assert_eq!(e.chat.queue().counts().await.unwrap().queued, 1);
    // The provider is back: the extraction completes.
    run_all_jobs(&e.chat).await;
    let m = e
        .chat
        .memory()
        .get_all(&Scope::user("carol"), Default::default())
        .await
        .unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].memory, "My sister is called Dana");
    // The conversation goes on.
    e.chat
        .turn("carol", "Hello again", Some("carol-session"))
        .await
        .unwrap();
}

async fn users_never_see_each_others_conversations(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let a = e
        .chat
        .turn("alice", "Alice's private plan", None)
        .await
        .unwrap();
    let err = e
        .chat
        .turn("mallory", "let me in", Some(&a.session_id))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(
        e.chat
            .messages("mallory", &a.session_id, 100)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound,
        "another user's conversation does not exist for mallory"
    );
    assert!(
        e.chat
            .conversations("mallory", 10, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !e.chat
            .delete_conversation("mallory", &a.session_id)
            .await
            .unwrap()
    );
    assert_eq!(
        e.chat
            .messages("alice", &a.session_id, 100)
            .await
            .unwrap()
            .len(),
        2
    );
    run_all_jobs(&e.chat).await;
    let m = e
        .chat
        .turn("mallory", "Alice's private plan?", None)
        .await
        .unwrap();
    assert!(m.memories_used.is_empty(), "{:?}", m.memories_used);
    assert!(
        e.chat
            .delete_conversation("alice", &a.session_id)
            .await
            .unwrap()
    );
    assert_eq!(
        e.chat
            .messages("alice", &a.session_id, 100)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

async fn the_token_budget_drops_the_oldest_turns_first(backend: Backend) {
    let mut options = ChatOptions::default();
    options.prompt_token_budget = 200;
    let Some(e) = env_with(backend, options).await else {
        return;
    };
    // A memory that takes much of the budget on its own.
    let fact = format!("Dan's notes: {}", "m".repeat(400));
    e.chat
        .memory()
        .add(fact.as_str(), &Scope::user("dan"), AddOptions::raw())
        .await
        .unwrap();
    let s = e.chat.turn("dan", &"a".repeat(200), None).await.unwrap();
    e.chat
        .turn("dan", &"b".repeat(200), Some(&s.session_id))
        .await
        .unwrap();
    e.chat
        .turn("dan", "short", Some(&s.session_id))
        .await
        .unwrap();
    let sent = last_chat_messages(&e.fake);
    let texts: Vec<&str> = sent
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(texts.last(), Some(&"short"));
    assert!(
        !texts.iter().any(|t| t.starts_with("aaaa")),
        "the oldest turn is dropped"
    );
    assert!(sent.len() < 6, "{texts:?}");
    // Over budget with the memory alone, the memories block still goes in
    // whole: earlier turns are what gives way.
    assert!(texts[0].contains(&fact), "the memory was cut: {texts:?}");
    assert!(!texts.iter().any(|t| t.starts_with("bbbb")), "{texts:?}");
}

async fn summary_and_input_errors(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let before = e.fake.stats().chat_requests;
    let empty = e.chat.summary("erin").await.unwrap();
    assert_eq!(empty.memory_count, 0);
    assert_eq!(
        e.fake.stats().chat_requests,
        before,
        "no model call without memories"
    );
    e.chat.turn("erin", "I live in Oslo", None).await.unwrap();
    run_all_jobs(&e.chat).await;
    let s = e.chat.summary("erin").await.unwrap();
    assert_eq!(s.memory_count, 1);
    assert!(s.summary.contains("I live in Oslo"), "{}", s.summary);
    for (user, message, field) in [
        ("erin", "   ", "message"),
        ("erin", &"x".repeat(2001), "message"),
        ("", "hi", "user_id"),
    ] {
        let err = e.chat.turn(user, message, None).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains(field), "{err}");
    }
    // Without a provider: conversations can be read, turns say what to set.
    let no_provider = Chat::open(&Config::default().with_database_url(&e.config.database_url))
        .await
        .unwrap();
    let err = no_provider.turn("erin", "hello", None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ProviderNotConfigured);
    assert!(err.to_string().contains("OPENAI_API_KEY"), "{err}");
    assert_eq!(
        no_provider
            .conversations("erin", 10, 0)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// "Forget everything" while a turn waits for its reply: the turn's message
/// came before it, so nothing of that turn is extracted afterwards (the
/// reply must not queue the extraction the delete-all cancelled).
async fn a_delete_all_during_a_turn_leaves_nothing_to_extract(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    e.fake.set_latency(Duration::from_millis(800));
    let chat = e.chat.clone();
    let turn = tokio::spawn(async move { chat.turn("ivy", "My locker code is 4711", None).await });
    // The message and its held-back extraction are stored before the model
    // is asked.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while e.chat.queue().counts().await.unwrap().queued == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the turn stored no job"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let scope = Scope::user("ivy");
    e.chat.memory().delete_all(&scope).await.unwrap();
    let reply = turn.await.unwrap().unwrap();
    assert_eq!(reply.response, "You said: My locker code is 4711");
    e.fake.set_latency(Duration::ZERO);
    let counts = e.chat.queue().counts().await.unwrap();
    assert_eq!((counts.queued, counts.running), (0, 0), "{counts:?}");
    run_all_jobs(&e.chat).await;
    let left = e
        .chat
        .memory()
        .get_all(&scope, Default::default())
        .await
        .unwrap();
    assert!(
        left.is_empty(),
        "the turn before the delete-all came back: {left:?}"
    );
}

conformance!(
    turns_use_memories_and_extract_after_the_reply,
    streaming_yields_memories_then_deltas_then_the_stored_turn,
    a_provider_failure_keeps_the_message_and_extracts_later,
    users_never_see_each_others_conversations,
    the_token_budget_drops_the_oldest_turns_first,
    summary_and_input_errors,
    a_delete_all_during_a_turn_leaves_nothing_to_extract,
);
