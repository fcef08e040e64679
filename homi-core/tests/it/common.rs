//! Helpers shared by the integration tests.
#![allow(
    dead_code,
    unused_macros,
    unexpected_cfgs,
    clippy::unwrap_used,
    clippy::panic
)]

/// A new, empty database on the Postgres test server started by
/// `scripts/pg.sh` (`HOMI_TEST_DATABASE_URL`). Without a server this returns
/// `None` and the test is skipped, unless `HOMI_REQUIRE_POSTGRES=1` (as
/// `scripts/test.sh` sets), when it fails.
pub async fn postgres_url() -> Option<String> {
    let Ok(base) = std::env::var("HOMI_TEST_DATABASE_URL") else {
        assert!(
            std::env::var("HOMI_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "HOMI_TEST_DATABASE_URL is not set: start the test server with `eval \"$(bash scripts/pg.sh start)\"`"
        );
        eprintln!("skipped: HOMI_TEST_DATABASE_URL is not set (bash scripts/pg.sh start)");
        return None;
    };
    Some(fresh_postgres_database(&base).await)
}

/// The plain TLS-enabled server started by `scripts/pg.sh`
/// (`HOMI_TEST_TLS_DATABASE_URL`); same skip/fail rule as [`postgres_url`].
pub fn tls_postgres_url() -> Option<String> {
    let Ok(url) = std::env::var("HOMI_TEST_TLS_DATABASE_URL") else {
        assert!(
            std::env::var("HOMI_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "HOMI_TEST_TLS_DATABASE_URL is not set: start the test servers with `eval \"$(bash scripts/pg.sh start)\"`"
        );
        eprintln!("skipped: HOMI_TEST_TLS_DATABASE_URL is not set (bash scripts/pg.sh start)");
        return None;
    };
    Some(url)
}

#[cfg(feature = "postgres")]
async fn fresh_postgres_database(base: &str) -> String {
    let name = format!("homi_t_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(base).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .unwrap();
    let (prefix, rest) = base.rsplit_once('/').unwrap();
    let query = rest
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{prefix}/{name}{query}")
}

#[cfg(not(feature = "postgres"))]
async fn fresh_postgres_database(_: &str) -> String {
    unreachable!("Postgres tests are compiled only with the postgres feature")
}

/// The store a conformance test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A temp SQLite file.
    Sqlite,
    /// A fresh database on the Postgres test server.
    Postgres,
}

/// Instantiates each conformance test (an `async fn(Backend)` of the test
/// file, which imports `common::Backend`) once per store.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Backend::Sqlite).await
            })*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Backend::Postgres).await
            })*
        }
    };
}

/// Whether `needle` is anywhere in the bytes of the SQLite database at `db`:
/// the file, its WAL and shared-memory files.
pub fn sqlite_files_hold(db: &std::path::Path, needle: &str) -> bool {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        if let Ok(b) = std::fs::read(format!("{}{suffix}", db.display())) {
            all.extend(b);
        }
    }
    all.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Whether `needle` is in any column of any of Homi's tables on Postgres.
#[cfg(feature = "postgres")]
pub async fn postgres_holds(url: &str, needle: &str) -> bool {
    use sqlx::Row;
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let columns = sqlx::query(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name LIKE 'homi\\_%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for c in &columns {
        let (table, column): (String, String) = (c.get(0), c.get(1));
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE \"{column}\"::text LIKE $1)");
        let found: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(format!("%{needle}%"))
            .fetch_one(&pool)
            .await
            .unwrap();
        if found {
            eprintln!("found in {table}.{column}");
            return true;
        }
    }
    false
}

#[cfg(not(feature = "postgres"))]
pub async fn postgres_holds(_: &str, _: &str) -> bool {
    unreachable!("Postgres tests are compiled only with the postgres feature")
}

/// JWT claims: `base` with the keys of `over` set, or removed where `over`
/// has them as null.
pub fn with_claims(mut base: serde_json::Value, over: serde_json::Value) -> serde_json::Value {
    if let (Some(b), Some(o)) = (base.as_object_mut(), over.as_object()) {
        for (k, v) in o {
            if v.is_null() {
                b.remove(k);
            } else {
                b.insert(k.clone(), v.clone());
            }
        }
    }
    base
}

/// Asserts that `auth` refuses `token` as unauthorized.
#[cfg(feature = "auth")]
pub async fn assert_refused(auth: &homi_core::auth::Auth, token: &str, what: &str) {
    match auth.verify_access_token(token).await {
        Ok(p) => panic!("{what}: accepted as {p:?}"),
        Err(e) => assert_eq!(e.kind(), homi_core::ErrorKind::Unauthorized, "{what}: {e}"),
    }
}

/// A fresh database for one test: a file in `dir` for SQLite, a new database
/// on the Postgres test server (or `None`, see [`postgres_url`]).
pub async fn database_url(backend: Backend, dir: &std::path::Path) -> Option<String> {
    match backend {
        Backend::Sqlite => Some(format!("sqlite://{}", dir.join("homi.db").display())),
        Backend::Postgres => postgres_url().await,
    }
}

/// A configuration on `url` with the fake provider at `base_url` (embeddings
/// of `dims`), short timeouts and `retries` retries.
pub fn provider_config(url: &str, base_url: &str, dims: usize, retries: u32) -> homi_core::Config {
    homi_core::Config::default()
        .with_database_url(url)
        .with_openai_base_url(base_url)
        .with_openai_api_key("sk-test")
        .with_embedding_model("text-embedding-3-small", Some(dims))
        .with_provider_timeout(std::time::Duration::from_secs(2))
        .with_provider_max_retries(retries)
}

/// Vectors staged by a re-embedding (`homi memory reembed`), counted in SQL.
pub async fn staged_vectors(url: &str) -> i64 {
    if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query_scalar("SELECT count(*) FROM homi_memory_reembed")
            .fetch_one(&pool)
            .await
            .unwrap()
    } else {
        postgres_staged_vectors(url).await
    }
}

#[cfg(feature = "postgres")]
async fn postgres_staged_vectors(url: &str) -> i64 {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::query_scalar("SELECT count(*) FROM homi_memory_reembed")
        .fetch_one(&pool)
        .await
        .unwrap()
}

#[cfg(not(feature = "postgres"))]
async fn postgres_staged_vectors(_: &str) -> i64 {
    unreachable!("Postgres tests are compiled only with the postgres feature")
}
