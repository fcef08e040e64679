//! `homi memory …` and `homi user …` against the fake provider, on SQLite and
//! Postgres: every sub-command, JSON and readable output, scopes kept apart,
//! and exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::Output;

use assert_cmd::Command;

use homi_testkit::FakeProvider;
use serde_json::Value;

use crate::common;
use common::Backend;

struct Env {
    url: String,
    fake: FakeProvider,
    _dir: tempfile::TempDir,
}

impl Env {
    fn homi(&self, args: &[&str]) -> Output {
        self.homi_with(args, &[])
    }

    /// `homi` with more variables set.
    fn homi_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_homi"))
            .args(args)
            .env("DATABASE_URL", &self.url)
            .env("OPENAI_BASE_URL", self.fake.base_url())
            .env("OPENAI_API_KEY", "sk-test")
            .env("HOMI_EMBEDDING_DIMS", "64")
            .env("HOMI_NEW_PASSWORD", "correct horse battery")
            .env_remove("SUPABASE_URL")
            .envs(vars.iter().copied())
            .output()
            .unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.homi(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn text(&self, args: &[&str]) -> String {
        let out = self.homi(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

async fn env(backend: Backend) -> Option<Env> {
    let dir = tempfile::tempdir().unwrap();
    let url = common::database_url(backend, dir.path()).await?;
    Some(Env {
        url,
        fake: FakeProvider::start().await.unwrap(),
        _dir: dir,
    })
}

async fn every_memory_sub_command(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let added = e.json(&[
        "memory",
        "add",
        "I like tea",
        "--user",
        "alice",
        "--no-infer",
        "--json",
    ]);
    assert_eq!(added["results"][0]["event"], "ADD");
    let id = added["results"][0]["id"].as_str().unwrap().to_owned();
    let inferred = e.json(&[
        "memory",
        "add",
        "I collect stamps",
        "--user",
        "alice",
        "--metadata",
        r#"{"topic": "hobby"}"#,
        "--json",
    ]);
    assert_eq!(inferred["results"][0]["memory"], "I collect stamps");
    assert_eq!(inferred["usage"]["chat_calls"], 1);

    let found = e.json(&["memory", "search", "tea", "--user", "alice", "--json"]);
    assert_eq!(found["results"][0]["memory"], "I like tea");
    // Words alone need no embedding.
    let words = e.json(&[
        "memory", "search", "stamps", "--user", "alice", "--mode", "keyword", "--json",
    ]);
    assert_eq!(words["results"][0]["memory"], "I collect stamps");
    assert_eq!(words["usage"]["embedding_calls"], 0);
    let bad = e.homi(&[
        "memory", "search", "tea", "--user", "alice", "--mode", "fuzzy", "--json",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("mode"));
    // When it was said.
    let said = e.json(&[
        "memory",
        "add",
        "I ran a marathon",
        "--user",
        "alice",
        "--no-infer",
        "--timestamp",
        "2023-05-08T13:56:00Z",
        "--json",
    ]);
    let said_id = said["results"][0]["id"].as_str().unwrap().to_owned();
    let got = e.json(&["memory", "get", &said_id, "--json"]);
    assert_eq!(got["created_at"], "2023-05-08T13:56:00+00:00");
    let bad = e.homi(&[
        "memory",
        "add",
        "x",
        "--user",
        "alice",
        "--no-infer",
        "--timestamp",
        "May 8",
        "--json",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("timestamp"));
    e.json(&["memory", "delete", &said_id, "--json"]);
    let filtered = e.json(&[
        "memory",
        "search",
        "hobby",
        "--filters",
        r#"{"user_id": "alice", "topic": "hobby"}"#,
        "--json",
    ]);
    assert_eq!(filtered["results"].as_array().unwrap().len(), 1);
    let table = e.text(&["memory", "list", "--user", "alice"]);
    assert!(table.starts_with("ID "), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(table.contains(&id) && table.contains("I like tea"));
    assert_eq!(
        e.json(&["memory", "get", &id, "--json"])["memory"],
        "I like tea"
    );

    e.text(&[
        "memory",
        "update",
        &id,
        "I like green tea",
        "--user",
        "alice",
    ]);
    let history = e.json(&["memory", "history", &id, "--json"]);
    let events: Vec<&str> = history["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["ADD", "UPDATE"]);

    // Scopes stay apart: bob sees nothing, and cannot touch alice's memory.
    assert_eq!(
        e.json(&["memory", "list", "--user", "bob", "--json"])["results"],
        serde_json::json!([])
    );
    assert_eq!(
        e.homi(&["memory", "delete", &id, "--user", "bob"])
            .status
            .code(),
        Some(5)
    );

    assert!(e.text(&["memory", "delete", &id]).contains("deleted"));
    let other = e.json(&[
        "memory",
        "add",
        "Temporary",
        "--user",
        "alice",
        "--no-infer",
        "--json",
    ]);
    let other_id = other["results"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        e.json(&["memory", "delete", &other_id, "--json"]),
        serde_json::json!({"deleted": 1, "id": other_id})
    );
    assert_eq!(e.homi(&["memory", "get", &id]).status.code(), Some(5));
    assert_eq!(
        e.json(&["memory", "delete-all", "--user", "alice", "--json"])["deleted"],
        1
    );
    assert_eq!(
        e.json(&["memory", "list", "--user", "alice", "--json"])["results"],
        serde_json::json!([])
    );

    // Mistakes: one sentence and exit 4 (JSON with --json). No scope is an
    // error, never every user.
    for args in [
        &["memory", "search", "tea"][..],
        &["memory", "list"],
        &["memory", "delete-all"],
        &["memory", "add", "x", "--no-infer"],
        &["memory", "delete-all", "--user", " "],
    ] {
        let out = e.homi(args);
        assert_eq!(out.status.code(), Some(4), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("user_id"),
            "{args:?}"
        );
    }
    let out = e.homi(&[
        "memory",
        "add",
        "x",
        "--user",
        "a",
        "--metadata",
        "[1]",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(4));
    let err: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert!(err["detail"].as_str().unwrap().contains("metadata"));
}

async fn accounts_from_the_shell(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let user = e.json(&[
        "user",
        "create",
        "ada@example.com",
        "--name",
        "Ada",
        "--json",
    ]);
    let id = user["id"].as_str().unwrap().to_owned();
    assert!(e.text(&["user", "list"]).contains("ada@example.com"));
    // Memories of the user go with the user.
    e.json(&[
        "memory",
        "add",
        "Ada writes programs",
        "--user",
        &id,
        "--no-infer",
        "--json",
    ]);
    e.text(&["user", "delete", &id]);
    assert_eq!(
        e.json(&["user", "list", "--json"])["users"],
        serde_json::json!([])
    );
    assert_eq!(
        e.json(&["memory", "list", "--user", &id, "--json"])["results"],
        serde_json::json!([])
    );
    assert_eq!(e.homi(&["user", "delete", &id]).status.code(), Some(5));
    let out = e.homi(&["user", "create", "not-an-email"]);
    assert_eq!(out.status.code(), Some(4));
}

async fn migrate_config_check_and_completions(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    assert!(e.text(&["migrate"]).contains("up to date"));
    let report = e.text(&["config", "check"]);
    assert!(
        report.contains("database  ok")
            && report.contains("provider  ok")
            && report.contains("chat_model ok"),
        "{report}"
    );
    assert!(!report.contains("sk-test"), "a secret was printed");
    let checked = e.json(&["config", "check", "--json"]);
    assert_eq!(checked["config"]["provider"]["api_key"], "set");
    assert_eq!(checked["config"]["memory"]["chat_memories"], 3);
    assert!(checked["config"]["auth"]["password_length"].is_array());
    assert!(
        checked["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true)
    );
    // A provider that does not answer: the check says so and exits 9.
    let out = Command::new(env!("CARGO_BIN_EXE_homi"))
        .args(["config", "check"])
        .env("DATABASE_URL", &e.url)
        .env("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
        .env("OPENAI_API_KEY", "sk-test")
        .env("HOMI_PROVIDER_MAX_RETRIES", "0")
        .env("HOMI_PROVIDER_TIMEOUT_SECS", "2")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("provider  FAIL"));
    // An invalid HOMI_EMBEDDER is named; `--embedder` replaces it.
    let with_bad_embedder = |args: &[&str]| e.homi_with(args, &[("HOMI_EMBEDDER", "bogus")]);
    let out = with_bad_embedder(&["config", "check"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HOMI_EMBEDDER"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = with_bad_embedder(&["--embedder", "openai", "config", "check", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checked: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(checked["config"]["embedder"]["kind"], "openai", "{checked}");
    let completions = e.text(&["completions", "bash"]);
    assert!(completions.contains("homi") && completions.contains("memory"));
}

async fn chat_from_a_pipe_remembers(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let run = |input: &str, extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_homi"))
            .args(["chat", "--user", "sam"])
            .args(extra)
            .env("DATABASE_URL", &e.url)
            .env("OPENAI_BASE_URL", e.fake.base_url())
            .env("OPENAI_API_KEY", "sk-test")
            .env("HOMI_EMBEDDING_DIMS", "64")
            .write_stdin(input.to_owned())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (out, _) = run("I love pizza\n\nexit\nnot read\n", &[]);
    assert_eq!(out, "AI: You said: I love pizza\n");
    // The turn's extraction finished before the command ended.
    let found = e.json(&["memory", "search", "pizza", "--user", "sam", "--json"]);
    assert_eq!(found["results"][0]["memory"], "I love pizza");
    // Next time the memory is used, and shown with --show-memories.
    let (out, err) = run("What do I like?\n", &["--show-memories"]);
    assert!(out.starts_with("AI: You said: What do I like?"), "{out}");
    assert!(err.contains("[memory] I love pizza"), "{err}");
    let (out, _) = run("Hello\n", &["--json"]);
    let turn: Value = serde_json::from_str(out.trim()).unwrap();
    // The fake provider repeats the message and the memories it was given
    // (in the order of their scores, which ties may swap).
    let response = turn["response"].as_str().unwrap();
    assert!(
        response.starts_with("You said: Hello I remember: ") && response.contains("I love pizza"),
        "{turn}"
    );
    assert_eq!(turn["user_id"], "sam");
    // --session continues a conversation.
    let (out, _) = run("First\n", &["--session", "trip", "--json"]);
    let first: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(first["session_id"], "trip");
    let (out, _) = run("Second\n", &["--session", "trip", "--json"]);
    let second: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(second["session_id"], "trip");
}

/// `homi chat` on a terminal (a pseudo-terminal made by `script`): the
/// banner, a prompt for each message, the streamed reply, and goodbye.
async fn chat_on_a_terminal(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let command = format!("{} chat --user tess", env!("CARGO_BIN_EXE_homi"));
    let out = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("DATABASE_URL", &e.url)
        .env("OPENAI_BASE_URL", e.fake.base_url())
        .env("OPENAI_API_KEY", "sk-test")
        .env("HOMI_EMBEDDING_DIMS", "64")
        .write_stdin("I fly kites\nexit\n")
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(out.status.success(), "{screen}");
    for line in [
        "Chat with memory as tess (type 'exit' to quit)",
        "You: ",
        "AI: You said: I fly kites",
        "Goodbye!",
    ] {
        assert!(
            screen.contains(line),
            "{line:?} not on the screen:\n{screen}"
        );
    }
    assert!(
        screen.find("AI: You said").unwrap() < screen.find("Goodbye!").unwrap(),
        "{screen}"
    );
    let found = e.json(&["memory", "search", "kites", "--user", "tess", "--json"]);
    assert_eq!(found["results"][0]["memory"], "I fly kites");
}

/// Drives a command on a pseudo-terminal as a person would: waits for each
/// prompt, then types its answer. Prints what the terminal showed.
const EXPECT: &str = r#"
import json, os, pty, select, sys, time
steps = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
screen = b""
def read(until=None, deadline=30.0):
    global screen
    end = time.time() + deadline
    while time.time() < end and (until is None or until.encode() not in screen):
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                return
            if not chunk:
                return
            screen += chunk
for prompt, answer in steps:
    read(prompt)
    time.sleep(0.2)
    os.write(fd, answer.encode())
read(None, 10.0)
_, status = os.waitpid(pid, 0)
sys.stdout.write(screen.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;

/// `homi` on a pseudo-terminal: each `(prompt, answer)` step waits for the
/// prompt, then types the answer.
fn on_a_terminal(e: &Env, args: &[&str], steps: &[(&str, &str)]) -> (Option<i32>, String) {
    let steps = serde_json::to_string(steps).unwrap();
    let out = Command::new("python3")
        .args(["-c", EXPECT, &steps, env!("CARGO_BIN_EXE_homi")])
        .args(args)
        .env("DATABASE_URL", &e.url)
        .env("OPENAI_BASE_URL", e.fake.base_url())
        .env("OPENAI_API_KEY", "sk-test")
        .env("HOMI_EMBEDDING_DIMS", "64")
        .env_remove("HOMI_NEW_PASSWORD")
        .env_remove("SUPABASE_URL")
        .timeout(std::time::Duration::from_secs(90))
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    (out.status.code(), screen)
}

/// On a terminal, `user create` asks for the password twice without
/// echoing it, and `memory delete-all` asks first (`--yes` does not).
async fn prompts_on_a_terminal(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let phrase = "a long secret phrase\n";
    let (code, screen) = on_a_terminal(
        &e,
        &["user", "create", "rex@example.com"],
        &[("Password: ", phrase), ("Repeat it: ", phrase)],
    );
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("rex@example.com"), "{screen}");
    assert!(
        !screen.contains("a long secret phrase"),
        "the password was echoed: {screen}"
    );
    let users = e.json(&["user", "list", "--json"]);
    assert!(users.to_string().contains("rex@example.com"), "{users}");
    let (code, screen) = on_a_terminal(
        &e,
        &["user", "create", "sam@example.com"],
        &[("Password: ", phrase), ("Repeat it: ", "another phrase\n")],
    );
    assert_eq!(code, Some(4), "{screen}");
    assert!(screen.contains("differ"), "{screen}");

    e.json(&[
        "memory",
        "add",
        "I fly kites",
        "--user",
        "ula",
        "--no-infer",
        "--json",
    ]);
    let delete_all = ["memory", "delete-all", "--user", "ula"];
    let question = "Delete every memory of user ula? [y/N] ";
    let (code, screen) = on_a_terminal(&e, &delete_all, &[(question, "n\n")]);
    assert_eq!(code, Some(4), "{screen}");
    let left = e.json(&["memory", "list", "--user", "ula", "--json"]);
    assert_eq!(left["results"].as_array().unwrap().len(), 1, "{left}");
    let (code, screen) = on_a_terminal(&e, &delete_all, &[(question, "y\n")]);
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("deleted 1 memories"), "{screen}");
    e.json(&[
        "memory",
        "add",
        "I fly kites",
        "--user",
        "ula",
        "--no-infer",
        "--json",
    ]);
    let (code, screen) =
        on_a_terminal(&e, &["memory", "delete-all", "--user", "ula", "--yes"], &[]);
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        !screen.contains("[y/N]") && screen.contains("deleted 1 memories"),
        "{screen}"
    );
}

/// `homi serve --host --port` listens where the flags say, over API_PORT.
async fn serve_takes_host_and_port(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let port = homi_testkit::process::free_port().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_homi"))
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .env("DATABASE_URL", &e.url)
        .env("OPENAI_BASE_URL", e.fake.base_url())
        .env("OPENAI_API_KEY", "sk-test")
        .env("HOMI_EMBEDDING_DIMS", "64")
        .env("API_PORT", "not a port: the flag wins")
        .env_remove("SUPABASE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let up = homi_testkit::process::wait_healthy(port, std::time::Duration::from_secs(60)).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(up, "homi serve --port {port} did not answer");
}

/// Input from stdin (`memory add -`, a new user's password), and the exit
/// codes of a rate-limited provider (8).
async fn stdin_and_more_exit_codes(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let added = Command::new(env!("CARGO_BIN_EXE_homi"))
        .args([
            "memory",
            "add",
            "-",
            "--user",
            "vic",
            "--no-infer",
            "--json",
        ])
        .env("DATABASE_URL", &e.url)
        .env("OPENAI_BASE_URL", e.fake.base_url())
        .env("OPENAI_API_KEY", "sk-test")
        .env("HOMI_EMBEDDING_DIMS", "64")
        .write_stdin("Read from standard input\n")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let added: Value = serde_json::from_slice(&added).unwrap();
    assert_eq!(added["results"][0]["memory"], "Read from standard input");

    let created = Command::new(env!("CARGO_BIN_EXE_homi"))
        .args(["user", "create", "pia@example.com", "--json"])
        .env("DATABASE_URL", &e.url)
        .env_remove("HOMI_NEW_PASSWORD")
        .env_remove("SUPABASE_URL")
        .write_stdin("a password from stdin\n")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let created: Value = serde_json::from_slice(&created).unwrap();
    assert_eq!(created["email"], "pia@example.com");
    let short = Command::new(env!("CARGO_BIN_EXE_homi"))
        .args(["user", "create", "quinn@example.com"])
        .env("DATABASE_URL", &e.url)
        .env_remove("HOMI_NEW_PASSWORD")
        .env_remove("SUPABASE_URL")
        .write_stdin("short\n")
        .assert()
        .code(4)
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&short).contains("password"));

    e.fake.push_fault(
        homi_testkit::Target::Embeddings,
        homi_testkit::Fault::RateLimited {
            retry_after_secs: 3,
        },
        1,
    );
    let limited = Command::new(env!("CARGO_BIN_EXE_homi"))
        .args(["memory", "search", "anything", "--user", "vic", "--json"])
        .env("DATABASE_URL", &e.url)
        .env("OPENAI_BASE_URL", e.fake.base_url())
        .env("OPENAI_API_KEY", "sk-test")
        .env("HOMI_EMBEDDING_DIMS", "64")
        .env("HOMI_PROVIDER_MAX_RETRIES", "0")
        .assert()
        .code(8)
        .get_output()
        .stderr
        .clone();
    let err: Value = serde_json::from_slice(&limited).unwrap();
    assert_eq!(err["error"], "rate_limited");
}

conformance!(
    prompts_on_a_terminal,
    serve_takes_host_and_port,
    chat_on_a_terminal,
    stdin_and_more_exit_codes,
    chat_from_a_pipe_remembers,
    every_memory_sub_command,
    accounts_from_the_shell,
    migrate_config_check_and_completions
);
