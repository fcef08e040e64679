//! `homi memory export|import|import-mem0|reembed` with assert_cmd, against
//! the fake provider, on SQLite and Postgres: an export → import round trip
//! that gives back the same bytes and is idempotent, a mem0 collection
//! copied, and a re-embedding interrupted (by a provider failure, and by
//! SIGKILL) that resumes where it stopped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use assert_cmd::Command;
use homi_core::{AddOptions, Config, Memory, Messages, Scope};
use homi_testkit::{FakeProvider, Fault, Target};
use serde_json::{Value, json};

use crate::common;
use common::Backend;

const DIMS: usize = 64;

struct Env {
    fake: FakeProvider,
    dirs: Vec<tempfile::TempDir>,
    backend: Backend,
}

impl Env {
    /// A new, empty store of the backend under test.
    async fn store(&mut self) -> String {
        let dir = tempfile::tempdir().unwrap();
        let url = common::database_url(self.backend, dir.path())
            .await
            .unwrap();
        self.dirs.push(dir);
        url
    }

    /// The environment of a `homi` on `url` with the fake provider.
    fn settings(&self, url: &str) -> [(&'static str, String); 6] {
        [
            ("DATABASE_URL", url.to_owned()),
            ("OPENAI_BASE_URL", self.fake.base_url()),
            ("OPENAI_API_KEY", "sk-test".to_owned()),
            ("HOMI_EMBEDDING_MODEL", "text-embedding-3-small".to_owned()),
            ("HOMI_EMBEDDING_DIMS", DIMS.to_string()),
            ("HOMI_PROVIDER_MAX_RETRIES", "0".to_owned()),
        ]
    }

    fn homi(&self, url: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_homi"));
        cmd.args(args)
            .envs(self.settings(url))
            .env_remove("SUPABASE_URL")
            .timeout(Duration::from_secs(120));
        cmd
    }

    /// Runs to success; stdout.
    fn ok(&self, url: &str, args: &[&str]) -> String {
        let out = self.homi(url, args).assert().success().get_output().clone();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Not a terminal: no progress bar drawn.
        assert!(
            !stderr.contains('\u{1b}'),
            "escape codes on stderr: {stderr}"
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

async fn env(backend: Backend) -> Option<Env> {
    if backend == Backend::Postgres {
        // Skipped (or failed, with HOMI_REQUIRE_POSTGRES) without a server.
        common::postgres_url().await?;
    }
    Some(Env {
        fake: FakeProvider::start().await.unwrap(),
        dirs: Vec::new(),
        backend,
    })
}

async fn export_then_import_gives_the_same_bytes(b: Backend) {
    let Some(mut e) = env(b).await else { return };
    let (one, two) = (e.store().await, e.store().await);
    e.ok(
        &one,
        &[
            "memory",
            "add",
            "I like tea",
            "--user",
            "alice",
            "--no-infer",
        ],
    );
    // The model finds a contradiction: the tea memory is superseded, not lost.
    e.fake.push_reply(
        json!({"facts": [{"text": "I like coffee now", "event": "DELETE", "target": 0}]})
            .to_string(),
    );
    let switched = e.ok(
        &one,
        &[
            "memory",
            "add",
            "I switched to coffee",
            "--user",
            "alice",
            "--json",
        ],
    );
    let switched: Value = serde_json::from_str(&switched).unwrap();
    let coffee = switched["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["memory"] == "I like coffee now")
        .unwrap_or_else(|| panic!("{switched}"))["id"]
        .clone();
    e.ok(
        &one,
        &[
            "memory",
            "add",
            "I collect stamps",
            "--user",
            "alice",
            "--agent",
            "hobbies",
            "--metadata",
            r#"{"topic": "hobby", "n": 2}"#,
        ],
    );
    let run = e.ok(
        &one,
        &[
            "memory",
            "add",
            "Run notes",
            "--run",
            "r1",
            "--no-infer",
            "--json",
        ],
    );
    let id = serde_json::from_str::<Value>(&run).unwrap()["results"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    e.ok(&one, &["memory", "update", &id, "Run notes, revised"]);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alice.jsonl");
    let file = file.to_str().unwrap();
    let said = e.ok(&one, &["memory", "export", "--output", file]);
    assert_eq!(said.trim(), format!("exported 4 memories to {file}"));
    assert!(!std::path::Path::new(&format!("{file}.partial")).exists());
    let exported = std::fs::read_to_string(file).unwrap();
    assert_eq!(exported.lines().count(), 4);
    let tea: Value = exported
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["memory"] == "I like tea")
        .unwrap();
    assert!(tea["valid_to"].is_string(), "{tea}");
    assert_eq!(tea["superseded_by"], coffee, "{tea}");
    let revised: Value = exported
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["id"] == id.as_str())
        .unwrap();
    assert_eq!(revised["history"].as_array().unwrap().len(), 2);
    assert!(revised.get("embedding").is_none());

    let report = e.ok(&two, &["memory", "import", file]);
    assert!(
        report.starts_with(
            "read 4 memories: 4 imported, 0 already present, 0 duplicates of a current memory;"
        ),
        "{report}"
    );
    // The copy exports the same bytes (to stdout this time).
    assert_eq!(e.ok(&two, &["memory", "export"]), exported);
    // Twice changes nothing; stdin works too.
    let again = e
        .homi(&two, &["memory", "import", "-", "--json"])
        .write_stdin(exported.clone())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let again: Value = serde_json::from_slice(&again).unwrap();
    assert_eq!(
        again,
        json!({"read": 4, "imported": 0, "already_present": 4, "duplicates": 0, "embedded": 0, "invalid": 0})
    );
    // The superseded memory came back superseded: not current, still there.
    let current = e.ok(&two, &["memory", "list", "--user", "alice", "--json"]);
    assert!(
        !current.contains("I like tea") && current.contains("I like coffee now"),
        "{current}"
    );
    assert_eq!(e.ok(&two, &["memory", "export"]), exported);

    // One scope; with vectors, imported without a model call.
    let alice = e.ok(
        &one,
        &["memory", "export", "--user", "alice", "--embeddings"],
    );
    assert_eq!(alice.lines().count(), 3);
    assert!(alice.contains("\"vector\":[") && !alice.contains("Run notes"));
    let three = e.store().await;
    let before = e.fake.stats().embedding_requests;
    let out = e
        // No FILE: standard input, as psql, jq and sqlite3 read it.
        .homi(&three, &["memory", "import", "--json"])
        .write_stdin(alice.clone())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        (out["imported"].as_u64(), out["embedded"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(e.fake.stats().embedding_requests, before);
    let table = e.ok(&three, &["memory", "list", "--user", "alice"]);
    let mut rows = table.lines();
    assert!(rows.next().unwrap().starts_with("ID"), "{table}");
    assert_eq!(rows.count(), 2, "{table}");

    // A file that is not an export: exit 4, one sentence naming the line, nothing written.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        format!("{}\nnot json\n", exported.lines().next().unwrap()),
    )
    .unwrap();
    let four = e.store().await;
    let out = e
        .homi(&four, &["memory", "import", bad.to_str().unwrap()])
        .assert()
        .code(4)
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
    assert_eq!(e.ok(&four, &["memory", "export"]), "");
    e.homi(&four, &["memory", "import", "/no/such/file.jsonl"])
        .assert()
        .code(4);
}

/// 300 memories of three users, embedded with the configured 64-dimension model.
async fn fill(e: &Env, url: &str) {
    // The configuration the command reads, in this process.
    let settings = e.settings(url);
    let config = Config::from_lookup(|name| {
        settings
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap();
    let memory = Memory::open(&config).await.unwrap();
    for user in ["u1", "u2", "u3"] {
        let texts: Vec<Value> = (0..100)
            .map(|i| json!({"role": "user", "content": format!("{user} fact number {i}")}))
            .collect();
        memory
            .add(
                Messages::from_json(&json!(texts)).unwrap(),
                &Scope::user(user),
                AddOptions::raw(),
            )
            .await
            .unwrap();
    }
}

async fn reembed_resumes_after_a_failure_and_a_kill(b: Backend) {
    let Some(mut e) = env(b).await else { return };
    let url = e.store().await;
    fill(&e, &url).await;
    let to_new = |cmd: &mut Command| {
        cmd.env("HOMI_EMBEDDING_MODEL", "all-minilm-l6-v2")
            .env_remove("HOMI_EMBEDDING_DIMS");
    };

    // 1. The provider fails after the first batch: exit 9, the batch is kept.
    e.fake
        .push_fault_after(Target::Embeddings, Fault::ServerError, 100, 1);
    let mut cmd = e.homi(&url, &["memory", "reembed"]);
    to_new(&mut cmd);
    let out = cmd.assert().code(9).get_output().clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(common::staged_vectors(&url).await, 128);
    e.fake.reset();
    // Meanwhile the store still serves the old embedder.
    assert!(
        e.ok(&url, &["memory", "search", "fact number 7", "--user", "u1"])
            .contains("u1 fact number 7")
    );

    // 2. Killed while embedding (each request now takes 300 ms).
    e.fake.set_latency(Duration::from_millis(300));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_homi"))
        .args(["memory", "reembed"])
        .env("DATABASE_URL", &url)
        .env("OPENAI_BASE_URL", e.fake.base_url())
        .env("OPENAI_API_KEY", "sk-test")
        .env("HOMI_EMBEDDING_MODEL", "all-minilm-l6-v2")
        .env_remove("HOMI_EMBEDDING_DIMS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while common::staged_vectors(&url).await <= 128 {
        assert!(std::time::Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let kept = common::staged_vectors(&url).await;
    assert!((256..300).contains(&kept), "{kept}");
    e.fake.set_latency(Duration::ZERO);

    // 3. Run again: it resumes, embeds only the rest, and switches.
    let before = e.fake.stats().embedding_inputs;
    let mut cmd = e.homi(&url, &["memory", "reembed"]);
    to_new(&mut cmd);
    let out = cmd.assert().success().get_output().clone();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("resumed: {kept} of 300 memories")),
        "{stderr}"
    );
    assert_eq!(
        stdout.trim(),
        format!(
            "moved 300 memories from text-embedding-3-small (64 dims) to all-minilm-l6-v2 (384 dims) ({} embedded by this run)",
            300 - kept
        )
    );
    assert_eq!(e.fake.stats().embedding_inputs - before, 300 - kept as u64);
    assert_eq!(common::staged_vectors(&url).await, 0);

    // The new embedder searches; the old one is refused (exit 7, conflict).
    let mut cmd = e.homi(
        &url,
        &[
            "memory",
            "search",
            "u2 fact number 42",
            "--user",
            "u2",
            "--json",
        ],
    );
    to_new(&mut cmd);
    let found: Value = serde_json::from_slice(&cmd.assert().success().get_output().stdout).unwrap();
    assert_eq!(found["results"][0]["memory"], "u2 fact number 42");
    e.homi(&url, &["memory", "search", "fact", "--user", "u2"])
        .assert()
        .code(7);
    let mut cmd = e.homi(&url, &["memory", "reembed", "--json"]);
    to_new(&mut cmd);
    let report: Value =
        serde_json::from_slice(&cmd.assert().success().get_output().stdout).unwrap();
    assert_eq!(report["embedded"], 0);
    assert_eq!(report["from"], report["to"]);
}

async fn mem0_collection_is_copied_once(b: Backend) {
    let Some(mut e) = env(b).await else { return };
    // The mem0 side is always Postgres (mem0's pgvector / Supabase stores).
    let Some(source) = common::postgres_url().await else {
        return;
    };
    let pool = sqlx::PgPool::connect(&source).await.unwrap();
    for sql in [
        "CREATE EXTENSION IF NOT EXISTS vector",
        "CREATE SCHEMA vecs",
        "CREATE TABLE vecs.memories (id varchar PRIMARY KEY, vec vector(64), metadata jsonb)",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    for (i, (text, user)) in [
        ("Is allergic to peanuts", "alice"),
        ("Lives in Lisbon", "alice"),
        ("Prefers aisle seats", "bob"),
    ]
    .iter()
    .enumerate()
    {
        let v = homi_testkit::lexical_embedding(text, DIMS);
        let literal = format!(
            "[{}]",
            v.iter().map(f32::to_string).collect::<Vec<_>>().join(",")
        );
        sqlx::query("INSERT INTO vecs.memories VALUES ($1, $2::vector, $3)")
            .bind(format!("00000000-0000-4000-8000-00000000000{i}"))
            .bind(literal)
            .bind(sqlx::types::Json(
                json!({"data": text, "user_id": user, "category": "x"}),
            ))
            .execute(&pool)
            .await
            .unwrap();
    }
    let url = e.store().await;
    let args = [
        "memory",
        "import-mem0",
        "--from",
        &source,
        "--collection",
        "memories",
    ];
    let said = e.ok(&url, &args);
    assert_eq!(
        said.trim(),
        "read 3 rows of memories (vecs layout): 3 imported, 0 already present, 0 duplicates, 0 without text or scope"
    );
    assert!(e.ok(&url, &args).contains("0 imported, 3 already present"));
    let found: Value = serde_json::from_str(&e.ok(
        &url,
        &["memory", "search", "peanuts", "--user", "alice", "--json"],
    ))
    .unwrap();
    assert_eq!(found["results"][0]["memory"], "Is allergic to peanuts");
    assert_eq!(found["results"][0]["metadata"]["category"], "x");
    // bob's memory stays bob's.
    assert!(
        !e.ok(&url, &["memory", "list", "--user", "alice"])
            .contains("aisle")
    );
    e.homi(
        &url,
        &[
            "memory",
            "import-mem0",
            "--from",
            &source,
            "--collection",
            "nope",
        ],
    )
    .assert()
    .code(5);

    // mem0's own pgvector layout, named with --layout, the URL from
    // MEM0_DATABASE_URL (off the process list), the model with --embedding-model.
    sqlx::query("CREATE TABLE mem0_pg (id uuid PRIMARY KEY, vector vector(64), payload jsonb)")
        .execute(&pool)
        .await
        .unwrap();
    let text = "Plays chess on Tuesdays";
    let literal = format!(
        "[{}]",
        homi_testkit::lexical_embedding(text, DIMS)
            .iter()
            .map(f32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    sqlx::query(
        "INSERT INTO mem0_pg VALUES ('00000000-0000-4000-8000-0000000000aa', $1::vector, $2)",
    )
    .bind(literal)
    .bind(sqlx::types::Json(json!({"data": text, "user_id": "carol"})))
    .execute(&pool)
    .await
    .unwrap();
    let pg_args = [
        "memory",
        "import-mem0",
        "--collection",
        "mem0_pg",
        "--layout",
        "pgvector",
    ];
    // Vectors of another model are not this store's: the text is embedded
    // again by the configured embedder.
    let said = e
        .homi(&url, &pg_args)
        .args(["--embedding-model", "text-embedding-ada-002", "--json"])
        .env("MEM0_DATABASE_URL", &source)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let said: Value = serde_json::from_slice(&said).unwrap();
    assert_eq!(said["layout"], "pgvector");
    assert_eq!(
        (
            said["read"].as_u64(),
            said["imported"].as_u64(),
            said["embedded"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    let found: Value = serde_json::from_str(&e.ok(
        &url,
        &["memory", "search", "chess", "--user", "carol", "--json"],
    ))
    .unwrap();
    assert_eq!(found["results"][0]["memory"], text);
    // Without --from or MEM0_DATABASE_URL: a usage error.
    e.homi(&url, &pg_args)
        .env_remove("MEM0_DATABASE_URL")
        .assert()
        .code(2);

    // mem0's own configuration, as JSON, and its history.db: each memory
    // keeps its history.
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history.db");
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", history.display()))
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE history (id TEXT PRIMARY KEY, memory_id TEXT, old_memory TEXT, new_memory TEXT, \
         event TEXT, created_at DATETIME, updated_at DATETIME, is_deleted INTEGER, actor_id TEXT, role TEXT)",
    )
    .execute(&db)
    .await
    .unwrap();
    let peanuts = "00000000-0000-4000-8000-000000000000";
    for (id, old, new, event, at) in [
        (
            "10000000-0000-4000-8000-000000000001",
            None,
            "Is allergic to nuts",
            "ADD",
            "2024-07-01T10:00:00+00:00",
        ),
        (
            "10000000-0000-4000-8000-000000000002",
            Some("Is allergic to nuts"),
            "Is allergic to peanuts",
            "UPDATE",
            "2024-07-02T10:00:00+00:00",
        ),
    ] {
        sqlx::query("INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, NULL, 0, NULL, NULL)")
            .bind(id)
            .bind(peanuts)
            .bind(old)
            .bind(new)
            .bind(event)
            .bind(at)
            .execute(&db)
            .await
            .unwrap();
    }
    db.close().await;
    let mem0_config = dir.path().join("mem0.json");
    std::fs::write(
        &mem0_config,
        json!({
            "vector_store": {"provider": "supabase", "config": {"connection_string": source, "collection_name": "memories"}},
            "embedder": {"provider": "openai", "config": {"model": "text-embedding-3-small"}},
            "history_db_path": history,
        })
        .to_string(),
    )
    .unwrap();
    let fresh = e.store().await;
    let said: Value = serde_json::from_str(&e.ok(
        &fresh,
        &[
            "memory",
            "import-mem0",
            "--config",
            mem0_config.to_str().unwrap(),
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(
        (said["imported"].as_u64(), said["embedded"].as_u64()),
        (Some(3), Some(0)),
        "{said}"
    );
    let events: Value =
        serde_json::from_str(&e.ok(&fresh, &["memory", "history", peanuts, "--json"])).unwrap();
    let events: Vec<(&str, Option<&str>)> = events["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["event"].as_str().unwrap(), h["new_memory"].as_str()))
        .collect();
    assert_eq!(
        events,
        [
            ("ADD", Some("Is allergic to nuts")),
            ("UPDATE", Some("Is allergic to peanuts"))
        ]
    );
    // mem0's Qdrant store is Python's to read: the error says so.
    std::fs::write(
        &mem0_config,
        json!({"vector_store": {"provider": "qdrant", "config": {"path": "/tmp/q"}}}).to_string(),
    )
    .unwrap();
    let out = e
        .homi(
            &fresh,
            &[
                "memory",
                "import-mem0",
                "--config",
                mem0_config.to_str().unwrap(),
            ],
        )
        .assert()
        .code(4)
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&out).contains("homi.import_mem0(config)"));
}

conformance!(
    export_then_import_gives_the_same_bytes,
    reembed_resumes_after_a_failure_and_a_kill,
    mem0_collection_is_copied_once
);
