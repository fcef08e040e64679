//! Store-only search latency (embedding excluded) and recall@10 against an exact
//! scan, at 1k, 10k and 100k memories in the searched scope, with ten other
//! scopes of the same size in the table. 1536 dimensions.
//!
//! `cargo bench -p homi-core --bench store`              full run (sizes 1000,10000,100000)
//! `HOMI_BENCH_SIZES=10000 cargo bench -p homi-core --bench store`   one size
//! `cargo test -p homi-core --benches`                   smoke run (tiny sizes, as in CI)
//!
//! Vectors are synthetic and clustered like sentence embeddings: 64 topics ×
//! 16 subtopics, v = normalize(topic + 0.7·subtopic + 0.8·noise). Queries are
//! fresh draws from the same distribution (a new sentence on a known topic).
//!
//! Hybrid search (keyword + semantic + neighbours, `Memory::search` with the
//! query's vector looked up, so embedding is excluded) runs on the same
//! store: memory texts are 12–24 words drawn from a Zipf vocabulary of 5,000
//! made-up words, queries 6 such words.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use homi_core::provider::{Embedder, Embeddings};
use homi_core::store::sqlite::{SqliteOptions, SqliteStore};
use homi_core::store::{Change, EmbedderInfo, NewMemory, ReadParams, Store};
use homi_core::{Scope, SearchMode, SearchOptions};

#[path = "support/data.rs"]
mod data;
use data::{Gen, percentile_ms};
use uuid::Uuid;

struct Fixture {
    _dir: tempfile::TempDir,
    dims: usize,
    store: Arc<SqliteStore>,
    scope: Scope,
    vectors: Vec<Vec<f32>>,
    ids: Vec<Uuid>,
    queries: Vec<Vec<f32>>,
    insert_rate: f64,
}

async fn build(per_scope: usize, other_scopes: usize, dims: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = Arc::new(
        SqliteStore::open_with(
            &url,
            SqliteOptions {
                cache_bytes: 8 << 30,
                max_connections: 4,
            },
        )
        .await
        .unwrap(),
    );
    store
        .bind_embedder(&EmbedderInfo {
            model: "bench".into(),
            dims,
        })
        .await
        .unwrap();
    let mut g = Gen::new(dims, 42);
    let target = Scope::user("target");
    let mut vectors = Vec::with_capacity(per_scope);
    let mut ids = Vec::with_capacity(per_scope);
    let start = Instant::now();
    let mut inserted = 0usize;
    for s in 0..=other_scopes {
        let scope = if s == 0 {
            target.clone()
        } else {
            Scope::user(format!("other-{s}"))
        };
        let mut left = per_scope;
        while left > 0 {
            let n = left.min(5_000);
            left -= n;
            let mut changes = Vec::with_capacity(n);
            for _ in 0..n {
                let v = g.sample();
                let id = Uuid::new_v4();
                let len = 12 + (g.next_u64() % 13) as usize;
                let text = g.words(len);
                if s == 0 {
                    vectors.push(v.clone());
                    ids.push(id);
                }
                changes.push(Change::Add(NewMemory {
                    id,
                    hash: homi_core::memory::text_hash(&text),
                    text,
                    metadata: Default::default(),
                    scope: scope.clone(),
                    actor_id: None,
                    role: None,
                    embedding: v,
                    said_at: None,
                    expires_at: None,
                }));
            }
            store
                .apply(&scope.clone().into(), None, None, changes)
                .await
                .unwrap();
            inserted += n;
        }
    }
    let insert_rate = inserted as f64 / start.elapsed().as_secs_f64();
    let queries = (0..200).map(|_| g.sample()).collect();
    Fixture {
        _dir: dir,
        dims,
        store,
        scope: target,
        vectors,
        ids,
        queries,
        insert_rate,
    }
}

/// An embedder that knows the benchmark's queries: the search pays no
/// embedding.
#[derive(Debug)]
struct Lookup {
    dims: usize,
    vectors: std::collections::HashMap<String, Vec<f32>>,
}

#[async_trait::async_trait]
impl Embedder for Lookup {
    fn model(&self) -> &str {
        "bench"
    }
    fn dims(&self) -> Option<usize> {
        Some(self.dims)
    }
    async fn embed(&self, texts: &[String]) -> homi_core::Result<Embeddings> {
        Ok(Embeddings {
            vectors: texts.iter().map(|t| self.vectors[t].clone()).collect(),
            tokens: 0,
            requests: 0,
        })
    }
}

fn exact_top(f: &Fixture, q: &[f32], k: usize) -> Vec<Uuid> {
    let mut scored: Vec<(f32, usize)> = f
        .vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum::<f32>(), i))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.iter().take(k).map(|(_, i)| f.ids[*i]).collect()
}

fn sizes(smoke: bool) -> Vec<usize> {
    if smoke {
        return vec![300, 3000];
    }
    std::env::var("HOMI_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000, 100_000])
}

fn bench_search(c: &mut Criterion) {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (dims, others) = if smoke { (64, 2) } else { (1536, 10) };
    let mut group = c.benchmark_group("store_search");
    group.sample_size(if smoke { 10 } else { 50 });
    for n in sizes(smoke) {
        let t = Instant::now();
        let f = rt.block_on(build(n, others, dims));
        let setup = t.elapsed();
        let params = ReadParams {
            limit: 10,
            ..ReadParams::default()
        };
        // First search loads the scope's vectors into the cache.
        let t = Instant::now();
        rt.block_on(f.store.search(&f.scope, &f.queries[0], &params))
            .unwrap();
        let cold = t.elapsed();

        // Recall@10 against an exact scan, and latency percentiles.
        // Latency first (searches back to back), recall after: the exact scan
        // would evict the caches between timed searches.
        let mut lat = Vec::new();
        let mut answers = Vec::new();
        for _round in 0..5 {
            for q in &f.queries {
                let t = Instant::now();
                let got = rt.block_on(f.store.search(&f.scope, q, &params)).unwrap();
                lat.push(t.elapsed());
                answers.push(got);
            }
        }
        let mut hit = 0usize;
        for (q, got) in f.queries.iter().zip(&answers) {
            let truth = exact_top(&f, q, 10);
            hit += got.iter().filter(|m| truth.contains(&m.id)).count();
        }
        lat.sort();
        let recall = hit as f64 / (10 * f.queries.len()) as f64;
        println!(
            "store_search n={n} others={others} dims={dims}: p50={:.3}ms p99={:.3}ms recall@10={recall:.4} \
             cold_load={:.1}ms insert={:.0}/s setup={:.1}s",
            percentile_ms(&lat, 0.5),
            percentile_ms(&lat, 0.99),
            cold.as_secs_f64() * 1e3,
            f.insert_rate,
            setup.as_secs_f64(),
        );
        assert!(recall >= 0.9, "recall@10 {recall} is far below target");

        // Hybrid: the Memory client's whole ranking, the query's vector
        // looked up instead of embedded.
        let mut words = Gen::new(dims, 7);
        // Stop words never reach the keyword search: the 50 commonest
        // made-up words stand for them and are left out of queries.
        let texts: Vec<String> = f.queries.iter().map(|_| words.query_words(6, 50)).collect();
        let lookup = Lookup {
            dims: f.dims,
            vectors: texts
                .iter()
                .cloned()
                .zip(f.queries.iter().cloned())
                .collect(),
        };
        let memory = rt
            .block_on(
                homi_core::Memory::builder(f.store.clone())
                    .embedder(Arc::new(lookup))
                    .build(),
            )
            .unwrap();
        {
            let params = ReadParams {
                limit: 50,
                ..ReadParams::default()
            };
            let (mut a, mut b, mut c, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (t, q) in texts.iter().zip(&f.queries) {
                let terms = homi_core::memory::keywords::terms(t);
                let s0 = Instant::now();
                let kw = rt
                    .block_on(f.store.keyword_search(&f.scope, &terms, &params))
                    .unwrap();
                a.push(s0.elapsed());
                let s0 = Instant::now();
                let se = rt.block_on(f.store.search(&f.scope, q, &params)).unwrap();
                b.push(s0.elapsed());
                let mut ids: Vec<Uuid> = se.iter().chain(&kw).map(|m| m.id).collect();
                ids.sort();
                ids.dedup();
                let s0 = Instant::now();
                rt.block_on(f.store.neighbourhood(&f.scope, &ids, q, &params))
                    .unwrap();
                c.push(s0.elapsed());
                // All three in one read, as a hybrid search asks for them.
                let s0 = Instant::now();
                rt.block_on(f.store.hybrid_candidates(&f.scope, q, &terms, &params))
                    .unwrap();
                d.push(s0.elapsed());
            }
            a.sort();
            b.sort();
            c.sort();
            d.sort();
            println!(
                "parts: keyword {:.3} semantic {:.3} neighbourhood {:.3}; all three in one read {:.3}",
                percentile_ms(&a, 0.5),
                percentile_ms(&b, 0.5),
                percentile_ms(&c, 0.5),
                percentile_ms(&d, 0.5)
            );
        }
        let opts = SearchOptions::default().limit(10).mode(SearchMode::Hybrid);
        let mut lat = Vec::new();
        for _round in 0..3 {
            for t in &texts {
                let start = Instant::now();
                let got = rt
                    .block_on(memory.search(t, &f.scope, opts.clone()))
                    .unwrap();
                lat.push(start.elapsed());
                assert_eq!(got.results.len(), 10);
            }
        }
        lat.sort();
        println!(
            "hybrid_search n={n} others={others} dims={dims}: p50={:.3}ms p99={:.3}ms",
            percentile_ms(&lat, 0.5),
            percentile_ms(&lat, 0.99),
        );

        let mut i = 0usize;
        group.bench_function(format!("n{n}_d{dims}"), |b| {
            b.iter(|| {
                i = (i + 1) % f.queries.len();
                rt.block_on(f.store.search(&f.scope, &f.queries[i], &params))
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_search);
criterion_main!(benches);
