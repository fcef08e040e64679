//! Helpers of homi-core's tests. The test databases and `conformance!` are
//! homi-testkit's (`homi_testkit::db`), shared with the server's and the
//! CLI's tests; what follows needs homi-core itself.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

pub use homi_testkit::db::*;

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
