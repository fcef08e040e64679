//! Deletion that leaves nothing behind, scopes that never mix, and input
//! errors that name their field.

use super::*;

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
        show_expired: false,
        threshold: None,
        after: None,
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

/// A delete-all that finds nothing writes nothing: no change is stamped (on
/// SQLite, which would make every scope's vector cache load again), no
/// history, and other scopes are untouched.
async fn a_delete_all_that_finds_nothing_changes_nothing(b: Backend) {
    let Some(e) = env(b).await else { return };
    e.memory
        .add("keep me", &Scope::user("keeper"), AddOptions::raw())
        .await
        .unwrap();
    let state = || async {
        match e.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&e.url).await.unwrap();
                let row: (i64, i64, i64) = sqlx::query_as(
                    "SELECT seq, wipe_seq, (SELECT count(*) FROM homi_memory_history) \
                     FROM homi_store_state WHERE id = 1",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                pool.close().await;
                row
            }
            Backend::Postgres => (0, 0, postgres_history_rows(&e.url).await),
        }
    };
    let before = state().await;
    assert_eq!(
        e.memory.delete_all(&Scope::user("nobody")).await.unwrap(),
        0
    );
    assert_eq!(state().await, before);
    assert_eq!(e.count_rows("keeper").await, 1);
}

async fn a_delete_all_wins_over_work_in_flight(b: Backend) {
    let Some(e) = env(b).await else { return };
    let s = Scope::user("lena");
    e.memory
        .add("Lives in Lisbon", &s, AddOptions::raw())
        .await
        .unwrap();
    // The provider answers slowly: the extraction is still being worked
    // out when the user forgets everything.
    e.fake.set_latency(Duration::from_millis(600));
    e.fake.push_reply(ops(json!([
        {"text": "Lives in Porto", "event": "UPDATE", "target": 0},
        {"text": "Has a dog named Rex", "event": "ADD"}
    ])));
    let (memory, scope) = (e.memory.clone(), s.clone());
    let in_flight = tokio::spawn(async move {
        memory
            .add(
                "I moved to Porto with my dog Rex",
                &scope,
                AddOptions::default(),
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(!in_flight.is_finished(), "the extraction was not in flight");
    assert_eq!(e.memory.delete_all(&s).await.unwrap(), 1);
    let err = in_flight.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(
        e.memory
            .get_all(&s, Default::default())
            .await
            .unwrap()
            .is_empty(),
        "an extraction begun before the delete-all wrote after it"
    );
    // Work begun after the delete-all writes as usual.
    e.fake.set_latency(Duration::ZERO);
    e.memory
        .add("Has a dog named Rex", &s, AddOptions::raw())
        .await
        .unwrap();
    assert_eq!(e.count_rows("lena").await, 1);
}

async fn an_update_never_brings_a_deleted_memory_back(b: Backend) {
    let Some(e) = env(b).await else { return };
    let s = Scope::user("milo");
    let id = e
        .memory
        .add("Works at the bakery", &s, AddOptions::raw())
        .await
        .unwrap()
        .results[0]
        .id;
    e.fake.set_latency(Duration::from_millis(600));
    e.fake.push_reply(ops(json!([
        {"text": "Works at the bakery on Main Street", "event": "UPDATE", "target": 0}
    ])));
    let (memory, scope) = (e.memory.clone(), s.clone());
    let in_flight = tokio::spawn(async move {
        memory
            .add(
                "The bakery is on Main Street",
                &scope,
                AddOptions::default(),
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(900)).await;
    // The memory the model is about to update is deleted meanwhile.
    e.memory.delete(&id.to_string(), &s).await.unwrap();
    let added = in_flight.await.unwrap().unwrap();
    assert!(added.results.is_empty(), "{:?}", added.results);
    assert!(
        e.memory
            .get_all(&s, Default::default())
            .await
            .unwrap()
            .is_empty()
    );
    e.fake.set_latency(Duration::ZERO);
}

/// SQLite: one scope's delete-all drops that scope's rows from the vector
/// caches (tombstones), not every scope's cache (no store-wide wipe mark).
#[tokio::test]
async fn a_delete_all_leaves_other_scopes_caches_alone() {
    let Some(e) = env(Backend::Sqlite).await else {
        return;
    };
    let (ann, bob) = (Scope::user("ann"), Scope::user("bob"));
    for (scope, text) in [
        (&ann, "Ann rows"),
        (&ann, "Ann sails"),
        (&bob, "Bob bakes bread"),
    ] {
        e.memory.add(text, scope, AddOptions::raw()).await.unwrap();
    }
    // Bob's vectors are cached by his search.
    let found = e
        .memory
        .search("bread", &bob, Default::default())
        .await
        .unwrap();
    assert_eq!(found.results.len(), 1);
    let state = || async {
        let pool = sqlx::SqlitePool::connect(&e.url).await.unwrap();
        let row: (i64, i64) = sqlx::query_as(
            "SELECT wipe_seq, (SELECT count(*) FROM homi_memory_tombstones) \
             FROM homi_store_state WHERE id = 1",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        row
    };
    let (wipe_before, tombs_before) = state().await;
    assert_eq!(e.memory.delete_all(&ann).await.unwrap(), 2);
    let (wipe_after, tombs_after) = state().await;
    assert_eq!(
        wipe_after, wipe_before,
        "a delete-all marked every cache stale"
    );
    assert_eq!(
        tombs_after - tombs_before,
        2,
        "one tombstone per deleted memory"
    );
    let found = e
        .memory
        .search("bread", &bob, Default::default())
        .await
        .unwrap();
    assert_eq!(found.results[0].memory, "Bob bakes bread");
    assert!(
        e.memory
            .search("sails", &ann, Default::default())
            .await
            .unwrap()
            .results
            .is_empty()
    );
}

#[cfg(feature = "postgres")]
async fn postgres_history_rows(url: &str) -> i64 {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let n = sqlx::query_scalar("SELECT count(*) FROM homi_memory_history")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

#[cfg(not(feature = "postgres"))]
async fn postgres_history_rows(_: &str) -> i64 {
    unreachable!("Postgres tests are compiled only with the postgres feature")
}

conformance!(
    a_delete_all_that_finds_nothing_changes_nothing,
    a_delete_all_wins_over_work_in_flight,
    an_update_never_brings_a_deleted_memory_back,
    deleted_text_is_found_nowhere_in_the_database_files,
    scopes_never_mix,
    delete_all_removes_every_memory_not_one_page,
    another_embedder_dimension_is_a_clear_error,
    invalid_input_names_the_field,
    an_empty_scope_is_an_error_never_every_user,
);
