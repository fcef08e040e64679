//! `homi key …` against a fresh SQLite file: the bootstrap of service access
//! (an admin key made on the command line), listing without secrets,
//! revocation, and exit codes that tell errors apart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::{Command, Output};

use serde_json::Value;

fn homi(db: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_homi"))
        .args(args)
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env_remove("SUPABASE_URL")
        .env_remove("SUPABASE_KEY")
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

#[tokio::test]
async fn keys_are_created_listed_and_revoked_from_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("homi.db");
    let out = homi(
        &db,
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
        &db,
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
    let config =
        homi_core::Config::default().with_database_url(format!("sqlite://{}", db.display()));
    let auth = homi_core::auth::Auth::open(&config).await.unwrap();
    let caller = auth.verify_api_key(&secret).await.unwrap();
    assert!(caller.allows(homi_core::auth::KeyScope::Admin));

    let listed = json(&homi(&db, &["key", "list", "--json"]));
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        !listed.to_string().contains(&secret),
        "a listing shows a secret"
    );
    let table = String::from_utf8(homi(&db, &["key", "list"]).stdout).unwrap();
    assert!(table.contains("backend") && table.contains("read,write") && table.contains("active"));

    let id = admin["id"].as_str().unwrap();
    let out = homi(&db, &["key", "revoke", id]);
    assert!(out.status.success());
    assert!(
        auth.verify_api_key(&secret).await.is_err(),
        "a revoked key still works"
    );
    // Revoking again: not found (exit 5), one sentence on stderr.
    let out = homi(&db, &["key", "revoke", id]);
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("homi: "));
}

#[test]
fn errors_have_their_own_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("homi.db");
    // Usage: clap's 2.
    assert_eq!(homi(&db, &["key", "create"]).status.code(), Some(2));
    assert_eq!(homi(&db, &["no-such-command"]).status.code(), Some(2));
    // Invalid input: 4, naming what is wrong; as JSON with --json.
    let out = homi(&db, &["key", "create", "--name", "x", "--scope", "root"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("root"));
    let out = homi(&db, &["key", "revoke", "not-a-uuid", "--json"]);
    assert_eq!(out.status.code(), Some(4));
    let err: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["error"], "InvalidInput");
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
