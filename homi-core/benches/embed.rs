//! The local embedder's speed on this machine's CPU: throughput on batches of
//! 1000 short texts (5 to 40 words, texts per second) and the latency of one
//! text (p50 / p95 over 200 calls), through the [`Embedder`] trait as Memory
//! calls it. It also reports how many cores the batches kept busy.
//!
//! `cargo bench -p homi-core --features local --bench embed`   full run
//! `cargo test -p homi-core --features local --bench embed`    smoke run (tiny, as in CI)
//!
//! The model: `HOMI_EMBEDDING_MODEL_DIR` or `HOMI_TEST_MODEL_DIR`
//! (`bash scripts/model.sh` prints one); otherwise it is found or downloaded
//! as the embedder does (the smoke run skips instead, or fails with
//! `HOMI_REQUIRE_MODEL=1`, as `scripts/test.sh` sets).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant};

use homi_core::provider::Embedder;
use homi_core::provider::local::{LocalEmbedder, LocalModelConfig};

const WORDS: &[&str] = &[
    "I",
    "love",
    "hiking",
    "in",
    "the",
    "mountains",
    "with",
    "my",
    "dog",
    "every",
    "weekend",
    "she",
    "prefers",
    "window",
    "seats",
    "on",
    "long",
    "flights",
    "our",
    "team",
    "meets",
    "Monday",
    "morning",
    "to",
    "plan",
    "sprint",
    "he",
    "is",
    "allergic",
    "peanuts",
    "and",
    "shellfish",
    "they",
    "moved",
    "Berlin",
    "last",
    "year",
    "for",
    "a",
    "new",
    "job",
    "coffee",
    "without",
    "sugar",
    "please",
    "remember",
    "birthday",
    "March",
    "favourite",
    "book",
    "about",
    "space",
    "travel",
    "learning",
    "Rust",
    "Python",
    "at",
    "night",
    "vegetarian",
    "since",
    "college",
    "daughter",
    "plays",
    "violin",
    "school",
    "orchestra",
    "wants",
    "visit",
    "Japan",
    "spring",
    "cherry",
    "blossoms",
    "works",
    "remotely",
    "from",
    "small",
    "village",
    "near",
    "sea",
    "hates",
    "waking",
    "up",
    "early",
    "runs",
    "marathon",
    "training",
    "plan",
    "knee",
    "injury",
    "doctor",
    "appointment",
    "Tuesday",
    "garden",
    "tomatoes",
    "basil",
    "cooking",
    "Italian",
    "food",
    "friends",
    "pizza",
    "oven",
    "bought",
    "electric",
    "car",
    "charging",
    "station",
    "apartment",
    "rent",
    "expensive",
    "city",
    "centre",
    "quiet",
    "reading",
    "novels",
];

/// Deterministic texts of 5 to 40 words.
fn texts(n: usize, seed: u64) -> Vec<String> {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    (0..n)
        .map(|_| {
            let words = 5 + next() % 36;
            let mut t: Vec<&str> = (0..words).map(|_| WORDS[next() % WORDS.len()]).collect();
            if let Some(first) = t.first_mut() {
                *first = WORDS[next() % 12];
            }
            let mut s = t.join(" ");
            s.push('.');
            s
        })
        .collect()
}

/// CPU time this process used so far (user + system), from /proc.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Fields 14 and 15 of the line (utime, stime) are 11 and 12 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let dir = std::env::var("HOMI_EMBEDDING_MODEL_DIR")
        .or_else(|_| std::env::var("HOMI_TEST_MODEL_DIR"))
        .ok()
        .filter(|d| !d.trim().is_empty());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let embedder = match dir {
        Some(dir) => LocalEmbedder::load(
            std::path::Path::new(&dir),
            "sentence-transformers/all-MiniLM-L6-v2",
        )
        .unwrap(),
        None if smoke => {
            assert!(
                std::env::var("HOMI_REQUIRE_MODEL").as_deref() != Ok("1"),
                "HOMI_TEST_MODEL_DIR is not set: export HOMI_TEST_MODEL_DIR=$(bash scripts/model.sh)"
            );
            println!("embed bench skipped: set HOMI_TEST_MODEL_DIR (bash scripts/model.sh)");
            return;
        }
        None => rt
            .block_on(LocalEmbedder::open_with(&LocalModelConfig::new(
                "sentence-transformers/all-MiniLM-L6-v2",
            )))
            .unwrap(),
    };
    let (batch, rounds, singles) = if smoke { (50, 1, 10) } else { (1000, 3, 200) };
    println!(
        "local embedder {} ({} dims), {} cores, {}",
        embedder.model(),
        embedder.dims().unwrap_or(0),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        if smoke { "smoke size" } else { "full size" }
    );

    // Warm up: first-touch allocations, thread pools.
    rt.block_on(embedder.embed(&texts(32, 7))).unwrap();

    let mut best = 0.0f64;
    for round in 0..rounds {
        let input = texts(batch, 100 + round as u64);
        let cpu0 = cpu_time();
        let start = Instant::now();
        let out = rt.block_on(embedder.embed(&input)).unwrap();
        let wall = start.elapsed();
        let cpu = cpu_time().zip(cpu0).map(|(b, a)| b.saturating_sub(a));
        assert_eq!(out.vectors.len(), batch);
        let rate = batch as f64 / wall.as_secs_f64();
        best = best.max(rate);
        println!(
            "batch of {batch}: {:.0} ms, {rate:.0} texts/s, {} tokens ({:.0} tokens/s){}",
            wall.as_secs_f64() * 1000.0,
            out.tokens,
            out.tokens as f64 / wall.as_secs_f64(),
            cpu.map(|c| format!(
                ", {:.2} cores busy ({:.0} texts per CPU-second)",
                c.as_secs_f64() / wall.as_secs_f64(),
                batch as f64 / c.as_secs_f64()
            ))
            .unwrap_or_default()
        );
    }

    let input = texts(singles, 9);
    let mut times = Vec::with_capacity(singles);
    for t in &input {
        let one = std::slice::from_ref(t);
        let start = Instant::now();
        rt.block_on(embedder.embed(one)).unwrap();
        times.push(start.elapsed());
    }
    times.sort();
    let (p50, p95) = (percentile(&times, 0.5), percentile(&times, 0.95));
    println!(
        "single text, {singles} calls: p50 {:.2} ms, p95 {:.2} ms",
        p50.as_secs_f64() * 1000.0,
        p95.as_secs_f64() * 1000.0
    );
    println!(
        "{{\"bench\":\"embed\",\"batch\":{batch},\"texts_per_s\":{best:.1},\"single_p50_ms\":{:.3},\"single_p95_ms\":{:.3}}}",
        p50.as_secs_f64() * 1000.0,
        p95.as_secs_f64() * 1000.0
    );
}
