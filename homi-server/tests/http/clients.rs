//! Client addresses: sign-in failures counted per account and network, so an
//! attacker cannot lock the owner out; rate limits per network (IPv6 by
//! /64); forwarded addresses believed only from trusted proxies. Clients
//! connect from different loopback addresses (127.0.0.x) to be different
//! networks.

use std::net::IpAddr;

use homi_testkit::db::Backend;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Server, start_configured};

const OWNER_PASSWORD: &str = "correct horse battery";

/// An HTTP client whose connections come from `ip` (a loopback address).
fn from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn sign_in(s: &Server, client: &reqwest::Client, password: &str) -> (StatusCode, Value) {
    post(
        s,
        client,
        "/api/v1/auth/signin",
        &[],
        json!({"email": "owner@example.com", "password": password}),
    )
    .await
}

async fn post(
    s: &Server,
    client: &reqwest::Client,
    path: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> (StatusCode, Value) {
    let mut req = client.post(format!("{}{path}", s.base)).json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn an_attacker_failing_sign_ins_does_not_lock_the_owner_out(backend: Backend) {
    let Some((s, _)) = start_configured(backend, false, |c| {
        c.auth.max_failed_signins = 2;
        c.server.auth_rate_limit_per_minute = 0;
    })
    .await
    else {
        return;
    };
    let owner_token = s.signup("owner@example.com").await;

    // Attackers on four networks fail until each network is locked on the
    // account (the second failure locks it): 4 × 2 failures lock the account
    // as a whole.
    for n in 2..=5 {
        let attacker = from(&format!("127.0.0.{n}"));
        let (status, body) = sign_in(&s, &attacker, "wrong guess").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let (status, body) = sign_in(&s, &attacker, "wrong again").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        let (status, body) = sign_in(&s, &attacker, "another guess").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        // Even the right password is refused from a locked network.
        let (status, _) = sign_in(&s, &attacker, OWNER_PASSWORD).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    }

    // The owner, on a network that has not been failing, signs in.
    let owner = from("127.0.0.9");
    let (status, body) = sign_in(&s, &owner, OWNER_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["access_token"].is_string());

    // While the account is locked, a fresh network gets one guess, no more.
    let fresh = from("127.0.0.6");
    let (status, _) = sign_in(&s, &fresh, "one guess").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = sign_in(&s, &fresh, "second guess").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("from this network"),
        "{body}"
    );

    // An authenticated change of password is never under the sign-in lock,
    // even from a network the attacker locked (the owner shares it).
    let bearer = format!("Bearer {owner_token}");
    let (status, body) = post(
        &s,
        &from("127.0.0.2"),
        "/api/v1/auth/change-password",
        &[("authorization", bearer.as_str())],
        json!({"current_password": OWNER_PASSWORD, "new_password": "a brand new secret"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = sign_in(&s, &owner, "a brand new secret").await;
    assert_eq!(status, StatusCode::OK);
}

async fn one_network_failing_across_accounts_is_locked(backend: Backend) {
    let Some((s, _)) = start_configured(backend, false, |c| {
        c.auth.max_failed_signins = 2;
        c.server.auth_rate_limit_per_minute = 0;
    })
    .await
    else {
        return;
    };
    s.signup("owner@example.com").await;
    let sprayer = from("127.0.0.2");
    // Twenty accounts, one guess each: the twentieth failure (10 × the
    // accounts' limit) locks the network.
    for n in 0..20 {
        let (status, body) = post(
            &s,
            &sprayer,
            "/api/v1/auth/signin",
            &[],
            json!({"email": format!("user{n}@example.com"), "password": "Summer2026!"}),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    let (status, body) = sign_in(&s, &sprayer, OWNER_PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // Everyone else still signs in.
    let (status, _) = sign_in(&s, &from("127.0.0.3"), OWNER_PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
}

async fn reset(s: &Server, client: &reqwest::Client, headers: &[(&str, &str)]) -> StatusCode {
    post(
        s,
        client,
        "/api/v1/auth/reset-password",
        headers,
        json!({"email": "nobody@example.com"}),
    )
    .await
    .0
}

#[tokio::test]
async fn rate_limits_count_networks_and_trust_only_named_proxies() {
    let (s, _) = start_configured(Backend::Sqlite, false, |c| {
        c.server.auth_rate_limit_per_minute = 3;
        c.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await
    .unwrap();
    let proxy = from("127.0.0.1");
    // Two addresses of one IPv6 /64, forwarded by the trusted proxy: one bucket.
    for host in ["2001:db8:1:2::a", "2001:db8:1:2::b", "2001:db8:1:2::a"] {
        assert_eq!(
            reset(&s, &proxy, &[("x-forwarded-for", host)]).await,
            StatusCode::ACCEPTED
        );
    }
    assert_eq!(
        reset(&s, &proxy, &[("x-forwarded-for", "2001:db8:1:2::c")]).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another /64, and an IPv4 client named in `Forwarded`: their own buckets.
    assert_eq!(
        reset(&s, &proxy, &[("x-forwarded-for", "2001:db8:1:3::a")]).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        reset(&s, &proxy, &[("forwarded", "for=198.51.100.7")]).await,
        StatusCode::ACCEPTED
    );
    // A client that is not a trusted proxy cannot escape its bucket by
    // claiming other addresses.
    let direct = from("127.0.0.2");
    for n in 0..3 {
        let claimed = format!("203.0.113.{n}");
        assert_eq!(
            reset(&s, &direct, &[("x-forwarded-for", &claimed)]).await,
            StatusCode::ACCEPTED
        );
    }
    assert_eq!(
        reset(&s, &direct, &[("x-forwarded-for", "203.0.113.200")]).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

homi_testkit::conformance!(
    an_attacker_failing_sign_ins_does_not_lock_the_owner_out,
    one_network_failing_across_accounts_is_locked,
);
