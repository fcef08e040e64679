//! The Memory client end to end against the fake provider on 127.0.0.1 (real
//! HTTP, zero provider latency, 1536-dimension embeddings):
//! - `add(infer=false)` throughput in batches of 1,000 messages;
//! - `add(infer=true)`: latency, and model calls per add (chat calls and
//!   embeddings requests, counted by the provider);
//! - `search` latency including the query's embeddings request.
//!
//! `cargo bench -p homi-core --bench memory`; `cargo test -p homi-core --benches` is the smoke run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use homi_core::provider::ChatMessage;
use homi_core::{AddOptions, Config, Memory, Scope, SearchOptions};
use homi_testkit::FakeProvider;

const WORDS: [&str; 24] = [
    "hiking",
    "pizza",
    "tennis",
    "jazz",
    "python",
    "rust",
    "cats",
    "dogs",
    "coffee",
    "tea",
    "paris",
    "tokyo",
    "guitar",
    "chess",
    "sushi",
    "running",
    "yoga",
    "novels",
    "cinema",
    "gardening",
    "cycling",
    "baking",
    "skiing",
    "painting",
];

fn sentence(i: usize) -> String {
    let a = WORDS[i % WORDS.len()];
    let b = WORDS[(i / WORDS.len()) % WORDS.len()];
    format!("Fact {i}: enjoys {a} and {b} on day {}", i % 365)
}

#[path = "support/data.rs"]
mod data;
use data::percentile_ms;

fn bench_memory(c: &mut Criterion) {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(FakeProvider::start()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default()
        .with_database_url(format!(
            "sqlite://{}",
            dir.path().join("bench.db").display()
        ))
        .with_openai_base_url(fake.base_url())
        .with_openai_api_key("sk-bench");
    let memory = rt.block_on(Memory::open(&config)).unwrap();
    let (batches, batch) = if smoke { (2, 100) } else { (10, 1000) };

    // add(infer=false) throughput.
    let bulk = Scope::user("bulk");
    let start = Instant::now();
    for b in 0..batches {
        let msgs: Vec<ChatMessage> = (0..batch)
            .map(|i| ChatMessage::user(sentence(b * batch + i)))
            .collect();
        let r = rt
            .block_on(memory.add(msgs, &bulk, AddOptions::raw()))
            .unwrap();
        assert_eq!(r.results.len(), batch);
    }
    let rate = (batches * batch) as f64 / start.elapsed().as_secs_f64();
    println!("add(infer=false): {rate:.0} memories/s ({batches} batches of {batch}, 1536 dims)");

    // add(infer=true): model calls per add and latency, as the scope grows.
    let user = Scope::user("infer");
    let rounds = if smoke { 5 } else { 200 };
    for (label, prefill) in [
        ("empty scope", 0usize),
        ("1k in scope", 1000),
        ("10k in scope", 10_000),
    ] {
        if smoke && prefill > 0 {
            continue;
        }
        let have = rt
            .block_on(memory.get_all(
                &user,
                homi_core::ListOptions::default().limit(homi_core::memory::MAX_LIMIT),
            ))
            .unwrap()
            .len();
        if prefill > have {
            let msgs: Vec<ChatMessage> = (have..prefill)
                .map(|i| ChatMessage::user(sentence(100_000 + i)))
                .collect();
            for chunk in msgs.chunks(1000) {
                rt.block_on(memory.add(chunk.to_vec(), &user, AddOptions::raw()))
                    .unwrap();
            }
        }
        let before = fake.stats();
        let mut lat = Vec::with_capacity(rounds);
        let mut calls = 0u32;
        for i in 0..rounds {
            let t = Instant::now();
            let r = rt
                .block_on(memory.add(
                    format!("{} (round {prefill}-{i})", sentence(i)),
                    &user,
                    AddOptions::default(),
                ))
                .unwrap();
            lat.push(t.elapsed());
            calls += r.usage.model_calls();
        }
        let after = fake.stats();
        lat.sort();
        println!(
            "add(infer=true) [{label}]: p50={:.2}ms p95={:.2}ms; per add: {:.2} chat calls, {:.2} embeddings requests ({:.2} model calls reported)",
            percentile_ms(&lat, 0.5),
            percentile_ms(&lat, 0.95),
            (after.chat_requests - before.chat_requests) as f64 / rounds as f64,
            (after.embedding_requests - before.embedding_requests) as f64 / rounds as f64,
            f64::from(calls) / rounds as f64,
        );
    }

    let mut group = c.benchmark_group("memory");
    group.sample_size(if smoke { 10 } else { 100 });
    let mut i = 0usize;
    group.bench_function("add_infer_true", |b| {
        b.iter(|| {
            i += 1;
            rt.block_on(memory.add(
                format!("criterion round {i}: likes {}", WORDS[i % WORDS.len()]),
                &user,
                AddOptions::default(),
            ))
            .unwrap()
        })
    });
    group.bench_function("search_bulk_scope_with_query_embedding", |b| {
        let s = Scope::user("bulk");
        b.iter(|| {
            i += 1;
            rt.block_on(memory.search(
                WORDS[i % WORDS.len()],
                &s,
                SearchOptions::default().limit(10),
            ))
            .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_memory);
criterion_main!(benches);
