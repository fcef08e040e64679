//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used)]

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
