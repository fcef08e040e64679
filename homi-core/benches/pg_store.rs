//! Postgres + pgvector store: insert throughput, HNSW build time, per-scope
//! search latency and recall@10 against an exact scan.
//!
//! Needs a server (`eval "$(bash scripts/pg.sh start)"` sets HOMI_TEST_DATABASE_URL):
//!
//! `cargo bench -p homi-core --features postgres --bench pg_store`            both cases
//! `HOMI_PG_BENCH_CASES=users cargo bench -p homi-core --features postgres --bench pg_store`
//! `cargo test -p homi-core --features postgres --bench pg_store`             smoke size (CI)
//!
//! Cases:
//! - `users`: 1,000,000 memories across 10,000 users (100 each), 384 dims;
//!   each search is one user's (exact scan: the scope is small).
//! - `large`: 100,000 memories of one user plus 10,000 of another, 1536 dims:
//!   the large scope goes through HNSW (iterative scan), the 10k one is exact;
//!   the exact scan of the large scope is timed too, for comparison.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use homi_core::store::postgres::{PostgresOptions, PostgresStore};
use homi_core::store::{Change, EmbedderInfo, NewMemory, ReadParams, Store};
use homi_core::{Access, Scope};
use uuid::Uuid;

#[path = "support/data.rs"]
mod data;
use data::{Gen, percentile_ms};

struct Case {
    name: &'static str,
    dims: usize,
    /// (user id, memories) per scope.
    scopes: Vec<(String, usize)>,
    /// Scopes the timed searches are spread over.
    searched: Vec<String>,
}

fn cases(smoke: bool) -> Vec<Case> {
    let wanted = std::env::var("HOMI_PG_BENCH_CASES").unwrap_or_else(|_| "users,large".into());
    let mut out = Vec::new();
    if wanted.contains("users") {
        let (users, each, dims) = if smoke {
            (20, 50, 32)
        } else {
            (10_000, 100, 384)
        };
        let scopes: Vec<(String, usize)> =
            (0..users).map(|u| (format!("user-{u}"), each)).collect();
        out.push(Case {
            name: "users",
            dims,
            searched: scopes.iter().map(|s| s.0.clone()).collect(),
            scopes,
        });
    }
    if wanted.contains("large") {
        let (big, mid, dims) = if smoke {
            (3_000, 300, 32)
        } else {
            (100_000, 10_000, 1536)
        };
        out.push(Case {
            name: "large",
            dims,
            scopes: vec![("big".into(), big), ("mid".into(), mid)],
            searched: vec!["big".into(), "mid".into()],
        });
    }
    out
}

struct Loaded {
    store: PostgresStore,
    exact: PostgresStore,
    queries: Vec<(Scope, Vec<f32>)>,
}

async fn load(case: &Case, url: &str) -> Loaded {
    let store = PostgresStore::open(url).await.unwrap();
    let exact = PostgresStore::open_with(
        url,
        PostgresOptions {
            exact_scan_max: usize::MAX,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    store
        .bind_embedder(&EmbedderInfo {
            model: "bench".into(),
            dims: case.dims,
        })
        .await
        .unwrap();
    // Bulk load without the index, then build it once.
    store.drop_vector_index().await.unwrap();
    let mut g = Gen::new(case.dims, 7);
    let total: usize = case.scopes.iter().map(|s| s.1).sum();
    let start = Instant::now();
    let mut batch = Vec::with_capacity(5_000);
    for (user, n) in &case.scopes {
        let scope = Scope::user(user.clone());
        for i in 0..*n {
            let text = format!("{user} memory {i}");
            batch.push(Change::Add(NewMemory {
                id: Uuid::new_v4(),
                hash: homi_core::memory::text_hash(&text),
                text,
                metadata: Default::default(),
                scope: scope.clone(),
                actor_id: None,
                role: None,
                embedding: g.sample(),
                said_at: None,
                expires_at: None,
            }));
            if batch.len() == 5_000 {
                store
                    .apply(&Access::Any, None, None, std::mem::take(&mut batch))
                    .await
                    .unwrap();
            }
        }
    }
    if !batch.is_empty() {
        store.apply(&Access::Any, None, None, batch).await.unwrap();
    }
    let insert = start.elapsed();
    let start = Instant::now();
    store.ensure_vector_index().await.unwrap();
    let build = start.elapsed();
    sqlx::query("ANALYZE homi_memories")
        .execute(store.pool())
        .await
        .unwrap();
    println!(
        "pg_store[{}] load: {total} memories, {} dims: insert {:.0}/s ({:.1}s, history included), HNSW build {:.1}s",
        case.name,
        case.dims,
        total as f64 / insert.as_secs_f64(),
        insert.as_secs_f64(),
        build.as_secs_f64()
    );
    let queries = (0..200)
        .map(|i| {
            let user = &case.searched[(g.next_u64() as usize + i) % case.searched.len()];
            (Scope::user(user.clone()), g.sample())
        })
        .collect();
    Loaded {
        store,
        exact,
        queries,
    }
}

async fn measure(case: &Case, l: &Loaded) {
    let params = ReadParams {
        limit: 10,
        ..Default::default()
    };
    let groups: Vec<String> = if case.name == "users" {
        vec!["any user".into()]
    } else {
        case.searched.clone()
    };
    for group in groups {
        let qs: Vec<&(Scope, Vec<f32>)> = l
            .queries
            .iter()
            .filter(|(s, _)| group == "any user" || s.user_id.as_deref() == Some(group.as_str()))
            .collect();
        let mut lat = Vec::new();
        let mut exact_lat = Vec::new();
        let mut hit = 0usize;
        let mut want_total = 0usize;
        for _round in 0..3 {
            for (scope, q) in &qs {
                let t = Instant::now();
                let got = l.store.search(scope, q, &params).await.unwrap();
                lat.push(t.elapsed());
                let t = Instant::now();
                let want = l.exact.search(scope, q, &params).await.unwrap();
                exact_lat.push(t.elapsed());
                hit += got
                    .iter()
                    .filter(|m| want.iter().any(|w| w.id == m.id))
                    .count();
                want_total += want.len();
            }
        }
        lat.sort();
        exact_lat.sort();
        println!(
            "pg_store[{}] search ({group}): p50={:.2}ms p99={:.2}ms recall@10={:.4} | exact scan p50={:.2}ms p99={:.2}ms",
            case.name,
            percentile_ms(&lat, 0.5),
            percentile_ms(&lat, 0.99),
            hit as f64 / want_total.max(1) as f64,
            percentile_ms(&exact_lat, 0.5),
            percentile_ms(&exact_lat, 0.99),
        );
    }
}

fn bench_pg(c: &mut Criterion) {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("pg_store");
    group
        .sample_size(if smoke { 10 } else { 30 })
        .measurement_time(Duration::from_secs(if smoke { 1 } else { 10 }));
    for case in cases(smoke) {
        // A fresh database per case (None: no test server, and none required).
        let Some(url) = rt.block_on(homi_testkit::db::postgres_url()) else {
            return;
        };
        let loaded = rt.block_on(load(&case, &url));
        rt.block_on(measure(&case, &loaded));
        let params = ReadParams {
            limit: 10,
            ..Default::default()
        };
        let mut i = 0usize;
        group.bench_function(format!("search_{}", case.name), |b| {
            b.iter(|| {
                i = (i + 1) % loaded.queries.len();
                let (scope, q) = &loaded.queries[i];
                rt.block_on(loaded.store.search(scope, q, &params)).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_pg);
criterion_main!(benches);
