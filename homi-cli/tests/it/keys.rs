//! `homi key …` and `homi serve` on SQLite and Postgres: the bootstrap of
//! service access (an admin key made on the command line), listing without
//! secrets, revocation, the server reading the same configuration and store,
//! and exit codes that tell errors apart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{Read, Write};
use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;

use serde_json::Value;

use crate::common;
use common::Backend;

fn homi(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_homi"))
        .args(args)
        .env("DATABASE_URL", url)
        .env_remove("SUPABASE_URL")
        .env_remove("SUPABASE_KEY")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        // No embedder at all, even when a local model is on this machine.
        .env("HOMI_EMBEDDER", "openai")
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "not JSON: {} / {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

async fn keys_are_created_listed_and_revoked_from_the_shell(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = common::database_url(b, dir.path()).await else {
        return;
    };
    let db = db.as_str();
    let out = homi(
        db,
        &[
            "key", "create", "--name", "ops", "--scope", "admin", "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let admin = json(&out);
    let secret = admin["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("homi_sk_"));
    // Without --json: the secret alone on stdout, the explanation on stderr.
    let out = homi(
        db,
        &[
            "key",
            "create",
            "--name",
            "backend",
            "--namespace",
            "acme",
            "--scope",
            "read,write",
        ],
    );
    assert!(out.status.success());
    let plain = String::from_utf8(out.stdout).unwrap();
    assert!(plain.trim().starts_with("homi_sk_") && plain.trim().lines().count() == 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("shown once"));

    // The key works where it matters: the server on the same database.
    let config = homi_core::Config::default().with_database_url(db);
    let auth = homi_core::auth::Auth::open(&config).await.unwrap();
    let caller = auth.verify_api_key(&secret).await.unwrap();
    assert!(caller.allows(homi_core::auth::KeyScope::Admin));

    let listed = json(&homi(db, &["key", "list", "--json"]));
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        !listed.to_string().contains(&secret),
        "a listing shows a secret"
    );
    let table = String::from_utf8(homi(db, &["key", "list"]).stdout).unwrap();
    assert!(table.contains("backend") && table.contains("read,write") && table.contains("active"));

    let id = admin["id"].as_str().unwrap();
    let out = homi(db, &["key", "revoke", id]);
    assert!(out.status.success());
    assert!(
        auth.verify_api_key(&secret).await.is_err(),
        "a revoked key still works"
    );
    // Revoking again: not found (exit 5), one sentence on stderr.
    let out = homi(db, &["key", "revoke", id]);
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("homi: "));
}

#[test]
fn errors_have_their_own_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("homi.db").display());
    let db = db.as_str();
    // Usage: clap's 2.
    assert_eq!(homi(db, &["key", "create"]).status.code(), Some(2));
    assert_eq!(homi(db, &["no-such-command"]).status.code(), Some(2));
    // Invalid input: 4, naming what is wrong; as JSON with --json.
    let out = homi(db, &["key", "create", "--name", "x", "--scope", "root"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("root"));
    let out = homi(db, &["key", "revoke", "not-a-uuid", "--json"]);
    assert_eq!(out.status.code(), Some(4));
    let err: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["error"], "invalid_input", "the server's codes");
    // With --json, usage errors are JSON too.
    let out = homi(db, &["key", "create", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let err: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["error"], "usage");
    assert!(err["detail"].as_str().unwrap().contains("--name"), "{err}");
    // The confirmation email cannot be sent (SMTP does not answer): 11, and
    // the account is not created.
    let out = Command::new(env!("CARGO_BIN_EXE_homi"))
        .args(["user", "create", "mail@example.com"])
        .env("DATABASE_URL", db)
        .env("HOMI_NEW_PASSWORD", "correct horse battery")
        .env("HOMI_REQUIRE_EMAIL_CONFIRMATION", "true")
        .env("HOMI_SMTP_URL", "smtp://127.0.0.1:9")
        .env_remove("SUPABASE_URL")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(11),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let users = homi(db, &["user", "list", "--json"]);
    assert!(!String::from_utf8_lossy(&users.stdout).contains("mail@example.com"));
    // The store cannot be opened (its directory would be under a file): 10.
    std::fs::write(dir.path().join("a-file"), "").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_homi"))
        .args(["key", "list"])
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/a-file/dir/homi.db", dir.path().display()),
        )
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(10),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A bad configuration value: 3, naming the variable.
    let out = Command::new(env!("CARGO_BIN_EXE_homi"))
        .args(["key", "list"])
        .env("DATABASE_URL", "mysql://nope")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL"));
}

/// A GET over a plain TCP connection: the status and the body.
fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

async fn serve_runs_the_server_on_the_same_store(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = common::database_url(b, dir.path()).await else {
        return;
    };
    let db = db.as_str();
    // A memory and a read key made from the shell ...
    let out = homi(
        db,
        &[
            "memory",
            "add",
            "Likes tea",
            "--user",
            "acme:u1",
            "--no-infer",
        ],
    );
    // (no provider: a verbatim add still needs an embedding)
    assert_eq!(
        out.status.code(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fake = homi_testkit::FakeProvider::start().await.unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_homi"))
        .args([
            "memory",
            "add",
            "Likes tea",
            "--user",
            "acme:u1",
            "--no-infer",
        ])
        .env("DATABASE_URL", db)
        .env("OPENAI_BASE_URL", fake.base_url())
        .env("OPENAI_API_KEY", "sk-test")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = json(&homi(
        db,
        &[
            "key",
            "create",
            "--name",
            "b",
            "--namespace",
            "acme",
            "--scope",
            "read",
            "--json",
        ],
    ));
    let secret = key["secret"].as_str().unwrap().to_owned();

    // ... are what `homi serve` serves.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_homi"))
        .arg("serve")
        .env("DATABASE_URL", db)
        .env("OPENAI_BASE_URL", fake.base_url())
        .env("OPENAI_API_KEY", "sk-test")
        .env("API_HOST", "127.0.0.1")
        .env("API_PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((200, _)) = get(port, "/health", &[]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "homi serve did not answer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = get(
        port,
        "/api/v1/memories",
        &[("X-API-Key", &secret), ("X-User-Id", "u1")],
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Likes tea"), "{body}");
    // Another user of the namespace sees nothing.
    let (_, body) = get(
        port,
        "/api/v1/memories",
        &[("X-API-Key", &secret), ("X-User-Id", "u2")],
    )
    .unwrap();
    assert!(!body.contains("Likes tea"), "{body}");
    // SIGTERM: a clean exit.
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = server.wait().unwrap();
    assert!(status.success(), "{status}");
}

conformance!(
    keys_are_created_listed_and_revoked_from_the_shell,
    serve_runs_the_server_on_the_same_store
);
