//! Export, import and re-embedding (`homi_core::transfer`), on SQLite and
//! Postgres with the fake provider over real HTTP: an exact, idempotent round
//! trip (across stores too), bad records refused whole, and a re-embedding
//! interrupted by a provider failure that resumes where it stopped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;

use homi_core::provider::openai::OpenAiEmbedder;
use homi_core::transfer::ImportReport;
use homi_core::{Access, AddOptions, Config, ErrorKind, ListOptions, Memory, Messages, Scope};
use homi_testkit::{FakeProvider, Fault, Target};
use serde_json::json;

use crate::common;
use common::Backend;

const DIMS: usize = 64;

async fn store_url(backend: Backend, dir: &tempfile::TempDir) -> Option<String> {
    common::database_url(backend, dir.path()).await
}

fn config(fake: &FakeProvider, url: &str) -> Config {
    common::provider_config(url, &fake.base_url(), DIMS, 0)
}

async fn export(memory: &Memory, access: &Access, embeddings: bool) -> Vec<u8> {
    let mut out = Vec::new();
    memory
        .export_jsonl(access, embeddings, &mut out, |_| {})
        .await
        .unwrap();
    out
}

/// Memories with every kind of past: a superseded one, an updated one (two
/// history entries), metadata, an actor and a role, three scopes.
async fn fill(memory: &Memory, fake: &FakeProvider) -> usize {
    let alice = Scope::user("alice");
    let mut meta = serde_json::Map::new();
    meta.insert("topic".into(), json!("food"));
    meta.insert("level".into(), json!(3));
    meta.insert("tags".into(), json!(["a", "b"]));
    memory
        .add("Is vegetarian", &alice, AddOptions::raw().metadata(meta))
        .await
        .unwrap();
    fake.push_reply(
        json!({"facts": [{"text": "Eats meat again", "event": "DELETE", "target": 0}]}).to_string(),
    );
    memory
        .add("I started eating meat again", &alice, AddOptions::default())
        .await
        .unwrap();
    let tea = memory
        .add("Likes tea", &alice, AddOptions::raw())
        .await
        .unwrap()
        .results[0]
        .id;
    memory
        .update(&tea.to_string(), &alice, "Likes green tea", None)
        .await
        .unwrap();
    let messages = Messages::from_json(&json!([
        {"role": "user", "content": "My name is Bob", "name": "bob"},
        {"role": "assistant", "content": "Nice to meet you, Bob"}
    ]))
    .unwrap();
    memory
        .add(
            messages,
            &Scope::user("bob").with_agent("tutor"),
            AddOptions::raw(),
        )
        .await
        .unwrap();
    memory
        .add(
            "Run notes",
            &Scope::default().with_run("r1"),
            AddOptions::raw(),
        )
        .await
        .unwrap();
    6
}

async fn round_trip_is_exact_and_idempotent(b: Backend) {
    let fake = FakeProvider::start().await.unwrap();
    let (d1, d2, d3) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let Some(url) = store_url(b, &d1).await else {
        return;
    };
    let source = Memory::open(&config(&fake, &url)).await.unwrap();
    let n = fill(&source, &fake).await;

    let plain = export(&source, &Access::Any, false).await;
    let with_vectors = export(&source, &Access::Any, true).await;
    let lines: Vec<serde_json::Value> = plain
        .split(|c| *c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), n);
    assert!(lines.iter().all(|l| l.get("embedding").is_none()));
    let superseded = lines
        .iter()
        .find(|l| l["memory"] == "Is vegetarian")
        .unwrap();
    assert!(superseded["valid_to"].is_string() && superseded["superseded_by"].is_string());
    assert_eq!(superseded["metadata"]["tags"], json!(["a", "b"]));
    let tea = lines
        .iter()
        .find(|l| l["memory"] == "Likes green tea")
        .unwrap();
    let events: Vec<&str> = tea["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["ADD", "UPDATE"]);
    let vectors = String::from_utf8(with_vectors.clone()).unwrap();
    assert!(vectors.contains("\"model\":\"text-embedding-3-small\""));

    // Into an empty store of the same kind: texts embedded again, and the
    // export of the copy is the same bytes.
    let url2 = store_url(b, &d2).await.unwrap();
    let copy = Memory::open(&config(&fake, &url2)).await.unwrap();
    // A search first: the copy's scope cache is warm when the import lands.
    let none = copy
        .search("meat", &Scope::user("alice"), Default::default())
        .await
        .unwrap();
    assert!(none.results.is_empty());
    let report = copy.import_jsonl(&plain[..], |_| {}).await.unwrap();
    assert_eq!(
        report,
        ImportReport {
            read: n as u64,
            imported: n as u64,
            already_present: 0,
            duplicates: 0,
            embedded: n as u64,
            ..ImportReport::default()
        }
    );
    assert_eq!(
        String::from_utf8(export(&copy, &Access::Any, false).await).unwrap(),
        String::from_utf8(plain.clone()).unwrap()
    );
    // Twice changes nothing.
    let again = copy.import_jsonl(&plain[..], |_| {}).await.unwrap();
    assert_eq!((again.imported, again.already_present), (0, n as u64));
    assert_eq!(export(&copy, &Access::Any, false).await, plain);
    // The copy answers like the source: the superseded fact is not current.
    let found = copy
        .search("meat", &Scope::user("alice"), Default::default())
        .await
        .unwrap();
    assert_eq!(found.results[0].memory, "Eats meat again");
    let current = copy
        .get_all(&Scope::user("alice"), ListOptions::default())
        .await
        .unwrap();
    assert!(current.iter().all(|m| m.memory != "Is vegetarian"));

    // With vectors: no model call, the same vectors back.
    let embedding_requests = fake.stats().embedding_requests;
    let url3 = match b {
        // Across stores: Postgres to SQLite.
        Backend::Postgres => format!("sqlite://{}", d3.path().join("homi.db").display()),
        Backend::Sqlite => store_url(b, &d3).await.unwrap(),
    };
    let third = Memory::open(&config(&fake, &url3)).await.unwrap();
    let report = third.import_jsonl(&with_vectors[..], |_| {}).await.unwrap();
    assert_eq!((report.imported, report.embedded), (n as u64, 0));
    assert_eq!(fake.stats().embedding_requests, embedding_requests);
    assert_eq!(
        String::from_utf8(export(&third, &Access::Any, true).await).unwrap(),
        vectors
    );

    // One scope only.
    let bobs = export(&source, &Scope::user("bob").into(), false).await;
    let bobs = String::from_utf8(bobs).unwrap();
    assert_eq!(bobs.lines().count(), 2);
    assert!(bobs.contains("My name is Bob") && !bobs.contains("alice"));
}

async fn bad_records_are_refused_whole(b: Backend) {
    let fake = FakeProvider::start().await.unwrap();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let Some(url) = store_url(b, &d1).await else {
        return;
    };
    let source = Memory::open(&config(&fake, &url)).await.unwrap();
    fill(&source, &fake).await;
    let plain = String::from_utf8(export(&source, &Access::Any, false).await).unwrap();
    let url2 = store_url(b, &d2).await.unwrap();
    let target = Memory::open(&config(&fake, &url2)).await.unwrap();

    let err = target
        .import_jsonl("{\"id\": 1}\n".as_bytes(), |_| {})
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("line 1"), "{err}");

    // A text edited without its hash: the whole batch is refused.
    let tampered = plain.replacen("Likes green tea", "Likes coffee", 1);
    let err = target
        .import_jsonl(tampered.as_bytes(), |_| {})
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("hash"), "{err}");
    // No scope at all.
    let mut record: serde_json::Value =
        serde_json::from_str(plain.lines().next().unwrap()).unwrap();
    for k in ["user_id", "agent_id", "run_id"] {
        record.as_object_mut().unwrap().remove(k);
    }
    let err = target
        .import_jsonl(record.to_string().as_bytes(), |_| {})
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(export(&target, &Access::Any, false).await.is_empty());
}

async fn reembed_resumes_after_an_interruption(b: Backend) {
    let fake = FakeProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = store_url(b, &dir).await else {
        return;
    };
    let old_config = config(&fake, &url);
    let memory = Memory::open(&old_config).await.unwrap();
    for user in ["u1", "u2", "u3"] {
        let texts: Vec<serde_json::Value> = (0..100)
            .map(|i| json!({"role": "user", "content": format!("{user} fact number {i}")}))
            .collect();
        memory
            .add(
                Messages::from_json(&json!(texts)).unwrap(),
                &Scope::user(user),
                AddOptions::raw(),
            )
            .await
            .unwrap();
    }
    let old_export = export(&memory, &Access::Any, true).await;
    // Warm the cache of one scope on the old vectors.
    let warm = memory
        .search("u3 fact number 5", &Scope::user("u3"), Default::default())
        .await
        .unwrap();
    assert_eq!(warm.results[0].memory, "u3 fact number 5");
    let new_config = old_config
        .clone()
        .with_embedding_model("all-minilm-l6-v2", None);
    let embedder = OpenAiEmbedder::new(&new_config.provider, &new_config.embedder).unwrap();
    let store = Arc::clone(memory.store());

    // The provider fails after the first batch: the run stops with it staged.
    fake.push_fault_after(Target::Embeddings, Fault::ServerError, 100, 1);
    let err = memory.reembed(&embedder, 128, |_| {}).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ProviderUnavailable, "{err}");
    fake.reset();
    // The store still works on the old embedder meanwhile; a memory whose
    // new vector was staged changes its text, so it must be embedded again.
    let first = memory
        .get_all(&Scope::user("u1"), ListOptions::default().limit(1000))
        .await
        .unwrap();
    let staged_ids: Vec<uuid::Uuid> = {
        let mut ids: Vec<uuid::Uuid> = store
            .export(&Access::Any, None, 300, false)
            .await
            .unwrap()
            .iter()
            .map(|r| r.item.id)
            .collect();
        ids.truncate(128);
        ids
    };
    let changed = first.iter().find(|m| staged_ids.contains(&m.id)).unwrap();
    memory
        .update(
            &changed.id.to_string(),
            &Scope::user("u1"),
            "u1 changed fact",
            None,
        )
        .await
        .unwrap();
    assert!(Memory::open(&new_config).await.is_err());
    // Forgetting leaves no staged vector behind: one memory, then a user.
    assert_eq!(common::staged_vectors(&url).await, 128);
    let staged_u3: Vec<uuid::Uuid> = memory
        .get_all(&Scope::user("u3"), ListOptions::default().limit(1000))
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .filter(|id| staged_ids.contains(id))
        .collect();
    let gone = first
        .iter()
        .find(|m| staged_ids.contains(&m.id) && m.id != changed.id)
        .unwrap();
    memory
        .delete(&gone.id.to_string(), &Scope::user("u1"))
        .await
        .unwrap();
    memory.delete_all(&Scope::user("u3")).await.unwrap();
    assert_eq!(
        common::staged_vectors(&url).await,
        127 - staged_u3.len() as i64
    );
    let left = 200 - 1;

    let before = fake.stats().embedding_inputs;
    let mut seen = Vec::new();
    let report = memory
        .reembed(&embedder, 128, |p| seen.push(p.done))
        .await
        .unwrap();
    let resumed = 127 - staged_u3.len() as u64 - 1;
    assert_eq!(report.total, left);
    assert_eq!(report.resumed, resumed, "{report:?}");
    assert_eq!(report.embedded, left - resumed, "{report:?}");
    assert_eq!(
        report.from.as_deref(),
        Some("text-embedding-3-small (64 dims)")
    );
    assert_eq!(report.to.as_deref(), Some("all-minilm-l6-v2 (384 dims)"));
    assert_eq!(seen.first(), Some(&resumed));
    assert_eq!(seen.last(), Some(&left));
    assert_eq!(fake.stats().embedding_inputs - before, left - resumed);
    assert_eq!(common::staged_vectors(&url).await, 0);

    // The same store instance, its cache warm on the old vectors, searches
    // with the new embedder.
    let same = Memory::builder(Arc::clone(&store))
        .embedder(Arc::new(
            OpenAiEmbedder::new(&new_config.provider, &new_config.embedder).unwrap(),
        ))
        .build()
        .await
        .unwrap();
    let found = same
        .search("u2 fact number 7", &Scope::user("u2"), Default::default())
        .await
        .unwrap();
    assert_eq!(found.results[0].memory, "u2 fact number 7");
    // The export from before: what is still here is already present; what
    // was deleted since comes back, embedded by the new embedder (the
    // file's vectors are the old model's).
    let again = same.import_jsonl(&old_export[..], |_| {}).await.unwrap();
    assert_eq!(
        (again.imported, again.already_present, again.embedded),
        (300 - left, left, 300 - left)
    );

    // Now the new embedder opens and finds; the old one is refused.
    let moved = Memory::open(&new_config).await.unwrap();
    let found = moved
        .search("u2 fact number 42", &Scope::user("u2"), Default::default())
        .await
        .unwrap();
    assert_eq!(found.results[0].memory, "u2 fact number 42");
    let found = moved
        .search("u1 changed fact", &Scope::user("u1"), Default::default())
        .await
        .unwrap();
    assert_eq!(found.results[0].memory, "u1 changed fact");
    let err = Memory::open(&old_config).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    // Every vector has the new size.
    let records = moved
        .store()
        .export(&Access::Any, None, 1000, true)
        .await
        .unwrap();
    assert_eq!(records.len(), 300);
    assert!(records.iter().all(|r| {
        let e = r.embedding.as_ref().unwrap();
        e.model == "all-minilm-l6-v2" && e.vector.len() == 384
    }));
    // Once more: nothing to do.
    let report = memory.reembed(&embedder, 128, |_| {}).await.unwrap();
    assert_eq!(report.from, report.to);
    assert_eq!(report.embedded, 0);

    // A reset drops the vectors of a re-embedding left half done.
    let back = OpenAiEmbedder::new(&old_config.provider, &old_config.embedder).unwrap();
    fake.push_fault_after(Target::Embeddings, Fault::ServerError, 100, 1);
    memory.reembed(&back, 128, |_| {}).await.unwrap_err();
    fake.reset();
    assert_eq!(common::staged_vectors(&url).await, 128);
    moved.reset().await.unwrap();
    assert_eq!(common::staged_vectors(&url).await, 0);
}

conformance!(
    round_trip_is_exact_and_idempotent,
    bad_records_are_refused_whole,
    reembed_resumes_after_an_interruption
);
