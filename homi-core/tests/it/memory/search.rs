//! Filters, keyword, semantic and hybrid search, writes of other processes,
//! explicit updates, reset, timestamps and shared stores.

use super::*;

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
