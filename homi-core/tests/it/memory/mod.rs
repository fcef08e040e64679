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

mod scopes;
mod search;

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
            Backend::Sqlite => sqlite_files_hold(&self.db_path(), needle).await,
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

/// Pages of a listing: every memory once, in the listing's order, with
/// memories said at the same moment; a memory written between pages is on
/// none of the later ones; the cursor's own memory deleted between pages
/// loses nothing; a cursor that is not one is an error naming it.
async fn pages_list_every_memory_once(b: Backend) {
    let Some(e) = env(b).await else { return };
    let ann = Scope::user("ann");
    let same = homi_core::memory::parse_timestamp("timestamp", "2024-05-01T10:00:00Z").unwrap();
    // Four said at the same moment (one add), three at their own.
    let four = homi_core::Messages::from_json(&json!(
        ["a1", "a2", "a3", "a4"].map(|t| json!({"role": "user", "content": t}))
    ))
    .unwrap();
    e.memory
        .add(four, &ann, AddOptions::raw().timestamp(same))
        .await
        .unwrap();
    for t in ["b1", "b2", "b3"] {
        e.memory.add(t, &ann, AddOptions::raw()).await.unwrap();
    }
    let all: Vec<String> = e
        .memory
        .get_all(&ann, ListOptions::default())
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.memory)
        .collect();
    assert_eq!(all.len(), 7);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = e
            .memory
            .list_page(&ann, ListOptions::default().limit(2), cursor.as_deref())
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.results.iter().map(|m| m.memory.clone()));
        if pages == 1 {
            // Written after the first page: newer, so on none of the next.
            e.memory.add("c1", &ann, AddOptions::raw()).await.unwrap();
        }
        if pages == 2 {
            // The cursor's own memory goes: nothing after it is lost.
            let last = page.results.last().unwrap();
            e.memory.delete(&last.id.to_string(), &ann).await.unwrap();
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    assert!(!seen.contains(&"c1".to_owned()), "{seen:?}");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 7, "every memory once at least: {seen:?}");
    // In the listing's order, except where the deleted cursor's equals came again.
    let firsts: Vec<&String> = seen.iter().take(4).collect();
    assert_eq!(firsts, all.iter().take(4).collect::<Vec<_>>());
    let err = e
        .memory
        .list_page(&ann, ListOptions::default(), Some("not-a-cursor"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), homi_core::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("cursor"), "{err}");
}

/// Expiry (mem0's `expiration_date`): a memory past its end leaves search,
/// get_all and count unless `show_expired`; `get` and `as_of` still see it;
/// its text may be said again; an edit moves or lifts the end (reviving a
/// text another live memory holds is a conflict); an end before the start
/// is refused naming the field; a metadata edit needs no embedding.
async fn expired_memories_leave_reads_unless_shown(b: Backend) {
    let Some(e) = env(b).await else { return };
    let ann = Scope::user("ann");
    // Stores keep microseconds.
    let now =
        chrono::DateTime::from_timestamp_micros(chrono::Utc::now().timestamp_micros()).unwrap();
    let day = chrono::Duration::days(1);
    let lisbon = "Booked a trip to Lisbon";
    let past = AddOptions::raw()
        .timestamp(now - day * 10)
        .expires_at(now - day);
    let old = e.memory.add(lisbon, &ann, past).await.unwrap().results[0].id;
    e.memory
        .add("Drinks green tea", &ann, AddOptions::raw())
        .await
        .unwrap();
    let pass = AddOptions::raw().expires_at(now + day);
    let conf = e
        .memory
        .add("Has a conference pass", &ann, pass.clone())
        .await
        .unwrap();
    let conf = conf.results[0].id;
    // The live expiring memory is a duplicate of itself; the expired one is not.
    let again = e
        .memory
        .add("Has a conference pass", &ann, pass)
        .await
        .unwrap();
    assert_eq!(
        (again.results[0].event, again.results[0].id),
        (Event::None, conf)
    );

    let texts = |items: Vec<homi_core::MemoryItem>| {
        let mut t: Vec<String> = items.into_iter().map(|m| m.memory).collect();
        t.sort();
        t
    };
    let listed = e
        .memory
        .get_all(&ann, ListOptions::default())
        .await
        .unwrap();
    assert_eq!(texts(listed), ["Drinks green tea", "Has a conference pass"]);
    let shown = ListOptions::default().show_expired(true);
    assert_eq!(
        e.memory.get_all(&ann, shown.clone()).await.unwrap().len(),
        3
    );
    assert_eq!(
        e.memory.count(&ann, ListOptions::default()).await.unwrap(),
        2
    );
    assert_eq!(e.memory.count(&ann, shown).await.unwrap(), 3);
    for mode in [
        SearchMode::Hybrid,
        SearchMode::Semantic,
        SearchMode::Keyword,
    ] {
        let found = |show| {
            let opts = SearchOptions::default().mode(mode).show_expired(show);
            let m = &e.memory;
            let ann = &ann;
            async move { texts(m.search("trip to Lisbon", ann, opts).await.unwrap().results) }
        };
        assert!(!found(false).await.contains(&lisbon.to_owned()), "{mode:?}");
        assert!(found(true).await.contains(&lisbon.to_owned()), "{mode:?}");
    }
    let then = ListOptions::default().as_of(now - day * 5);
    assert_eq!(texts(e.memory.get_all(&ann, then).await.unwrap()), [lisbon]);
    let got = e.memory.get(&old.to_string(), &ann).await.unwrap().unwrap();
    assert_eq!(got.valid_to, Some(now - day));
    assert!(!got.is_current());
    let last_day = (now - day - chrono::Duration::microseconds(1)).date_naive();
    assert_eq!(
        homi_core::memory::mem0::expiration_date(&got),
        Some(last_day.to_string())
    );

    // Said again, the text is a new memory; reviving the old one would make two.
    let new = e
        .memory
        .add(lisbon, &ann, AddOptions::raw())
        .await
        .unwrap()
        .results[0]
        .clone();
    assert_eq!(new.event, Event::Add);
    let lift = homi_core::MemoryEdit::default().expires_at(None);
    let err = e
        .memory
        .edit(&old.to_string(), &ann, lift.clone())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    e.memory.delete(&new.id.to_string(), &ann).await.unwrap();
    let revived = e.memory.edit(&old.to_string(), &ann, lift).await.unwrap();
    assert_eq!(revived.valid_to, None);
    assert!(revived.is_current());
    let listed = e
        .memory
        .get_all(&ann, ListOptions::default())
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);

    // Moving an end: before the start is refused; a metadata edit embeds nothing.
    let early = homi_core::MemoryEdit::default().expires_at(Some(now - day * 20));
    let err = e
        .memory
        .edit(&conf.to_string(), &ann, early)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("expiration_date"), "{err}");
    let before = e.fake.stats();
    let meta = json!({"kind": "event"}).as_object().unwrap().clone();
    let edit = homi_core::MemoryEdit::default()
        .merge_metadata(meta)
        .expires_at(Some(now + day * 2));
    let edited = e.memory.edit(&conf.to_string(), &ann, edit).await.unwrap();
    assert_eq!(edited.valid_to, Some(now + day * 2));
    assert_eq!(edited.metadata["kind"], "event");
    assert_eq!(e.fake.stats(), before);
    let history = e.memory.history(&conf.to_string(), &ann).await.unwrap();
    assert_eq!(history.len(), 2);
    let err = e
        .memory
        .edit(&conf.to_string(), &ann, homi_core::MemoryEdit::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    // An end already past when added is refused before anything is written.
    let err = e
        .memory
        .add(
            "Parked on level 3",
            &ann,
            AddOptions::raw().expires_at(now - day),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("expiration_date"), "{err}");
    assert_eq!(
        e.memory
            .get_all(&ann, ListOptions::default())
            .await
            .unwrap()
            .len(),
        3
    );
}

conformance!(
    expired_memories_leave_reads_unless_shown,
    pages_list_every_memory_once,
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
);
