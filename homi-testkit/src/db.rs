//! Databases for the tests of every crate: a fresh store per test on SQLite
//! or on the Postgres test server that `scripts/pg.sh` starts, the
//! [`conformance!`](crate::conformance) macro that runs a test on each, and
//! scans that tell whether a text is anywhere in a database.

#![allow(clippy::unwrap_used, clippy::panic)]

use sqlx::Row;

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

/// The store a conformance test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A temp SQLite file.
    Sqlite,
    /// A fresh database on the Postgres test server.
    Postgres,
}

/// Instantiates each conformance test (an `async fn(Backend)` of the calling
/// module, which imports `Backend`) once per store: SQLite, and Postgres when
/// the calling crate's `postgres` feature is on.
#[macro_export]
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

/// A fresh database for one test: a file in `dir` for SQLite, a new database
/// on the Postgres test server (or `None`, see [`postgres_url`]).
pub async fn database_url(backend: Backend, dir: &std::path::Path) -> Option<String> {
    match backend {
        Backend::Sqlite => Some(format!("sqlite://{}", dir.join("homi.db").display())),
        Backend::Postgres => postgres_url().await,
    }
}

/// Whether `needle` is anywhere in the bytes of the SQLite database at `db`:
/// the file, its WAL and shared-memory files.
pub async fn sqlite_files_hold(db: &std::path::Path, needle: &str) -> bool {
    // A deletion's scrub of the write-ahead log may wait for the end of the
    // store's scrub interval (a second): give it that long to go.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    loop {
        let held = sqlite_files_hold_now(db, needle);
        if !held || std::time::Instant::now() >= deadline {
            return held;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Whether `needle` is in the database's files at this moment.
pub fn sqlite_files_hold_now(db: &std::path::Path, needle: &str) -> bool {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        if let Ok(b) = std::fs::read(format!("{}{suffix}", db.display())) {
            all.extend(b);
        }
    }
    all.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Whether `needle` is in any column of any of Homi's tables on Postgres.
pub async fn postgres_holds(url: &str, needle: &str) -> bool {
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

/// Vectors staged by a re-embedding (`homi memory reembed`), counted in SQL.
pub async fn staged_vectors(url: &str) -> i64 {
    count_rows(url, "homi_memory_reembed").await
}

/// The rows of one of Homi's tables, counted in SQL.
pub async fn count_rows(url: &str, table: &str) -> i64 {
    number(url, &format!("SELECT count(*) FROM {table}")).await
}

/// The first column of every row `sql` returns, as text (`CAST` it in the
/// statement when it is not).
pub async fn texts(url: &str, sql: &str) -> Vec<String> {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap()
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap()
    }
}

/// The one number `sql` answers (`SELECT count(*) …`).
pub async fn number(url: &str, sql: &str) -> i64 {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap()
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap()
    }
}
