//! The Memory conformance suite: every test runs unchanged on the SQLite store
//! (a temp file) and on Postgres + pgvector (a fresh database on the test
//! server), with the fake OpenAI-compatible provider over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;
use std::time::Duration;

use homi_core::memory::{Filter, SearchMode};
use homi_core::{
    Access, AddOptions, Config, ErrorKind, Event, ListOptions, Memory, Scope, SearchOptions,
};
use homi_testkit::{FakeProvider, Fault, Target};
use serde_json::json;

use crate::common;
use common::{Backend, postgres_holds, sqlite_files_hold};

const DIMS: usize = 64;

struct Env {
    backend: Backend,
    fake: FakeProvider,
    memory: Memory,
    url: String,
    dir: tempfile::TempDir,
}

impl Env {
    fn db_path(&self) -> PathBuf {
        self.dir.path().join("homi.db")
    }

    fn config(&self) -> Config {
        self.config_with_dims(DIMS)
    }

    fn config_with_dims(&self, dims: usize) -> Config {
        config_for(&self.fake, &self.url, dims)
    }

    /// Whether `needle` is anywhere in the database: every byte of the SQLite
    /// file, its WAL and shared-memory files; every text column on Postgres.
    async fn holds(&self, needle: &str) -> bool {
        match self.backend {
            Backend::Sqlite => sqlite_files_hold(&self.db_path(), needle),
            Backend::Postgres => postgres_holds(&self.url, needle).await,
        }
    }

    /// Rows of the memories table owned by `user`, counted in SQL.
    async fn count_rows(&self, user: &str) -> i64 {
        match self.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
                sqlx::query_scalar("SELECT COUNT(*) FROM homi_memories WHERE user_id = ?")
                    .bind(user)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
            Backend::Postgres => postgres_count(&self.url, user).await,
        }
    }
}

#[cfg(feature = "postgres")]
async fn postgres_count(url: &str, user: &str) -> i64 {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM homi_memories WHERE user_id = $1")
        .bind(user)
        .fetch_one(&pool)
        .await
        .unwrap()
}

#[cfg(not(feature = "postgres"))]
async fn postgres_count(_: &str, _: &str) -> i64 {
    unreachable!("Postgres tests are compiled only with the postgres feature")
}

async fn database_url(backend: Backend, dir: &std::path::Path) -> Option<String> {
    common::database_url(backend, dir).await
}

fn config_for(fake: &FakeProvider, url: &str, dims: usize) -> Config {
    common::provider_config(url, &fake.base_url(), dims, 1)
}

async fn env(backend: Backend) -> Option<Env> {
    let fake = FakeProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = database_url(backend, dir.path()).await?;
    let memory = Memory::open(&config_for(&fake, &url, DIMS)).await.unwrap();
    Some(Env {
        backend,
        fake,
        memory,
        url,
        dir,
    })
}

fn ops(facts: serde_json::Value) -> String {
    json!({ "facts": facts }).to_string()
}

async fn verbatim_add_stores_each_non_system_message(b: Backend) {
    let Some(e) = env(b).await else { return };
    let alice = Scope::user("alice");
    let messages = homi_core::Messages::from_json(&json!([
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "I am allergic to peanuts", "name": "alice"},
        {"role": "assistant", "content": "I will remember your peanut allergy."}
    ]))
    .unwrap();
    let r = e
        .memory
        .add(messages, &alice, AddOptions::raw())
        .await
        .unwrap();
    assert_eq!(r.results.len(), 2);
    assert!(r.results.iter().all(|x| x.event == Event::Add));
    assert_eq!(r.usage.chat_calls, 0);
    assert_eq!(r.usage.embedding_calls, 1);
    let all = e
        .memory
        .get_all(&alice, ListOptions::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let user = all.iter().find(|m| m.memory.contains("peanuts")).unwrap();
    assert_eq!(user.role.as_deref(), Some("user"));
    assert_eq!(user.actor_id.as_deref(), Some("alice"));
    assert_eq!(
        user.hash,
        homi_core::memory::text_hash("I am allergic to peanuts")
    );
    assert!(all.iter().all(|m| m.user_id.as_deref() == Some("alice")));
    assert!(!all.iter().any(|m| m.memory.contains("helpful")));
}

async fn exact_duplicates_touch_nothing(b: Backend) {
    let Some(e) = env(b).await else { return };
    let s = Scope::user("u");
    let first = e
        .memory
        .add("Drinks green tea", &s, AddOptions::raw())
        .await
        .unwrap();
    let before = e.fake.stats();
    let again = e
        .memory
        .add("Drinks green tea", &s, AddOptions::raw())
        .await
        .unwrap();
    assert_eq!(again.results[0].event, Event::None);
    assert_eq!(again.results[0].id, first.results[0].id);
    // Inferred: a message that is already a memory needs no model at all.
    let inferred = e
        .memory
        .add("Drinks green tea", &s, AddOptions::default())
        .await
        .unwrap();
    assert_eq!(inferred.results[0].event, Event::None);
    assert_eq!(inferred.usage.model_calls(), 0);
    assert_eq!(e.fake.stats(), before);
    assert_eq!(
        e.memory
            .get_all(&s, ListOptions::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn search_scores_are_in_range_and_sorted(b: Backend) {
    let Some(e) = env(b).await else { return };
    let s = Scope::user("bob");
    for t in [
        "Loves pizza with mushrooms",
        "Works as a nurse",
        "Has two cats",
        "Plays tennis on Sundays",
    ] {
        e.memory.add(t, &s, AddOptions::raw()).await.unwrap();
    }
    let r = e
        .memory
        .search("pizza", &s, SearchOptions::default())
        .await
        .unwrap();
    assert_eq!(r.results[0].memory, "Loves pizza with mushrooms");
    assert_eq!(r.results.len(), 4);
    let scores: Vec<f32> = r.results.iter().map(|m| m.score.unwrap()).collect();
    assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)), "{scores:?}");
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert_eq!(r.usage.embedding_calls, 1);
    assert!(r.usage.duration_ms > 0.0);
    let top1 = e
        .memory
        .search("pizza", &s, SearchOptions::default().limit(1))
        .await
        .unwrap();
    assert_eq!(top1.results.len(), 1);
    let strict = e
        .memory
        .search(
            "pizza",
            &s,
            SearchOptions::default().threshold(scores[0] - 1e-4),
        )
        .await
        .unwrap();
    assert_eq!(strict.results.len(), 1);
}

async fn inferred_add_uses_one_chat_call_and_at_most_two_embedding_requests(b: Backend) {
    let Some(e) = env(b).await else { return };
    let s = Scope::user("carol");
    e.memory
        .add("Lives in Lisbon", &s, AddOptions::raw())
        .await
        .unwrap();
    let before = e.fake.stats();
    let r = e
        .memory
        .add(
            json_messages(json!([
                {"role": "user", "content": "I just adopted a beagle"},
                {"role": "assistant", "content": "Congratulations!"},
                {"role": "user", "content": "I also started learning Portuguese"}
            ])),
            &s,
            AddOptions::default(),
        )
        .await
        .unwrap();
    let after = e.fake.stats();
    assert_eq!(after.chat_requests - before.chat_requests, 1);
    assert!(after.embedding_requests - before.embedding_requests <= 2);
    assert_eq!(r.usage.chat_calls, 1);
    assert_eq!(r.usage.embedding_calls, 2);
    assert!(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0);
    let added: Vec<&str> = r
        .results
        .iter()
        .filter(|x| x.event == Event::Add)
        .map(|x| x.memory.as_str())
        .collect();
    assert_eq!(
        added,
        vec![
            "I just adopted a beagle",
            "I also started learning Portuguese"
        ]
    );
    // The model saw the scope's memory under a small integer id, never a UUID.
    let sent = e
        .fake
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path.ends_with("chat/completions"))
        .unwrap();
    let doc: serde_json::Value =
        serde_json::from_str(sent.body["messages"][1]["content"].as_str().unwrap()).unwrap();
    assert_eq!(doc["existing_memories"][0]["id"], 0);
    assert_eq!(doc["existing_memories"][0]["text"], "Lives in Lisbon");
    assert!(!sent.body.to_string().contains(&r.results[0].id.to_string()));
}

fn json_messages(v: serde_json::Value) -> homi_core::Messages {
    homi_core::Messages::from_json(&v).unwrap()
}

async fn update_keeps_the_id_and_history_keeps_the_old_text(b: Backend) {
    let Some(e) = env(b).await else { return };
    let s = Scope::user("dan");
    let id = e
        .memory
        .add("Likes pizza", &s, AddOptions::raw())
        .await
        .unwrap()
        .results[0]
        .id;
    e.fake.push_reply(ops(
        json!([{"text": "Likes pizza, especially margherita", "event": "UPDATE", "target": 0}]),
    ));
    let r = e
        .memory
        .add(
            "My favourite pizza is margherita",
            &s,
            AddOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(r.results.len(), 1);
    assert_eq!(r.results[0].event, Event::Update);
    assert_eq!(r.results[0].id, id);
    assert_eq!(r.results[0].previous_memory.as_deref(), Some("Likes pizza"));
    let now = e.memory.get(&id.to_string(), &s).await.unwrap().unwrap();
    assert_eq!(now.memory, "Likes pizza, especially margherita");
    let h = e.memory.history(&id.to_string(), &s).await.unwrap();
    assert_eq!(
        h.iter().map(|x| x.event).collect::<Vec<_>>(),
        vec![Event::Add, Event::Update]
    );
    assert_eq!(h[1].old_memory.as_deref(), Some("Likes pizza"));
    assert_eq!(
        h[1].new_memory.as_deref(),
        Some("Likes pizza, especially margherita")
    );
}

async fn contradiction_supersedes_and_as_of_still_sees_the_old_fact(b: Backend) {
    let Some(e) = env(b).await else { return };
    let s = Scope::user("erin");
    let old = e
        .memory
        .add("Is vegetarian", &s, AddOptions::raw())
        .await
        .unwrap()
        .results[0]
        .id;
    let before = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(2)).await;
    e.fake.push_reply(ops(
        json!([{"text": "Eats meat again", "event": "DELETE", "target": 0}]),
    ));
    let r = e
        .memory
        .add("I started eating meat again", &s, AddOptions::default())
        .await
        .unwrap();
    let del = r.results.iter().find(|x| x.event == Event::Delete).unwrap();
    let add = r.results.iter().find(|x| x.event == Event::Add).unwrap();
    assert_eq!(del.id, old);
    assert_eq!(del.memory, "Is vegetarian");
    assert_eq!(del.superseded_by, Some(add.id));
    assert_eq!(add.memory, "Eats meat again");

    // Gone from default reads, kept with its validity window.
    let current = e.memory.get_all(&s, ListOptions::default()).await.unwrap();
    assert_eq!(
        current
            .iter()
            .map(|m| m.memory.as_str())
            .collect::<Vec<_>>(),
        vec!["Eats meat again"]
    );
    let found = e
        .memory
        .search("vegetarian", &s, SearchOptions::default())
        .await
        .unwrap();
    assert!(found.results.iter().all(|m| m.id != old));
    let all = e
        .memory
        .get_all(&s, ListOptions::default().include_superseded(true))
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let old_item = e.memory.get(&old.to_string(), &s).await.unwrap().unwrap();
    assert!(old_item.valid_to.is_some());
    assert_eq!(old_item.superseded_by, Some(add.id));
    let with_old = e
        .memory
        .search(
            "vegetarian",
            &s,
            SearchOptions::default().include_superseded(true),
        )
        .await
        .unwrap();
    assert!(with_old.results.iter().any(|m| m.id == old));

    // What was true then.
    let then = e
        .memory
        .search("vegetarian", &s, SearchOptions::default().as_of(before))
        .await
        .unwrap();
    assert_eq!(
        then.results
            .iter()
            .map(|m| m.memory.as_str())
            .collect::<Vec<_>>(),
        vec!["Is vegetarian"]
    );
    let then_list = e
        .memory
        .get_all(&s, ListOptions::default().as_of(before))
        .await
        .unwrap();
    assert_eq!(then_list.len(), 1);
    assert_eq!(then_list[0].id, old);
    let h = e.memory.history(&old.to_string(), &s).await.unwrap();
    assert_eq!(h.last().unwrap().event, Event::Delete);
    assert_eq!(
        h.last().unwrap().old_memory.as_deref(),
        Some("Is vegetarian")
    );
    assert!(!h.last().unwrap().is_deleted);
}

async fn none_decision_writes_nothing(b: Backend) {
    let Some(e) = env(b).await else { return };
    let s = Scope::user("fay");
    let id = e
        .memory
        .add("Has a sister called Ana", &s, AddOptions::raw())
        .await
        .unwrap()
        .results[0]
        .id;
    e.fake.push_reply(ops(
        json!([{"text": "Has a sister named Ana", "event": "NONE", "target": 0}]),
    ));
    let before = e.fake.stats();
    let r = e
        .memory
        .add("My sister Ana visited", &s, AddOptions::default())
        .await
        .unwrap();
    assert_eq!(r.results.len(), 1);
    assert_eq!(r.results[0].event, Event::None);
    assert_eq!(r.results[0].id, id);
    // Only the message embedding; nothing new to embed or write.
    assert_eq!(
        e.fake.stats().embedding_requests - before.embedding_requests,
        1
    );
    assert_eq!(
        e.memory.history(&id.to_string(), &s).await.unwrap().len(),
        1
    );
}

async fn a_fact_equal_to_a_memory_is_not_added_twice(b: Backend) {
    let Some(e) = env(b).await else { return };
    let s = Scope::user("gus");
    e.memory
        .add("Plays the cello", &s, AddOptions::raw())
        .await
        .unwrap();
    e.fake.push_reply(ops(json!([
        {"text": "Plays the cello", "event": "ADD", "target": null},
        {"text": "Lives in Porto", "event": "ADD", "target": null},
        {"text": "Lives in Porto", "event": "ADD", "target": null}
    ])));
    let r = e
        .memory
        .add(
            "I play the cello, I live in Porto",
            &s,
            AddOptions::default(),
        )
        .await
        .unwrap();
    let adds: Vec<_> = r.results.iter().filter(|x| x.event == Event::Add).collect();
    assert_eq!(adds.len(), 1);
    assert_eq!(adds[0].memory, "Lives in Porto");
    assert!(
        r.results
            .iter()
            .any(|x| x.event == Event::None && x.memory == "Plays the cello")
    );
    assert_eq!(
        e.memory
            .get_all(&s, ListOptions::default())
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn malformed_model_json_is_repaired_once(b: Backend) {
    let Some(e) = env(b).await else { return };
    let s = Scope::user("hal");
    e.fake
        .push_reply("```json\n{\"facts\": [{\"text\": \"Runs marathons\", \"event\": \"ADD\"");
    e.fake.push_reply(format!(
        "```json\n{}\n```",
        ops(json!([{"text": "Runs marathons", "event": "ADD", "target": null}]))
    ));
    let r = e
        .memory
        .add("I run marathons", &s, AddOptions::default())
        .await
        .unwrap();
    assert_eq!(r.usage.chat_calls, 2);
    assert_eq!(r.results[0].memory, "Runs marathons");
    // The repair request showed the model its error.
    let repair = e
        .fake
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path.ends_with("chat/completions"))
        .unwrap();
    let msgs = repair.body["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 4);
    assert!(
        msgs[3]["content"]
            .as_str()
            .unwrap()
            .contains("could not be used")
    );
}

async fn invalid_answers_twice_fail_clearly_and_write_nothing(b: Backend) {
    let Some(e) = env(b).await else { return };
    let s = Scope::user("ida");
    e.memory
        .add("Speaks French", &s, AddOptions::raw())
        .await
        .unwrap();
    // An invented id, then an answer of the wrong schema.
    e.fake.push_reply(ops(
        json!([{"text": "Speaks German", "event": "UPDATE", "target": 7}]),
    ));
    e.fake.push_reply("{\"unexpected\": true}");
    let err = e
        .memory
        .add("I speak German too", &s, AddOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ProviderInvalidResponse);
    assert!(
        err.to_string().contains("unexpected"),
        "the raw answer is kept: {err}"
    );
    let all = e
        .memory
        .get_all(&s, ListOptions::default().include_superseded(true))
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].memory, "Speaks French");
}

async fn provider_failures_are_clear_and_leave_nothing_half_written(b: Backend) {
    let Some(e) = env(b).await else { return };
    let s = Scope::user("jo");
    e.memory
        .add("Owns a bicycle", &s, AddOptions::raw())
        .await
        .unwrap();
    let cases = [
        (
            Target::Chat,
            Fault::ServerError,
            ErrorKind::ProviderUnavailable,
        ),
        (
            Target::Chat,
            Fault::RateLimited {
                retry_after_secs: 300,
            },
            ErrorKind::RateLimited,
        ),
        (
            Target::Chat,
            Fault::Timeout { delay_ms: 5000 },
            ErrorKind::ProviderTimeout,
        ),
        (
            Target::Chat,
            Fault::MalformedJson,
            ErrorKind::ProviderInvalidResponse,
        ),
    ];
    for (target, fault, kind) in cases {
        e.fake.reset();
        e.fake.push_fault(target, fault.clone(), 5);
        let err = e
            .memory
            .add(
                "I sold my bicycle and bought a car",
                &s,
                AddOptions::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{fault:?}: {err}");
    }
    // The second embeddings request (for the new facts) fails after the model answered.
    e.fake.reset();
    e.fake.push_reply(ops(
        json!([{"text": "Bought a car", "event": "DELETE", "target": 0}]),
    ));
    e.fake
        .push_fault_after(Target::Embeddings, Fault::ServerError, 5, 1);
    let err = e
        .memory
        .add(
            "I sold my bicycle and bought a car",
            &s,
            AddOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ProviderUnavailable, "{err}");
    assert_eq!(e.fake.stats().chat_requests, 1);
    let all = e
        .memory
        .get_all(&s, ListOptions::default().include_superseded(true))
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert!(all[0].is_current());
    assert_eq!(all[0].memory, "Owns a bicycle");
    assert_eq!(
        e.memory
            .history(&all[0].id.to_string(), &s)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn deleted_text_is_found_nowhere_in_the_database_files(b: Backend) {
    let Some(e) = env(b).await else { return };
    let s = Scope::user("kim");
    let secret_one = "Kim's locker code is zebra-4471";
    let secret_all = "Kim hides a key under flowerpot-9925";
    let id = e
        .memory
        .add(secret_one, &s, AddOptions::raw())
        .await
        .unwrap()
        .results[0]
        .id;
    // Give it history with the text in both columns.
    e.memory
        .update(
            &id.to_string(),
            &s,
            "Kim's locker code is zebra-4471 (gym)",
            None,
        )
        .await
        .unwrap();
    e.memory
        .add(secret_all, &s, AddOptions::raw())
        .await
        .unwrap();
    e.memory
        .add("Kim likes jazz", &Scope::user("other"), AddOptions::raw())
        .await
        .unwrap();
    assert!(e.holds("zebra-4471").await);

    assert!(e.holds("flowerpot").await);
    e.memory.delete(&id.to_string(), &s).await.unwrap();
    assert!(
        !e.holds("zebra-4471").await,
        "deleted text survives in the database"
    );
    // Nor do its words alone: in Postgres' full-text index or anywhere in
    // the SQLite file (whose keyword index is in memory).
    assert!(
        !e.holds("zebra").await,
        "a deleted word survives in the database"
    );
    let h = e.memory.history(&id.to_string(), &s).await.unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].event, Event::Delete);
    assert!(h[0].is_deleted && h[0].old_memory.is_none() && h[0].new_memory.is_none());
    assert!(e.memory.get(&id.to_string(), &s).await.unwrap().is_none());

    assert!(e.holds("flowerpot-9925").await);
    assert_eq!(e.memory.delete_all(&s).await.unwrap(), 1);
    assert!(
        !e.holds("flowerpot-9925").await,
        "delete_all left text behind"
    );
    assert!(
        !e.holds("flowerpot").await,
        "delete_all left a word in the database"
    );
    assert!(
        e.holds("Kim likes jazz").await,
        "another scope's memory must stay"
    );
    // Deleted memories are gone from search too, in every mode.
    for mode in [
        SearchMode::Hybrid,
        SearchMode::Semantic,
        SearchMode::Keyword,
    ] {
        assert!(
            e.memory
                .search("flowerpot", &s, SearchOptions::default().mode(mode))
                .await
                .unwrap()
                .results
                .is_empty()
        );
    }
}

async fn scopes_never_mix(b: Backend) {
    let Some(e) = env(b).await else { return };
    let a = Scope::user("ann");
    let b = Scope::user("ben");
    let a_id = e
        .memory
        .add("Ann's passport number is X123", &a, AddOptions::raw())
        .await
        .unwrap()
        .results[0]
        .id;
    e.memory
        .add("Ben likes chess", &b, AddOptions::raw())
        .await
        .unwrap();
    let a_id = a_id.to_string();

    let found = e
        .memory
        .search("passport number", &b, SearchOptions::default())
        .await
        .unwrap();
    assert!(
        found
            .results
            .iter()
            .all(|m| m.user_id.as_deref() == Some("ben"))
    );
    assert!(
        e.memory
            .get_all(&b, ListOptions::default())
            .await
            .unwrap()
            .iter()
            .all(|m| m.memory == "Ben likes chess")
    );
    assert!(e.memory.get(&a_id, &b).await.unwrap().is_none());
    assert!(e.memory.history(&a_id, &b).await.unwrap().is_empty());
    assert_eq!(
        e.memory
            .update(&a_id, &b, "hijacked", None)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        e.memory.delete(&a_id, &b).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(e.memory.delete_all(&b).await.unwrap(), 1);
    let still = e.memory.get(&a_id, &a).await.unwrap().unwrap();
    assert_eq!(still.memory, "Ann's passport number is X123");
    // A narrower scope sees only what carries every id it names.
    e.memory
        .add(
            "Ann's agent note",
            &a.clone().with_agent("travel"),
            AddOptions::raw(),
        )
        .await
        .unwrap();
    let agent_only = e
        .memory
        .get_all(
            &Scope::user("ann").with_agent("travel"),
            ListOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(agent_only.len(), 1);
    assert_eq!(
        e.memory
            .get_all(&a, ListOptions::default())
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn delete_all_removes_every_memory_not_one_page(b: Backend) {
    let Some(e) = env(b).await else { return };
    let s = Scope::user("bulk");
    let texts: Vec<homi_core::provider::ChatMessage> = (0..10_000)
        .map(|i| homi_core::provider::ChatMessage::user(format!("bulk fact number {i}")))
        .collect();
    let r = e.memory.add(texts, &s, AddOptions::raw()).await.unwrap();
    assert_eq!(r.results.len(), 10_000);
    e.memory
        .add("keep me", &Scope::user("keeper"), AddOptions::raw())
        .await
        .unwrap();
    assert_eq!(e.memory.delete_all(&s).await.unwrap(), 10_000);
    assert!(
        e.memory
            .get_all(&s, ListOptions::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(e.count_rows("bulk").await, 0);
    assert_eq!(
        e.memory
            .get_all(&Scope::user("keeper"), ListOptions::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn another_embedder_dimension_is_a_clear_error(b: Backend) {
    let Some(e) = env(b).await else { return };
    e.memory
        .add("anything", &Scope::user("z"), AddOptions::raw())
        .await
        .unwrap();
    let other = e.config_with_dims(128);
    let err = Memory::open(&other).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let msg = err.to_string();
    assert!(msg.contains("64 dims") && msg.contains("128 dims"), "{msg}");
    assert!(msg.contains("homi memory reembed"), "{msg}");
}

async fn invalid_input_names_the_field(b: Backend) {
    let Some(e) = env(b).await else { return };
    let cases: Vec<(homi_core::Error, &str)> = vec![
        (
            e.memory
                .add("x", &Scope::default(), AddOptions::raw())
                .await
                .unwrap_err(),
            "user_id",
        ),
        (
            e.memory
                .add("x", &Scope::user(""), AddOptions::raw())
                .await
                .unwrap_err(),
            "user_id",
        ),
        (
            e.memory
                .get("not-a-uuid", &Scope::user("u"))
                .await
                .unwrap_err(),
            "memory_id",
        ),
        (
            e.memory
                .search("q", &Scope::user("u"), SearchOptions::default().limit(0))
                .await
                .unwrap_err(),
            "limit",
        ),
        (
            e.memory
                .search(
                    "q",
                    &Scope::user("u"),
                    SearchOptions::default().threshold(1.5),
                )
                .await
                .unwrap_err(),
            "threshold",
        ),
        (
            e.memory
                .search(" ", &Scope::user("u"), SearchOptions::default())
                .await
                .unwrap_err(),
            "query",
        ),
        (
            e.memory
                .get_all(&Scope::default(), ListOptions::default())
                .await
                .unwrap_err(),
            "user_id",
        ),
        (
            e.memory.delete_all(&Scope::default()).await.unwrap_err(),
            "user_id",
        ),
    ];
    for (err, field) in cases {
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains(field), "{err} should name {field}");
    }
}

/// An empty scope is refused by every operation of the Memory client and
/// matches nothing in the store's SQL: it never means "every user". Only
/// `Access::Any`, said on purpose, reaches another scope's memory by id.
async fn an_empty_scope_is_an_error_never_every_user(b: Backend) {
    let Some(e) = env(b).await else { return };
    let alice = Scope::user("alice");
    let added = e
        .memory
        .add("Alice keeps bees", &alice, AddOptions::raw())
        .await
        .unwrap();
    let uuid = added.results[0].id;
    let id = uuid.to_string();
    let none = Scope::default();
    let mut errors = vec![
        e.memory
            .add("x", &none, AddOptions::raw())
            .await
            .unwrap_err(),
        e.memory
            .get_all(&none, ListOptions::default())
            .await
            .unwrap_err(),
        e.memory
            .count(&none, ListOptions::default())
            .await
            .unwrap_err(),
        e.memory.get(&id, &none).await.unwrap_err(),
        e.memory
            .update(&id, &none, "changed", None)
            .await
            .unwrap_err(),
        e.memory.delete(&id, &none).await.unwrap_err(),
        e.memory.history(&id, &none).await.unwrap_err(),
        e.memory.delete_all(&none).await.unwrap_err(),
    ];
    for mode in [
        SearchMode::Hybrid,
        SearchMode::Semantic,
        SearchMode::Keyword,
    ] {
        let options = SearchOptions::default().mode(mode);
        errors.push(e.memory.search("bees", &none, options).await.unwrap_err());
    }
    for err in errors {
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("user_id"), "{err}");
    }

    // Below the client, the store's SQL matches nothing for an empty scope.
    let store = e.memory.store();
    let empty = Access::from(&none);
    assert!(store.get(uuid, &empty).await.unwrap().is_none());
    assert!(store.history(uuid, &empty).await.unwrap().is_empty());
    assert!(!store.delete(uuid, &empty).await.unwrap());
    let read = homi_core::store::ReadParams {
        limit: 100,
        filter: None,
        as_of: None,
        include_superseded: true,
        threshold: None,
    };
    assert!(store.list(&none, &read).await.unwrap().is_empty());
    assert_eq!(store.count(&none, &read).await.unwrap(), 0);
    assert!(
        store
            .export(&empty, None, 100, false)
            .await
            .unwrap()
            .is_empty()
    );

    // Alice's memory is untouched, and reached on purpose with Access::Any.
    let item = e.memory.get(&id, Access::Any).await.unwrap().unwrap();
    assert_eq!(item.memory, "Alice keeps bees");
    assert_eq!(e.memory.history(&id, Access::Any).await.unwrap().len(), 1);
    assert!(
        e.memory
            .get(&id, &Scope::user("bob"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        e.memory
            .get_all(&alice, ListOptions::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn metadata_filters(b: Backend) {
    let Some(e) = env(b).await else { return };
    let s = Scope::user("meta");
    let add = |text: &'static str, meta: serde_json::Value| {
        let memory = e.memory.clone();
        let s = s.clone();
        async move {
            let m = meta.as_object().unwrap().clone();
            memory
                .add(text, &s, AddOptions::raw().metadata(m))
                .await
                .unwrap();
        }
    };
    add(
        "Pizza night on Fridays",
        json!({"category": "food", "rating": 5, "tags": ["weekly", "fun"]}),
    )
    .await;
    add("Dislikes olives", json!({"category": "food", "rating": 2})).await;
    add(
        "Runs every morning",
        json!({"category": "sport", "rating": 4, "note": "Early Bird"}),
    )
    .await;
    let texts = |filter: serde_json::Value| {
        let memory = e.memory.clone();
        let s = s.clone();
        async move {
            let (scope, f) = Filter::parse_mem0(&filter).unwrap();
            let scope = s.merge(scope).unwrap();
            let mut opts = ListOptions::default();
            opts.filters = f.clone();
            let mut listed: Vec<String> = memory
                .get_all(&scope, opts)
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.memory)
                .collect();
            listed.sort();
            let mut sopts = SearchOptions::default();
            sopts.filters = f;
            let mut searched: Vec<String> = memory
                .search("food sport", &scope, sopts)
                .await
                .unwrap()
                .results
                .into_iter()
                .map(|m| m.memory)
                .collect();
            searched.sort();
            assert_eq!(listed, searched, "search and get_all disagree for {filter}");
            listed
        }
    };
    assert_eq!(
        texts(json!({"category": "food"})).await,
        vec!["Dislikes olives", "Pizza night on Fridays"]
    );
    assert_eq!(
        texts(json!({"rating": {"gte": 4}})).await,
        vec!["Pizza night on Fridays", "Runs every morning"]
    );
    assert_eq!(
        texts(json!({"rating": {"lt": 3}})).await,
        vec!["Dislikes olives"]
    );
    assert_eq!(
        texts(json!({"rating": {"in": [2, 4]}})).await,
        vec!["Dislikes olives", "Runs every morning"]
    );
    assert_eq!(
        texts(json!({"rating": {"nin": [2, 4]}})).await,
        vec!["Pizza night on Fridays"]
    );
    assert_eq!(
        texts(json!({"category": {"ne": "food"}})).await,
        vec!["Runs every morning"]
    );
    assert_eq!(
        texts(json!({"tags": {"contains": "weekly"}})).await,
        vec!["Pizza night on Fridays"]
    );
    assert_eq!(
        texts(json!({"note": {"icontains": "early"}})).await,
        vec!["Runs every morning"]
    );
    assert_eq!(
        texts(json!({"note": "*"})).await,
        vec!["Runs every morning"]
    );
    assert_eq!(
        texts(json!({"NOT": {"category": "food"}})).await,
        vec!["Runs every morning"]
    );
    assert_eq!(
        texts(json!({"OR": [{"rating": 2}, {"category": "sport"}]})).await,
        vec!["Dislikes olives", "Runs every morning"]
    );
    assert_eq!(
        texts(json!({"user_id": "meta", "AND": [{"category": "food"}, {"rating": {"gt": 3}}]}))
            .await,
        vec!["Pizza night on Fridays"]
    );
    assert!(texts(json!({"category": "travel"})).await.is_empty());
}

async fn another_process_writes_are_seen_by_search(b: Backend) {
    let Some(e) = env(b).await else { return };
    let s = Scope::user("shared");
    e.memory
        .add("Collects stamps", &s, AddOptions::raw())
        .await
        .unwrap();
    // Warm this instance's vector cache.
    assert_eq!(
        e.memory
            .search("stamps", &s, SearchOptions::default())
            .await
            .unwrap()
            .results
            .len(),
        1
    );
    // A second Memory on the same file: its own pool and cache, as another process has.
    let other = Memory::open(&e.config()).await.unwrap();
    let added = other
        .add("Collects vintage coins", &s, AddOptions::raw())
        .await
        .unwrap();
    let seen = e
        .memory
        .search("collects", &s, SearchOptions::default())
        .await
        .unwrap();
    assert_eq!(
        seen.results.len(),
        2,
        "a write by another process must be visible"
    );
    other
        .delete(&added.results[0].id.to_string(), &s)
        .await
        .unwrap();
    let seen = e
        .memory
        .search("collects", &s, SearchOptions::default())
        .await
        .unwrap();
    assert_eq!(
        seen.results.len(),
        1,
        "a deletion by another process must be visible"
    );
    other
        .update(
            &seen.results[0].id.to_string(),
            &s,
            "Collects rare stamps from Japan",
            None,
        )
        .await
        .unwrap();
    let seen = e
        .memory
        .search("japan", &s, SearchOptions::default())
        .await
        .unwrap();
    assert_eq!(seen.results[0].memory, "Collects rare stamps from Japan");
    other.delete_all(&s).await.unwrap();
    assert!(
        e.memory
            .search("collects", &s, SearchOptions::default())
            .await
            .unwrap()
            .results
            .is_empty()
    );
}

async fn explicit_update_reembeds_and_replaces_metadata(b: Backend) {
    let Some(e) = env(b).await else { return };
    let s = Scope::user("upd");
    let meta = json!({"source": "chat"}).as_object().unwrap().clone();
    let id = e
        .memory
        .add("Likes trains", &s, AddOptions::raw().metadata(meta))
        .await
        .unwrap()
        .results[0]
        .id;
    let new_meta = json!({"source": "profile"}).as_object().unwrap().clone();
    let item = e
        .memory
        .update(
            &id.to_string(),
            &s,
            "Likes high-speed trains",
            Some(new_meta),
        )
        .await
        .unwrap();
    assert_eq!(item.id, id);
    assert_eq!(item.memory, "Likes high-speed trains");
    assert_eq!(item.metadata["source"], "profile");
    assert!(item.updated_at > item.created_at);
    let top = e
        .memory
        .search("high-speed", &s, SearchOptions::default())
        .await
        .unwrap();
    assert_eq!(top.results[0].id, id);
    let missing = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        e.memory
            .update(&missing, &s, "x", None)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        e.memory.delete(&missing, &s).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

async fn without_a_provider_reads_work_and_writes_say_what_to_set(b: Backend) {
    let Some(e) = env(b).await else { return };
    let s = Scope::user("np");
    e.memory
        .add("Knows Rust", &s, AddOptions::raw())
        .await
        .unwrap();
    let bare = Config::default().with_database_url(e.url.clone());
    let m = Memory::open(&bare).await.unwrap();
    assert_eq!(
        m.get_all(&s, ListOptions::default()).await.unwrap().len(),
        1
    );
    let err = m.add("x", &s, AddOptions::raw()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ProviderNotConfigured);
    assert!(
        err.to_string().contains("OPENAI_API_KEY") && err.to_string().contains("OPENAI_BASE_URL")
    );
    assert_eq!(
        m.search("rust", &s, SearchOptions::default())
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::ProviderNotConfigured
    );
}

async fn reset_forgets_everything(b: Backend) {
    let Some(e) = env(b).await else { return };
    e.memory
        .add("a fact", &Scope::user("r1"), AddOptions::raw())
        .await
        .unwrap();
    e.memory
        .add("another fact", &Scope::agent("r2"), AddOptions::raw())
        .await
        .unwrap();
    e.memory.reset().await.unwrap();
    assert!(
        e.memory
            .get_all(&Scope::user("r1"), ListOptions::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        e.memory
            .get_all(&Scope::agent("r2"), ListOptions::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!e.holds("another fact").await);
    // A reset store accepts a new embedder.
    let other = Memory::open(&e.config_with_dims(128)).await.unwrap();
    other
        .add("fresh start", &Scope::user("r1"), AddOptions::raw())
        .await
        .unwrap();
}

async fn two_processes_adding_at_once_lose_nothing(b: Backend) {
    let Some(e) = env(b).await else { return };
    // Record the embedder first, as any earlier write would have.
    e.memory
        .add("warm-up", &Scope::user("someone-else"), AddOptions::raw())
        .await
        .unwrap();
    let bin = env!("CARGO_BIN_EXE_homi-test-writer");
    let run = |prefix: &'static str| {
        let mut cmd = tokio::process::Command::new(bin);
        cmd.args([
            e.url.as_str(),
            &e.fake.base_url(),
            "racer",
            prefix,
            "150",
            "100",
        ]);
        async move { cmd.output().await.unwrap() }
    };
    let (a, c) = tokio::join!(run("alpha"), run("beta"));
    let mut added = 0;
    let mut none = 0;
    for out in [&a, &c] {
        assert!(
            out.status.success(),
            "writer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        added += v["added"].as_u64().unwrap();
        none += v["none"].as_u64().unwrap();
    }
    // Each shared fact was added exactly once; every unique fact was added.
    assert_eq!(added, 150 + 100 + 100);
    assert_eq!(none, 150);
    let racer = Scope::user("racer");
    let all = e
        .memory
        .get_all(&racer, ListOptions::default().limit(10_000))
        .await
        .unwrap();
    assert_eq!(all.len(), 350);
    let distinct: std::collections::HashSet<&str> = all.iter().map(|m| m.memory.as_str()).collect();
    assert_eq!(distinct.len(), 350, "a fact was stored twice");
    for m in all.iter().step_by(7) {
        let h = e.memory.history(&m.id.to_string(), &racer).await.unwrap();
        assert_eq!(h.len(), 1, "history of {} is {h:?}", m.memory);
        assert_eq!(h[0].event, Event::Add);
        assert_eq!(h[0].new_memory.as_deref(), Some(m.memory.as_str()));
    }
    assert_eq!(e.count_rows("racer").await, 350);
}

async fn keyword_semantic_and_hybrid_search(b: Backend) {
    let Some(e) = env(b).await else { return };
    let s = Scope::user("hana");
    let texts = [
        "Hana adopted a greyhound named Biscuit",
        "Hana runs marathons in autumn",
        "Hana is learning the cello",
        "Hana's sister lives in Lisbon",
    ];
    for t in texts {
        e.memory.add(t, &s, AddOptions::raw()).await.unwrap();
    }
    // Another user's memory holds the same words: it is never found.
    e.memory
        .add(
            "Biscuit the greyhound won a race",
            &Scope::user("ivo"),
            AddOptions::raw(),
        )
        .await
        .unwrap();
    let search = |q: &'static str, opts: SearchOptions| {
        let m = e.memory.clone();
        let s = s.clone();
        async move { m.search(q, &s, opts).await.unwrap() }
    };
    for mode in [
        SearchMode::Keyword,
        SearchMode::Hybrid,
        SearchMode::Semantic,
    ] {
        let r = search(
            "Where does the sister live? Lisbon?",
            SearchOptions::default().mode(mode),
        )
        .await;
        assert_eq!(
            r.results[0].memory, "Hana's sister lives in Lisbon",
            "{mode:?}"
        );
        let scores: Vec<f32> = r.results.iter().map(|m| m.score.unwrap()).collect();
        assert!(
            scores.iter().all(|x| (0.0..=1.0).contains(x)),
            "{mode:?} {scores:?}"
        );
        assert!(
            scores.windows(2).all(|w| w[0] >= w[1]),
            "{mode:?} {scores:?}"
        );
        assert!(
            r.results
                .iter()
                .all(|m| m.user_id.as_deref() == Some("hana"))
        );
    }
    // Keyword mode finds only memories holding a word, stemmed ("marathon").
    let r = search(
        "marathon",
        SearchOptions::default().mode(SearchMode::Keyword),
    )
    .await;
    let found: Vec<&str> = r.results.iter().map(|m| m.memory.as_str()).collect();
    assert_eq!(found, ["Hana runs marathons in autumn"]);
    assert_eq!(r.results[0].score, Some(1.0));
    assert_eq!(r.usage.embedding_calls, 0, "keyword search embeds nothing");
    // Nothing but stop words and punctuation: no keyword match, no error.
    let r = search(
        "what is it?",
        SearchOptions::default().mode(SearchMode::Keyword),
    )
    .await;
    assert!(r.results.is_empty());
    // Query syntax of either database is plain text here.
    for q in [
        "\"cello",
        "cello OR NOT",
        "cello & !(",
        "cello:*",
        "NEAR(cello",
    ] {
        let r = search(q, SearchOptions::default().mode(SearchMode::Keyword)).await;
        assert_eq!(r.results[0].memory, "Hana is learning the cello", "{q}");
    }
    // Hybrid: a memory holding the rare word comes first, and the limit,
    // threshold and filters hold.
    let r = search("greyhound", SearchOptions::default().limit(2)).await;
    assert_eq!(r.results.len(), 2);
    assert_eq!(
        r.results[0].memory,
        "Hana adopted a greyhound named Biscuit"
    );
    assert_eq!(r.usage.embedding_calls, 1);
    let top = r.results[0].score.unwrap();
    let r = search("greyhound", SearchOptions::default().threshold(top)).await;
    assert!(r.results.iter().all(|m| m.score.unwrap() >= top));
    assert_eq!(r.results.len(), 1);
    let id = e
        .memory
        .add(
            "Hana's greyhound sleeps all day",
            &s,
            AddOptions::raw().metadata(json!({"topic": "pets"}).as_object().unwrap().clone()),
        )
        .await
        .unwrap()
        .results[0]
        .id;
    for mode in [SearchMode::Keyword, SearchMode::Hybrid] {
        let r = search(
            "greyhound",
            SearchOptions::default()
                .mode(mode)
                .filters(Filter::eq("topic", "pets")),
        )
        .await;
        let found: Vec<&str> = r.results.iter().map(|m| m.memory.as_str()).collect();
        assert_eq!(found, ["Hana's greyhound sleeps all day"], "{mode:?}");
    }
    // An update re-indexes the words; a deletion takes them away.
    e.memory
        .update(&id.to_string(), &s, "Hana's whippet sleeps all day", None)
        .await
        .unwrap();
    let kw = |q: &'static str| search(q, SearchOptions::default().mode(SearchMode::Keyword));
    assert_eq!(kw("whippet").await.results.len(), 1);
    assert_eq!(kw("greyhound").await.results.len(), 1);
    e.memory.delete(&id.to_string(), &s).await.unwrap();
    assert!(kw("whippet").await.results.is_empty());
    // BM25 on both stores: a rare word counts more than a common one, even
    // in a longer memory.
    let r8 = Scope::user("rare");
    for t in [
        "Caroline: hi",
        "Caroline: see you",
        "Caroline: thanks a lot",
        "Caroline: sounds good",
        "Caroline: ok then",
        "Melanie: my greyhound loves the long walks along the river every morning",
    ] {
        e.memory.add(t, &r8, AddOptions::raw()).await.unwrap();
    }
    let r = e
        .memory
        .search(
            "Caroline greyhound",
            &r8,
            SearchOptions::default().mode(SearchMode::Keyword),
        )
        .await
        .unwrap();
    assert_eq!(r.results.len(), 6);
    assert!(r.results[0].memory.contains("greyhound"), "{:?}", r.results);
    // Among equal scores the stores keep the earliest written, so the limit
    // cuts the same memories on each (the results then sort ties by id).
    let ties = Scope::user("ties");
    let written = [
        "kiln amber",
        "kiln cobalt",
        "kiln indigo",
        "kiln ochre",
        "kiln umber",
    ];
    for t in written {
        e.memory.add(t, &ties, AddOptions::raw()).await.unwrap();
    }
    let r = e
        .memory
        .search(
            "kiln",
            &ties,
            SearchOptions::default().mode(SearchMode::Keyword).limit(3),
        )
        .await
        .unwrap();
    let mut found: Vec<&str> = r.results.iter().map(|m| m.memory.as_str()).collect();
    found.sort_unstable();
    assert_eq!(found, written[..3], "{:?}", r.results);
    // A bad mode is the caller's error, naming the field.
    let err = "fuzzy".parse::<SearchMode>().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("mode"), "{err}");
}

/// A store's own hybrid read (SQLite answers it from its vector cache and
/// one snapshot) gives what its definition, a semantic search, a keyword
/// search and their neighbourhood, gives: with gaps from deletions, a
/// validity window, a filter, a memory written after the cache was loaded,
/// and few enough readable keyword matches that all of them are looked at.
async fn hybrid_candidates_match_their_definition(b: Backend) {
    use homi_core::store::{HybridCandidates, ReadParams, composed_hybrid_candidates};
    let Some(e) = env(b).await else { return };
    let s = Scope::user("yuki");
    let words = ["kayak", "river", "bread", "violin", "garden", "ferry"];
    let day = |d: i64| chrono::DateTime::from_timestamp(1_683_500_000 + d * 86_400, 0).unwrap();
    let mut ids = Vec::new();
    for i in 0..60usize {
        let text = format!(
            "Yuki: the {} and the {} on day {i}",
            words[i % words.len()],
            words[(i * 7 + 3) % words.len()]
        );
        let meta = json!({"even": i % 2 == 0}).as_object().unwrap().clone();
        let r = e
            .memory
            .add(
                text.as_str(),
                &s,
                AddOptions::raw().metadata(meta).timestamp(day(i as i64)),
            )
            .await
            .unwrap();
        ids.push(r.results[0].id);
    }
    for i in [5usize, 6, 7, 30] {
        e.memory.delete(&ids[i].to_string(), &s).await.unwrap();
    }
    let store = e.memory.store().clone();
    let mut query = vec![0.0f32; DIMS];
    query[3] = 1.0;
    query[11] = 0.5;
    let terms: Vec<String> = ["kayak", "ferri", "river"].map(String::from).to_vec();
    let sorted = |mut c: HybridCandidates| {
        c.loaded.sort_by_key(|n| n.item.id);
        c
    };
    let same = |own: HybridCandidates, composed: HybridCandidates, what: &str| {
        let (own, composed) = (sorted(own), sorted(composed));
        let ids = |c: &HybridCandidates| c.keyword.iter().map(|k| k.0).collect::<Vec<_>>();
        assert_eq!(ids(&own), ids(&composed), "{what}: keyword candidates");
        for (a, b) in own.keyword.iter().zip(&composed.keyword) {
            assert!((a.1 - b.1).abs() < 1e-4, "{what}: {a:?} {b:?}");
        }
        let shape = |c: &HybridCandidates| {
            c.loaded
                .iter()
                .map(|n| (n.item.id, n.before, n.after))
                .collect::<Vec<_>>()
        };
        assert_eq!(shape(&own), shape(&composed), "{what}: loaded memories");
        for (a, b) in own.loaded.iter().zip(&composed.loaded) {
            let (x, y) = (a.item.score.unwrap(), b.item.score.unwrap());
            assert!((x - y).abs() < 1e-4, "{what}: {x} {y}");
        }
        assert!(!own.loaded.is_empty(), "{what}");
    };
    let cases = [
        (
            "current, limit 8",
            ReadParams {
                limit: 8,
                ..ReadParams::default()
            },
        ),
        (
            "limit 1",
            ReadParams {
                limit: 1,
                ..ReadParams::default()
            },
        ),
        (
            "as of day 40",
            ReadParams {
                limit: 8,
                as_of: Some(day(40)),
                ..ReadParams::default()
            },
        ),
        (
            "threshold",
            ReadParams {
                limit: 8,
                threshold: Some(0.52),
                ..ReadParams::default()
            },
        ),
        (
            "as of day 3: most matches unreadable",
            ReadParams {
                limit: 8,
                as_of: Some(day(3)),
                ..ReadParams::default()
            },
        ),
        (
            "filtered",
            ReadParams {
                limit: 8,
                filter: Some(Filter::eq("even", true)),
                ..ReadParams::default()
            },
        ),
    ];
    for round in 0..2 {
        // Warm the scope's cache, then write after it (second round).
        e.memory
            .search("kayak", &s, SearchOptions::default())
            .await
            .unwrap();
        if round == 1 {
            e.memory
                .add("Yuki: a kayak on the ferry", &s, AddOptions::raw())
                .await
                .unwrap();
        }
        for (what, params) in &cases {
            let own = store
                .hybrid_candidates(&s, &query, &terms, params)
                .await
                .unwrap();
            let composed = composed_hybrid_candidates(&*store, &s, &query, &terms, params)
                .await
                .unwrap();
            same(own, composed, &format!("round {round}, {what}"));
        }
    }
    // Another user's scope holds none of them.
    let other = store
        .hybrid_candidates(&Scope::user("zed"), &query, &terms, &cases[0].1)
        .await
        .unwrap();
    assert!(other.loaded.is_empty() && other.keyword.is_empty());
}

async fn timestamp_sets_when_a_memory_was_said(b: Backend) {
    let Some(e) = env(b).await else { return };
    let s = Scope::user("tess");
    let said = homi_core::memory::parse_timestamp("timestamp", "2023-05-08T13:56:00Z").unwrap();
    let r = e
        .memory
        .add("Tess moved to Oslo", &s, AddOptions::raw().timestamp(said))
        .await
        .unwrap();
    let m = e
        .memory
        .get(&r.results[0].id.to_string(), &s)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.created_at, said);
    assert_eq!(m.valid_from, said);
    assert!(m.updated_at > said);
    // What was true before it was said does not hold it; after, it does.
    let before = said - chrono::Duration::days(1);
    let after = said + chrono::Duration::days(1);
    for mode in [SearchMode::Hybrid, SearchMode::Keyword] {
        let then = SearchOptions::default().mode(mode);
        let r = e
            .memory
            .search("Oslo", &s, then.clone().as_of(before))
            .await
            .unwrap();
        assert!(r.results.is_empty(), "{mode:?}");
        let r = e
            .memory
            .search("Oslo", &s, then.as_of(after))
            .await
            .unwrap();
        assert_eq!(r.results.len(), 1, "{mode:?}");
    }
    let all = e
        .memory
        .get_all(&s, ListOptions::default().as_of(before))
        .await
        .unwrap();
    assert!(all.is_empty());
    // Every accepted form, and a clear error for the rest.
    for v in [
        "1683554160",
        "2023-05-08 13:56",
        "2023-05-08T15:56:00+02:00",
    ] {
        assert_eq!(
            homi_core::memory::parse_timestamp("timestamp", v).unwrap(),
            said,
            "{v}"
        );
    }
    let err =
        homi_core::memory::parse_timestamp("timestamp", "1:56 pm on 8 May, 2023").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("timestamp"), "{err}");
}

/// Clients opened one by one with `open_shared` (as Python's `Memory`,
/// `Chat` and `Auth` are) share the store this process has open for the
/// database; `open` and in-memory databases always open their own.
async fn clients_opened_one_by_one_share_one_store(b: Backend) {
    let Some(e) = env(b).await else { return };
    let config = config_for(&e.fake, &e.url, DIMS);
    let a = Memory::open_shared(&config).await.unwrap();
    let same = Memory::open_shared(&config).await.unwrap();
    assert!(std::sync::Arc::ptr_eq(a.store(), same.store()));
    let stores = homi_core::open::open_stores_shared(&config).await.unwrap();
    assert!(std::sync::Arc::ptr_eq(a.store(), &stores.memory));
    // What one writes, the other reads at once (one store, one cache).
    let alice = Scope::user("alice");
    a.add("I keep bees on the roof", &alice, AddOptions::raw())
        .await
        .unwrap();
    assert_eq!(
        same.get_all(&alice, ListOptions::default())
            .await
            .unwrap()
            .len(),
        1
    );
    // `open` opens its own; so does every in-memory database.
    assert!(!std::sync::Arc::ptr_eq(a.store(), e.memory.store()));
    let in_memory = config_for(&e.fake, "sqlite::memory:", DIMS);
    let one = Memory::open_shared(&in_memory).await.unwrap();
    let two = Memory::open_shared(&in_memory).await.unwrap();
    assert!(!std::sync::Arc::ptr_eq(one.store(), two.store()));
    // Once nothing uses it, the next shared open opens it again.
    drop((a, same, stores));
    let again = Memory::open_shared(&config).await.unwrap();
    assert_eq!(
        again
            .get_all(&alice, ListOptions::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

conformance!(
    two_processes_adding_at_once_lose_nothing,
    verbatim_add_stores_each_non_system_message,
    exact_duplicates_touch_nothing,
    search_scores_are_in_range_and_sorted,
    inferred_add_uses_one_chat_call_and_at_most_two_embedding_requests,
    update_keeps_the_id_and_history_keeps_the_old_text,
    contradiction_supersedes_and_as_of_still_sees_the_old_fact,
    none_decision_writes_nothing,
    a_fact_equal_to_a_memory_is_not_added_twice,
    malformed_model_json_is_repaired_once,
    invalid_answers_twice_fail_clearly_and_write_nothing,
    provider_failures_are_clear_and_leave_nothing_half_written,
    deleted_text_is_found_nowhere_in_the_database_files,
    scopes_never_mix,
    delete_all_removes_every_memory_not_one_page,
    another_embedder_dimension_is_a_clear_error,
    invalid_input_names_the_field,
    an_empty_scope_is_an_error_never_every_user,
    metadata_filters,
    another_process_writes_are_seen_by_search,
    explicit_update_reembeds_and_replaces_metadata,
    without_a_provider_reads_work_and_writes_say_what_to_set,
    reset_forgets_everything,
    keyword_semantic_and_hybrid_search,
    hybrid_candidates_match_their_definition,
    timestamp_sets_when_a_memory_was_said,
    clients_opened_one_by_one_share_one_store,
);
