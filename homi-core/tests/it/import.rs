//! Importing mem0 collections (mem0's pgvector layout and the Supabase/vecs
//! layout, created on the Postgres test server) into Homi, on both stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use homi_core::transfer::{Mem0Layout, Mem0Source};
use homi_core::{Config, ErrorKind, ListOptions, Memory, Scope, SearchOptions};
use homi_testkit::{FakeProvider, lexical_embedding};
use serde_json::json;

use crate::common;

const DIMS: usize = 64;

fn vector_literal(text: &str) -> String {
    let v = lexical_embedding(text, DIMS);
    format!(
        "[{}]",
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// Creates a mem0 collection in `layout` with three memories of two scopes.
async fn make_mem0_collection(url: &str, layout: Mem0Layout, name: &str) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::query("CREATE EXTENSION IF NOT EXISTS vector")
        .execute(&pool)
        .await
        .unwrap();
    let (table, cols) = match layout {
        Mem0Layout::Pgvector => (format!("\"{name}\""), ("uuid", "vector", "payload")),
        Mem0Layout::Vecs => {
            sqlx::query("CREATE SCHEMA IF NOT EXISTS vecs")
                .execute(&pool)
                .await
                .unwrap();
            (format!("vecs.\"{name}\""), ("varchar", "vec", "metadata"))
        }
    };
    let create = format!(
        "CREATE TABLE {table} (id {} PRIMARY KEY, {} vector({DIMS}), {} jsonb)",
        cols.0, cols.1, cols.2
    );
    sqlx::query(sqlx::AssertSqlSafe(create))
        .execute(&pool)
        .await
        .unwrap();
    let rows = [
        (
            "6f1c0b7a-3c2d-4e5f-8a9b-0c1d2e3f4a5b",
            json!({"data": "Is allergic to peanuts", "hash": "h1", "user_id": "alice",
                   "created_at": "2024-07-20T10:22:33.123456-07:00", "category": "health"}),
        ),
        (
            "7a2d1c8b-4d3e-4f60-9bac-1d2e3f4a5b6c",
            json!({"data": "Lives in Lisbon", "hash": "h2", "user_id": "alice", "agent_id": "travel",
                   "created_at": "2024-08-01T09:00:00+00:00", "updated_at": "2024-09-01T09:00:00+00:00"}),
        ),
        (
            "8b3e2d9c-5e4f-4a71-8cbd-2e3f4a5b6c7d",
            json!({"data": "Prefers aisle seats", "user_id": "bob", "actor_id": "bob", "role": "user"}),
        ),
    ];
    for (id, payload) in rows {
        let text = payload["data"].as_str().unwrap().to_owned();
        let insert = format!(
            "INSERT INTO {table} (id, {}, {}) VALUES ($1::{}, $2::vector, $3)",
            cols.1, cols.2, cols.0
        );
        sqlx::query(sqlx::AssertSqlSafe(insert))
            .bind(id)
            .bind(vector_literal(&text))
            .bind(sqlx::types::Json(payload))
            .execute(&pool)
            .await
            .unwrap();
    }
}

async fn import_into(target_url: String, layout: Mem0Layout) {
    let Some(source_url) = common::postgres_url().await else {
        return;
    };
    make_mem0_collection(&source_url, layout, "mem0_memories").await;
    let fake = FakeProvider::start().await.unwrap();
    let config = Config::default()
        .with_database_url(target_url)
        .with_openai_base_url(fake.base_url())
        .with_embedding_model("text-embedding-3-small", Some(DIMS));
    let memory = Memory::open(&config).await.unwrap();
    let source = Mem0Source {
        url: source_url.clone(),
        collection: "mem0_memories".into(),
        layout: None,
        embedder_model: "text-embedding-3-small".into(),
        history: Vec::new(),
    };
    let mut seen = Vec::new();
    let report = memory
        .import_mem0(&source, |read, total| seen.push((read, total)))
        .await
        .unwrap();
    assert_eq!(seen, [(0, 3), (3, 3)]);
    assert_eq!(report.layout, Some(layout));
    assert_eq!((report.read, report.imported, report.invalid), (3, 3, 0));

    let alice = Scope::user("alice");
    let all = memory
        .get_all(&alice, ListOptions::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let peanuts = all
        .iter()
        .find(|m| m.memory == "Is allergic to peanuts")
        .unwrap();
    assert_eq!(
        peanuts.id.to_string(),
        "6f1c0b7a-3c2d-4e5f-8a9b-0c1d2e3f4a5b"
    );
    assert_eq!(
        peanuts.created_at.to_rfc3339(),
        "2024-07-20T17:22:33.123456+00:00"
    );
    assert_eq!(peanuts.metadata["category"], "health");
    assert_eq!(
        peanuts.hash,
        homi_core::memory::text_hash("Is allergic to peanuts")
    );
    let lisbon = all.iter().find(|m| m.memory == "Lives in Lisbon").unwrap();
    assert_eq!(lisbon.agent_id.as_deref(), Some("travel"));
    assert_eq!(lisbon.updated_at.to_rfc3339(), "2024-09-01T09:00:00+00:00");
    let bob = memory
        .get_all(&Scope::user("bob"), ListOptions::default())
        .await
        .unwrap();
    assert_eq!(bob[0].actor_id.as_deref(), Some("bob"));
    assert_eq!(bob[0].role.as_deref(), Some("user"));
    let h = memory
        .history(&peanuts.id.to_string(), &alice)
        .await
        .unwrap();
    assert_eq!(h.len(), 1);

    // The imported vectors are searchable with the same embedder.
    let found = memory
        .search("peanuts", &alice, SearchOptions::default().limit(1))
        .await
        .unwrap();
    assert_eq!(found.results[0].memory, "Is allergic to peanuts");

    // Idempotent.
    let again = memory.import_mem0(&source, |_, _| {}).await.unwrap();
    assert_eq!(
        (again.read, again.imported, again.already_present),
        (3, 0, 3)
    );
    assert_eq!(
        memory
            .get_all(&alice, ListOptions::default())
            .await
            .unwrap()
            .len(),
        2
    );

    // A missing collection and a hostile name are clear errors.
    let missing = Mem0Source {
        collection: "nope".into(),
        ..source.clone()
    };
    assert_eq!(
        memory
            .import_mem0(&missing, |_, _| {})
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    let hostile = Mem0Source {
        collection: "x\"; DROP TABLE y".into(),
        ..source
    };
    let err = memory.import_mem0(&hostile, |_, _| {}).await.unwrap_err();
    assert!(err.to_string().contains("collection_name"), "{err}");
}

#[tokio::test]
async fn pgvector_layout_into_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    import_into(
        format!("sqlite://{}", dir.path().join("homi.db").display()),
        Mem0Layout::Pgvector,
    )
    .await;
}

#[tokio::test]
async fn vecs_layout_into_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    import_into(
        format!("sqlite://{}", dir.path().join("homi.db").display()),
        Mem0Layout::Vecs,
    )
    .await;
}

#[tokio::test]
async fn pgvector_layout_into_postgres() {
    let Some(target) = common::postgres_url().await else {
        return;
    };
    import_into(target, Mem0Layout::Pgvector).await;
}

#[tokio::test]
async fn vecs_layout_into_postgres() {
    let Some(target) = common::postgres_url().await else {
        return;
    };
    import_into(target, Mem0Layout::Vecs).await;
}
