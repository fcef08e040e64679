//! The retrieval benchmark on LoCoMo conversations, through the Rust API (the
//! Python half is homi-py/bench/locomo.py; both write the same rankings file,
//! scored by `locomo.py score`). Run by `scripts/bench-retrieval.sh`.
//!
//! `HOMI_EMBEDDING_MODEL_DIR=… HOMI_LOCOMO_DIR=… HOMI_RETRIEVAL_OUT=out.json
//! cargo bench -p homi-core --features local,sqlite --bench retrieval`
//!
//! Each conversation is one user; every turn one memory (`infer=false`,
//! "{speaker}: {text}" plus " [shares {caption}]", metadata `dia_id`,
//! timestamp the session's date); every question of categories 1–4 is
//! searched in its conversation with limit 20, in each mode. `cargo test
//! --bench retrieval` runs a smoke size (two conversations cut short).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use homi_core::memory::SearchMode;
use homi_core::provider::local::LocalEmbedder;
use homi_core::provider::{Embedder, Embeddings};
use homi_core::store::sqlite::SqliteStore;
use homi_core::{AddOptions, Memory, Scope, SearchOptions};
use serde_json::{Value, json};

/// The local embedder, with the time its calls took added up: how much of
/// the load the model is.
#[derive(Debug)]
struct Timed {
    inner: LocalEmbedder,
    spent: Mutex<Duration>,
}

#[async_trait::async_trait]
impl Embedder for Timed {
    fn model(&self) -> &str {
        self.inner.model()
    }

    fn dims(&self) -> Option<usize> {
        self.inner.dims()
    }

    async fn embed(&self, texts: &[String]) -> homi_core::Result<Embeddings> {
        let start = Instant::now();
        let out = self.inner.embed(texts).await;
        *self.spent.lock().unwrap() += start.elapsed();
        out
    }
}

struct Conversation {
    user: String,
    /// (text, dia_id, said at)
    turns: Vec<(String, String, chrono::DateTime<chrono::Utc>)>,
    questions: Vec<String>,
}

fn session_time(text: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::NaiveDateTime::parse_from_str(text.trim(), "%I:%M %p on %d %B, %Y")
        .unwrap_or_else(|e| panic!("session date '{text}': {e}"))
        .and_utc()
}

fn load(dir: &std::path::Path, smoke: bool) -> Vec<Conversation> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let conv: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        let c = conv.get("conversation").unwrap_or(&conv);
        let obj = c.as_object().unwrap();
        let mut sessions: Vec<u32> = obj
            .keys()
            .filter_map(|k| k.strip_prefix("session_")?.parse().ok())
            .collect();
        sessions.sort_unstable();
        let mut turns = Vec::new();
        for n in sessions {
            let when = session_time(c[format!("session_{n}_date_time")].as_str().unwrap());
            for t in c[format!("session_{n}")].as_array().unwrap() {
                let mut text = format!(
                    "{}: {}",
                    t["speaker"].as_str().unwrap(),
                    t["text"].as_str().unwrap()
                );
                if let Some(cap) = t.get("blip_caption").and_then(Value::as_str)
                    && !cap.is_empty()
                {
                    text.push_str(&format!(" [shares {cap}]"));
                }
                turns.push((text, t["dia_id"].as_str().unwrap().to_owned(), when));
            }
        }
        let mut questions: Vec<String> = conv["qa"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|q| (1..=4).contains(&q["category"].as_i64().unwrap_or(0)))
            .filter(|q| !smoke || q["evidence"].as_array().is_some_and(|e| !e.is_empty()))
            .map(|q| q["question"].as_str().unwrap().to_owned())
            .collect();
        if smoke {
            turns.truncate(60);
            questions.truncate(10);
        }
        out.push(Conversation {
            user: f.file_stem().unwrap().to_string_lossy().into_owned(),
            turns,
            questions,
        });
        if smoke && out.len() == 2 {
            break;
        }
    }
    out
}

fn pct(xs: &mut [f64], p: f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    if xs.is_empty() {
        return 0.0;
    }
    xs[((xs.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let data = std::env::var_os("HOMI_LOCOMO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/data/locomo-dev"));
    let Some(model) = std::env::var_os("HOMI_EMBEDDING_MODEL_DIR").map(PathBuf::from) else {
        eprintln!(
            "retrieval bench: HOMI_EMBEDDING_MODEL_DIR is not set (bash scripts/model.sh prints it); skipped"
        );
        return;
    };
    if !data.is_dir() {
        eprintln!(
            "retrieval bench: no LoCoMo data at {}; skipped",
            data.display()
        );
        return;
    }
    let out = std::env::var_os("HOMI_RETRIEVAL_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/retrieval-rust.json"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let convs = load(&data, smoke);
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("homi.db").display());
        let store = Arc::new(SqliteStore::open(&url).await.unwrap());
        let embedder = Arc::new(Timed {
            inner: LocalEmbedder::load(&model, "sentence-transformers/all-MiniLM-L6-v2").unwrap(),
            spent: Mutex::new(Duration::ZERO),
        });
        let memory = Memory::builder(store)
            .embedder(embedder.clone())
            .build()
            .await
            .unwrap();
        let start = Instant::now();
        let mut turns = 0;
        for c in &convs {
            let scope = Scope::user(&c.user);
            for (text, dia, when) in &c.turns {
                let mut meta = serde_json::Map::new();
                meta.insert("dia_id".into(), json!(dia));
                memory
                    .add(
                        text.as_str(),
                        &scope,
                        AddOptions::raw().metadata(meta).timestamp(*when),
                    )
                    .await
                    .unwrap();
                turns += 1;
            }
        }
        let load_s = start.elapsed().as_secs_f64();
        let embed_s = embedder.spent.lock().unwrap().as_secs_f64();
        let mut modes = serde_json::Map::new();
        for mode in [
            SearchMode::Keyword,
            SearchMode::Semantic,
            SearchMode::Hybrid,
        ] {
            let mut found = Vec::new();
            let mut lat = Vec::new();
            for c in &convs {
                let scope = Scope::user(&c.user);
                for q in &c.questions {
                    let t0 = Instant::now();
                    let r = memory
                        .search(q, &scope, SearchOptions::default().limit(20).mode(mode))
                        .await
                        .unwrap();
                    lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                    let ids: Vec<Value> = r
                        .results
                        .iter()
                        .map(|m| m.metadata.get("dia_id").cloned().unwrap_or(Value::Null))
                        .collect();
                    found.push(Value::Array(ids));
                }
            }
            let p50 = pct(&mut lat, 0.5);
            let p95 = pct(&mut lat, 0.95);
            eprintln!(
                "retrieval bench (rust, {}): {} questions, search p50 {p50:.2} ms, p95 {p95:.2} ms",
                mode.as_str(),
                found.len()
            );
            modes.insert(
                mode.as_str().into(),
                json!({"found": found, "p50_ms": p50, "p95_ms": p95}),
            );
        }
        eprintln!(
            "retrieval bench (rust): {turns} turns loaded in {load_s:.1} s, of which {embed_s:.1} s \
             embedding ({:.2} ms a turn)",
            embed_s * 1e3 / turns.max(1) as f64
        );
        let result = json!({"door": "rust", "turns": turns, "load_s": load_s, "load_embed_s": embed_s, "modes": modes});
        std::fs::write(&out, result.to_string()).unwrap();
        eprintln!("wrote {}", out.display());
    });
}
