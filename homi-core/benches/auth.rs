//! The built-in Auth client's hot path and its deliberate cost:
//! - access-token verification *with* the revocation check (HS256 signature,
//!   claims, and the auth session's row in the store), on SQLite and on Postgres;
//! - the revocation check alone (`AuthStore::session_active`), to show where
//!   the time goes;
//! - sign-in (argon2id at OWASP's parameters, plus a new auth session).
//!
//! `cargo bench -p homi-core --features auth,postgres --bench auth` (Postgres
//! with `eval "$(bash scripts/pg.sh start)"` first; without a server only
//! SQLite runs); `cargo test -p homi-core --all-features --bench auth` is the
//! smoke run of CI.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use homi_core::Config;
use homi_core::auth::{Auth, AuthStore, SignUp};

#[path = "support/data.rs"]
mod data;
use data::percentile_ms;

const PASSWORD: &str = "correct horse battery";

struct Loaded {
    name: &'static str,
    auth: Auth,
    store: Arc<dyn AuthStore>,
    tokens: Vec<String>,
}

async fn load(name: &'static str, url: &str, users: usize) -> Loaded {
    let config = Config::default().with_database_url(url);
    let stores = homi_core::open::open_stores(&config).await.unwrap();
    let auth = Auth::with_parts(&config, stores.auth.clone(), None)
        .await
        .unwrap();
    let mut tokens = Vec::with_capacity(users);
    for i in 0..users {
        let s = auth
            .sign_up(SignUp::new(format!("user{i}@bench.test"), PASSWORD))
            .await
            .unwrap()
            .session
            .unwrap();
        tokens.push(s.access_token);
    }
    Loaded {
        name,
        auth,
        store: stores.auth,
        tokens,
    }
}

async fn measure(l: &Loaded, rounds: usize) {
    let mut verify = Vec::with_capacity(rounds);
    let mut check = Vec::with_capacity(rounds);
    let now = chrono::Utc::now();
    for i in 0..rounds {
        let token = &l.tokens[i % l.tokens.len()];
        let t = Instant::now();
        let p = l.auth.verify_access_token(token).await.unwrap();
        verify.push(t.elapsed());
        let t = Instant::now();
        assert!(
            l.store
                .session_active(p.session_id, p.user_id, now)
                .await
                .unwrap()
        );
        check.push(t.elapsed());
    }
    verify.sort();
    check.sort();
    let signins = (rounds / 500).clamp(3, 20);
    let mut signin = Vec::with_capacity(signins);
    for i in 0..signins {
        let email = format!("user{}@bench.test", i % l.tokens.len());
        let t = Instant::now();
        l.auth.sign_in(&email, PASSWORD).await.unwrap();
        signin.push(t.elapsed());
    }
    signin.sort();
    // An unknown email costs the same hash work (no user enumeration by timing).
    let mut unknown = Vec::with_capacity(signins);
    for i in 0..signins {
        let t = Instant::now();
        let err = l
            .auth
            .sign_in(&format!("nobody{i}@bench.test"), PASSWORD)
            .await
            .unwrap_err();
        unknown.push(t.elapsed());
        assert_eq!(err.kind(), homi_core::ErrorKind::Unauthorized);
    }
    unknown.sort();
    println!(
        "auth/{}: verify_access_token (with revocation check) p50 {:.1} µs, p99 {:.1} µs over {rounds}; \
         revocation check alone p50 {:.1} µs, p99 {:.1} µs; sign_in p50 {:.1} ms, unknown email p50 {:.1} ms, over {signins} ({} users)",
        l.name,
        percentile_ms(&verify, 0.5) * 1000.0,
        percentile_ms(&verify, 0.99) * 1000.0,
        percentile_ms(&check, 0.5) * 1000.0,
        percentile_ms(&check, 0.99) * 1000.0,
        percentile_ms(&signin, 0.5),
        percentile_ms(&unknown, 0.5),
        l.tokens.len(),
    );
}

fn bench_auth(c: &mut Criterion) {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (users, rounds) = if smoke { (5, 200) } else { (200, 20_000) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}", dir.path().join("auth.db").display());
    let mut cases = vec![rt.block_on(load("sqlite", &sqlite_url, users))];
    if let Some(url) = rt.block_on(homi_testkit::db::postgres_url()) {
        cases.push(rt.block_on(load("postgres", &url, users)));
    }
    let mut group = c.benchmark_group("auth");
    group
        .sample_size(if smoke { 10 } else { 100 })
        .measurement_time(Duration::from_secs(if smoke { 1 } else { 5 }));
    for l in &cases {
        rt.block_on(measure(l, rounds));
        let mut i = 0usize;
        group.bench_function(format!("verify_access_token_{}", l.name), |b| {
            b.iter(|| {
                i = (i + 1) % l.tokens.len();
                rt.block_on(l.auth.verify_access_token(&l.tokens[i]))
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_auth);
criterion_main!(benches);
