//! Postgres-only behaviour: the choice between an exact scan and the HNSW
//! index for large scopes, which must never drop results; TLS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use homi_core::memory::{Filter, text_hash};
use homi_core::store::postgres::{PostgresOptions, PostgresStore};
use homi_core::store::{Change, EmbedderInfo, NewMemory, ReadParams, Store};
use homi_core::{Access, Scope};
use homi_testkit::lexical_embedding;
use serde_json::json;

use crate::common;

const DIMS: usize = 64;
const WORDS: [&str; 12] = [
    "tea", "coffee", "hiking", "chess", "lisbon", "tokyo", "jazz", "rust", "cats", "dogs", "pizza",
    "yoga",
];

fn text(i: usize) -> String {
    format!(
        "{} {} {} note {i}",
        WORDS[i % 12],
        WORDS[(i / 12) % 12],
        WORDS[(i * 7) % 12]
    )
}

/// The plan Postgres picks for the store's indexed query shape, with the
/// settings the store uses for large scopes.
async fn indexed_plan(store: &PostgresStore) -> String {
    let mut tx = store.pool().begin().await.unwrap();
    for s in [
        "SET LOCAL enable_seqscan = off",
        "SET LOCAL enable_sort = off",
        "SET LOCAL hnsw.iterative_scan = strict_order",
    ] {
        sqlx::query(s).execute(&mut *tx).await.unwrap();
    }
    let q = format!("[{}]", vec!["0.125"; DIMS].join(","));
    let sql = format!(
        "EXPLAIN SELECT m.id FROM homi_memories m WHERE m.user_id = 'big' AND m.superseded_by IS NULL \
         AND (m.valid_to IS NULL OR m.valid_to > now()) ORDER BY (m.embedding::vector({DIMS})) <=> '{q}'::vector({DIMS}), m.id LIMIT 10"
    );
    let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    rows.join("\n")
}

#[tokio::test]
async fn large_scopes_use_the_index_and_lose_nothing() {
    let Some(url) = common::postgres_url().await else {
        return;
    };
    let exact = PostgresStore::open_with(
        &url,
        PostgresOptions {
            exact_scan_max: usize::MAX,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    exact
        .bind_embedder(&EmbedderInfo {
            model: "lexical".into(),
            dims: DIMS,
        })
        .await
        .unwrap();
    let scope = Scope::user("big");
    let changes: Vec<Change> = (0..400)
        .map(|i| {
            let t = text(i);
            let mut metadata = serde_json::Map::new();
            metadata.insert("bucket".into(), json!(i % 16));
            Change::Add(NewMemory {
                id: uuid::Uuid::new_v4(),
                hash: text_hash(&t),
                embedding: lexical_embedding(&t, DIMS),
                text: t,
                metadata,
                scope: if i % 4 == 0 {
                    Scope::user("other")
                } else {
                    scope.clone()
                },
                actor_id: None,
                role: None,
                said_at: None,
                expires_at: None,
            })
        })
        .collect();
    exact
        .apply(&Access::Any, None, None, changes)
        .await
        .unwrap();
    sqlx::query("ANALYZE homi_memories")
        .execute(exact.pool())
        .await
        .unwrap();
    let indexed = PostgresStore::open_with(
        &url,
        PostgresOptions {
            exact_scan_max: 20,
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let plan = indexed_plan(&indexed).await;
    assert!(
        plan.contains("homi_memories_embedding_hnsw"),
        "the HNSW index is not used:\n{plan}"
    );
    let params = ReadParams {
        limit: 10,
        ..Default::default()
    };
    let mut hits = 0;
    for (n, q) in [
        "tea chess",
        "tokyo jazz",
        "rust cats",
        "pizza yoga",
        "coffee lisbon",
    ]
    .iter()
    .enumerate()
    {
        let v = lexical_embedding(q, DIMS);
        let want = exact.search(&scope, &v, &params).await.unwrap();
        let got = indexed.search(&scope, &v, &params).await.unwrap();
        assert_eq!(got.len(), 10, "query {n}");
        assert!(got.iter().all(|m| m.user_id.as_deref() == Some("big")));
        // Tie-aware recall: the texts repeat words, so many memories share a
        // score; a result counts when it is as close as the exact 10th.
        let tenth = want[9].score.unwrap();
        hits += got
            .iter()
            .filter(|m| m.score.unwrap() >= tenth - 1e-6)
            .count();
        // Scores are exact cosines on both paths.
        for m in &got {
            if let Some(w) = want.iter().find(|w| w.id == m.id) {
                assert!((w.score.unwrap() - m.score.unwrap()).abs() < 1e-5);
            }
        }
    }
    assert!(hits >= 45, "recall@10 {} is too low", hits as f64 / 50.0);

    // A filter that keeps few rows of a large scope: every match comes back.
    let (_, filter) = Filter::parse_mem0(&json!({"bucket": 3})).unwrap();
    let filtered = ReadParams {
        limit: 100,
        filter,
        ..Default::default()
    };
    let v = lexical_embedding("tea", DIMS);
    let want = exact.search(&scope, &v, &filtered).await.unwrap();
    let got = indexed.search(&scope, &v, &filtered).await.unwrap();
    assert_eq!(want.len(), 25);
    assert_eq!(
        got.len(),
        want.len(),
        "a filtered index scan dropped results"
    );
}

#[tokio::test]
async fn sslmode_require_encrypts_the_connection() {
    let Some(url) = common::tls_postgres_url() else {
        return;
    };
    // The connect options the store parses from DATABASE_URL.
    for (mode, encrypted) in [("require", true), ("disable", false)] {
        let options = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(&format!(
            "{url}?sslmode={mode}"
        ))
        .unwrap();
        let pool = sqlx::PgPool::connect_with(options).await.unwrap();
        let ssl: bool =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(ssl, encrypted, "sslmode={mode}");
    }
    // The store itself gets through TLS to its migrations; this plain server
    // has no pgvector, so the server refuses `CREATE EXTENSION vector`.
    let err = PostgresStore::open(&format!("{url}?sslmode=require"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("vector"), "{err}");
}

/// On Supabase, the Data API serves the public schema to anyone holding the
/// project's anon key. Homi's tables must give it nothing: row-level security
/// on every table, and no privileges for the `anon` / `authenticated` roles
/// even where the project grants them by default.
/// Records the test embedder and adds `text` to `scope`.
async fn add_one(store: &PostgresStore, scope: &Scope, text: &str) {
    store
        .bind_embedder(&EmbedderInfo {
            model: "m".into(),
            dims: DIMS,
        })
        .await
        .unwrap();
    let memory = NewMemory {
        id: uuid::Uuid::new_v4(),
        text: text.into(),
        hash: text_hash(text),
        metadata: Default::default(),
        scope: scope.clone(),
        actor_id: None,
        role: None,
        embedding: lexical_embedding(text, DIMS),
        said_at: None,
        expires_at: None,
    };
    store
        .apply(&Access::from(scope), None, None, vec![Change::Add(memory)])
        .await
        .unwrap();
}

/// mem0's `collection_name` on Postgres: each collection is a schema of its
/// own, so two collections on one database never see each other's memories;
/// a collection opened again finds its own.
#[tokio::test]
async fn collections_on_one_database_never_mix() {
    let Some(url) = common::postgres_url().await else {
        return;
    };
    let open = |collection: Option<&str>| {
        let options = PostgresOptions {
            collection: collection.map(str::to_owned),
            ..PostgresOptions::default()
        };
        let url = url.clone();
        async move { PostgresStore::open_with(&url, options).await }
    };
    let ann = Scope::user("ann");
    let write = |store: PostgresStore, text: &'static str| {
        let ann = ann.clone();
        async move {
            add_one(&store, &ann, text).await;
            store
        }
    };
    let texts = |store: PostgresStore| {
        let ann = ann.clone();
        async move {
            let read = ReadParams {
                limit: 10,
                ..ReadParams::default()
            };
            let items = store.list(&ann, &read).await.unwrap();
            items.into_iter().map(|m| m.memory).collect::<Vec<_>>()
        }
    };
    let default = write(open(None).await.unwrap(), "I grow roses").await;
    let work = write(open(Some("work")).await.unwrap(), "I write Rust").await;
    let home = write(open(Some("home-2")).await.unwrap(), "I keep bees").await;
    assert_eq!(texts(default).await, ["I grow roses"]);
    assert_eq!(texts(work).await, ["I write Rust"]);
    assert_eq!(texts(home).await, ["I keep bees"]);
    // Opened again, a collection finds its own memories.
    assert_eq!(
        texts(open(Some("work")).await.unwrap()).await,
        ["I write Rust"]
    );
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT table_schema::text FROM information_schema.tables \
         WHERE table_name = 'homi_memories' ORDER BY 1",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(schemas, ["homi_home-2", "homi_work", "public"]);
    let err = open(Some("a; DROP TABLE x")).await.unwrap_err();
    assert_eq!(err.kind(), homi_core::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("collection_name"), "{err}");
}

#[tokio::test]
async fn supabase_api_roles_see_none_of_homis_rows() {
    let Some(url) = common::postgres_url().await else {
        return;
    };
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    for role in ["anon", "authenticated"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DO $$ BEGIN CREATE ROLE {role} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )))
        .execute(&admin)
        .await
        .unwrap();
    }
    // What a Supabase project does for tables created in public.
    for sql in [
        "GRANT USAGE ON SCHEMA public TO anon, authenticated",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated",
    ] {
        sqlx::query(sql).execute(&admin).await.unwrap();
    }
    let store = PostgresStore::open(&url).await.unwrap();
    add_one(&store, &Scope::user("alice"), "Alice's secret").await;

    let unprotected: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class WHERE relname LIKE 'homi\\_%' AND relkind = 'r' \
         AND relnamespace = 'public'::regnamespace AND NOT relrowsecurity",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert!(
        unprotected.is_empty(),
        "no row-level security on {unprotected:?}"
    );

    let mut conn = admin.acquire().await.unwrap();
    for role in ["anon", "authenticated"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("SET ROLE {role}")))
            .execute(&mut *conn)
            .await
            .unwrap();
        for table in [
            "homi_memories",
            "homi_meta",
            "homi_auth_users",
            "homi_auth_sessions",
        ] {
            let read = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {table}")))
                .fetch_all(&mut *conn)
                .await;
            let err = read
                .err()
                .unwrap_or_else(|| panic!("{role} could read {table}"));
            assert!(
                err.to_string().contains("permission denied"),
                "{role} on {table}: {err}"
            );
        }
        sqlx::query("RESET ROLE").execute(&mut *conn).await.unwrap();
    }
    // Even a grant made by hand afterwards yields no rows: RLS has no policy.
    sqlx::query("GRANT SELECT ON homi_memories TO anon")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("SET ROLE anon")
        .execute(&mut *conn)
        .await
        .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM homi_memories")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    sqlx::query("RESET ROLE").execute(&mut *conn).await.unwrap();
}
