//! The Supabase Auth backend against the test kit's fake Supabase Auth (GoTrue)
//! over real HTTP: the same operations as the built-in backend, GoTrue's
//! errors mapped to Homi's, and access tokens verified locally (HS256 with the
//! project secret, or ES256 with the project's JWKS).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashMap;
use std::time::Duration;

use homi_core::auth::{Auth, AuthBackend, SignUp, UserUpdate};
use homi_core::config::SupabaseConfig;
use homi_core::{AddOptions, Config, ErrorKind, Memory, Scope};
use homi_testkit::FakeProvider;
use homi_testkit::supabase::{FakeSupabase, FakeSupabaseOptions, SupabaseSigning};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::common;
use common::{assert_refused, with_claims};

const PASSWORD: &str = "correct horse battery";

struct Env {
    fake: FakeSupabase,
    auth: Auth,
    config: Config,
    _dir: tempfile::TempDir,
}

async fn env(signing: SupabaseSigning, autoconfirm: bool, key: Key, secret: bool) -> Env {
    let fake = FakeSupabase::start_with(FakeSupabaseOptions {
        signing,
        autoconfirm,
        ..FakeSupabaseOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = match key {
        Key::Anon => fake.anon_key(),
        Key::ServiceRole => fake.service_role_key(),
        Key::Secret => fake.secret_key(),
    };
    let mut vars = HashMap::from([
        ("SUPABASE_URL".to_string(), fake.url()),
        ("SUPABASE_KEY".to_string(), key),
        (
            "DATABASE_URL".to_string(),
            format!("sqlite://{}", dir.path().join("homi.db").display()),
        ),
    ]);
    if secret {
        vars.insert("SUPABASE_JWT_SECRET".into(), fake.jwt_secret());
    }
    let config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let auth = Auth::open(&config).await.unwrap();
    assert_eq!(auth.backend(), AuthBackend::Supabase);
    Env {
        fake,
        auth,
        config,
        _dir: dir,
    }
}

#[derive(Clone, Copy)]
enum Key {
    Anon,
    ServiceRole,
    Secret,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn lifecycle_through_supabase_auth() {
    let e = env(SupabaseSigning::Hs256, true, Key::Anon, true).await;
    let up = e
        .auth
        .sign_up(SignUp::new("Grace@Example.com", PASSWORD).with_full_name("Grace Hopper"))
        .await
        .unwrap();
    let s = up.session.unwrap();
    assert_eq!(up.user.full_name.as_deref(), Some("Grace Hopper"));
    assert_eq!(s.token_type, "bearer");
    let p = e.auth.verify_access_token(&s.access_token).await.unwrap();
    assert_eq!(p.user_id, up.user.id);
    let me = e.auth.get_user(&p).await.unwrap();
    assert_eq!(me.email, "grace@example.com");

    let u = e
        .auth
        .update_user(&p, UserUpdate::default().full_name("Rear Admiral Hopper"))
        .await
        .unwrap();
    assert_eq!(u.full_name.as_deref(), Some("Rear Admiral Hopper"));

    // Errors mapped from GoTrue's JSON.
    let dup = e
        .auth
        .sign_up(SignUp::new("grace@example.com", PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::Conflict, "{dup}");
    let bad = e
        .auth
        .sign_in("grace@example.com", "wrong password")
        .await
        .unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::Unauthorized, "{bad}");
    assert_eq!(bad.to_string(), "unauthorized: invalid email or password");

    // Refresh rotates; a reused refresh token is refused (and GoTrue revokes).
    let r = e.auth.refresh(&s.refresh_token).await.unwrap();
    e.auth.verify_access_token(&r.access_token).await.unwrap();
    let reuse = e.auth.refresh(&s.refresh_token).await.unwrap_err();
    assert_eq!(reuse.kind(), ErrorKind::Unauthorized, "{reuse}");
    assert!(reuse.to_string().contains("already used"), "{reuse}");

    // Sign-out: the token is refused by Homi at once, although its signature
    // and expiry are still fine.
    let s2 = e.auth.sign_in("grace@example.com", PASSWORD).await.unwrap();
    let p2 = e.auth.verify_access_token(&s2.access_token).await.unwrap();
    e.auth.sign_out(&p2).await.unwrap();
    assert_refused(&e.auth, &s2.access_token, "signed-out Supabase session").await;
    assert!(e.auth.refresh(&s2.refresh_token).await.is_err());
    // Signing out a session Supabase already ended still refuses its token.
    let s3 = e.auth.sign_in("grace@example.com", PASSWORD).await.unwrap();
    let p3 = e.auth.verify_access_token(&s3.access_token).await.unwrap();
    let s4 = e.auth.sign_in("grace@example.com", PASSWORD).await.unwrap();
    let p4 = e.auth.verify_access_token(&s4.access_token).await.unwrap();
    e.auth
        .change_password(&p4, PASSWORD, "another password")
        .await
        .unwrap();
    e.auth.sign_out(&p3).await.unwrap();
    assert_refused(
        &e.auth,
        &s3.access_token,
        "signed out after Supabase ended it",
    )
    .await;
    let h = e.auth.health().await;
    assert!(h.healthy, "{h:?}");
}

#[tokio::test]
async fn an_email_change_needs_the_current_password() {
    let e = env(SupabaseSigning::Hs256, true, Key::Anon, true).await;
    let up = e
        .auth
        .sign_up(SignUp::new("grace@example.com", PASSWORD))
        .await
        .unwrap();
    let p = e
        .auth
        .verify_access_token(&up.session.unwrap().access_token)
        .await
        .unwrap();
    // A new email needs the current password (a stolen session cannot take
    // the account over); Supabase then confirms the address itself.
    let err = e
        .auth
        .update_user(&p, UserUpdate::default().email("grace@navy.test"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let err = e
        .auth
        .update_user(
            &p,
            UserUpdate::default()
                .email("grace@navy.test")
                .current_password("a wrong guess"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    e.auth
        .update_user(
            &p,
            UserUpdate::default()
                .email("grace@navy.test")
                .current_password(PASSWORD),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn the_client_address_is_passed_on_to_gotrue() {
    let e = env(SupabaseSigning::Hs256, true, Key::Anon, true).await;
    let client = e.auth.for_client("2001:db8::7".parse().unwrap());
    client
        .sign_up(SignUp::new("ada@homi.test", PASSWORD))
        .await
        .unwrap();
    let s = client.sign_in("ada@homi.test", PASSWORD).await.unwrap();
    client.refresh(&s.refresh_token).await.unwrap();
    client
        .request_password_reset("ada@homi.test")
        .await
        .unwrap();
    // Without a client (a library call), no address is claimed.
    e.auth.sign_in("ada@homi.test", PASSWORD).await.unwrap();
    let seen = eventually(|| {
        let seen = e.fake.forwarded_for();
        seen.iter()
            .any(|(path, _)| path.starts_with("/auth/v1/recover"))
            .then_some(seen)
    })
    .await;
    let of = |prefix: &str| -> Vec<Option<&str>> {
        seen.iter()
            .filter(|(path, _)| path.starts_with(prefix))
            .map(|(_, xff)| xff.as_deref())
            .collect()
    };
    let from = Some("2001:db8::7");
    assert_eq!(of("/auth/v1/signup"), [from]);
    assert_eq!(of("/auth/v1/token?grant_type=password"), [from, None]);
    assert_eq!(of("/auth/v1/token?grant_type=refresh_token"), [from]);
    assert_eq!(of("/auth/v1/recover"), [from]);
    // Hosted Supabase's header goes only with a secret key.
    assert!(
        e.fake.sb_forwarded_for().iter().all(|(_, h)| h.is_none()),
        "Sb-Forwarded-For with an anon key"
    );
}

/// Hosted Supabase counts per-IP limits by `Sb-Forwarded-For`, sent with a
/// secret key (`sb_secret_…`); self-hosted GoTrue by `X-Forwarded-For`.
#[tokio::test]
async fn a_secret_key_passes_the_client_to_hosted_supabase_too() {
    let e = env(SupabaseSigning::Hs256, true, Key::Secret, true).await;
    let client = e.auth.for_client("203.0.113.9".parse().unwrap());
    client
        .sign_up(SignUp::new("sb@homi.test", PASSWORD))
        .await
        .unwrap();
    client.sign_in("sb@homi.test", PASSWORD).await.unwrap();
    e.auth.sign_in("sb@homi.test", PASSWORD).await.unwrap();
    let sent = |headers: Vec<(String, Option<String>)>| -> Vec<Option<String>> {
        headers
            .into_iter()
            .filter(|(path, _)| {
                path.starts_with("/auth/v1/signup") || path.starts_with("/auth/v1/token")
            })
            .map(|(_, h)| h)
            .collect()
    };
    let from = Some("203.0.113.9".to_owned());
    assert_eq!(
        sent(e.fake.sb_forwarded_for()),
        [from.clone(), from.clone(), None]
    );
    assert_eq!(sent(e.fake.forwarded_for()), [from.clone(), from, None]);
    // The secret key has the service role: it deletes users.
    let s = e.auth.sign_in("sb@homi.test", PASSWORD).await.unwrap();
    assert!(e.auth.delete_user(s.user.id).await.unwrap());
}

#[tokio::test]
async fn change_and_reset_password() {
    let e = env(SupabaseSigning::Hs256, true, Key::Anon, true).await;
    let s = e
        .auth
        .sign_up(SignUp::new("ken@homi.test", PASSWORD))
        .await
        .unwrap()
        .session
        .unwrap();
    let other = e.auth.sign_in("ken@homi.test", PASSWORD).await.unwrap();
    let p = e.auth.verify_access_token(&s.access_token).await.unwrap();
    let wrong = e
        .auth
        .change_password(&p, "not my password", "a new password")
        .await
        .unwrap_err();
    assert_eq!(wrong.kind(), ErrorKind::Unauthorized, "{wrong}");
    e.auth
        .change_password(&p, PASSWORD, "a new password")
        .await
        .unwrap();
    assert!(e.auth.sign_in("ken@homi.test", PASSWORD).await.is_err());
    e.auth
        .sign_in("ken@homi.test", "a new password")
        .await
        .unwrap();
    // Other sessions end: Homi refuses their access tokens at once, and
    // Supabase their refresh tokens; the caller's session goes on.
    assert_refused(
        &e.auth,
        &other.access_token,
        "another session after a password change",
    )
    .await;
    assert!(e.auth.refresh(&other.refresh_token).await.is_err());
    e.auth.verify_access_token(&s.access_token).await.unwrap();
    e.auth.get_user(&p).await.unwrap();

    // Reset: the same answer for unknown emails; the link's token hash works once.
    e.auth
        .request_password_reset("nobody@homi.test")
        .await
        .unwrap();
    e.auth
        .request_password_reset("ken@homi.test")
        .await
        .unwrap();
    // Supabase is asked after the answer: wait for both requests to arrive.
    eventually(|| {
        let recovers = e
            .fake
            .requests()
            .iter()
            .filter(|(_, path)| path.starts_with("/auth/v1/recover"))
            .count();
        (recovers == 2).then_some(())
    })
    .await;
    let hash = e.fake.last_recovery_token_hash().unwrap();
    e.auth
        .confirm_password_reset(&hash, "the reset password")
        .await
        .unwrap();
    let after = e
        .auth
        .sign_in("ken@homi.test", "the reset password")
        .await
        .unwrap();
    assert!(
        e.auth
            .sign_in("ken@homi.test", "a new password")
            .await
            .is_err()
    );
    // A reset ends every earlier session, the one that changed the password too.
    assert_refused(&e.auth, &s.access_token, "a session from before the reset").await;
    e.auth
        .verify_access_token(&after.access_token)
        .await
        .unwrap();
    let reused = e
        .auth
        .confirm_password_reset(&hash, "yet another password")
        .await
        .unwrap_err();
    assert_eq!(reused.kind(), ErrorKind::InvalidInput, "{reused}");
}

#[tokio::test]
async fn a_project_with_email_confirmation_signs_up_without_a_session() {
    let e = env(SupabaseSigning::Hs256, false, Key::Anon, true).await;
    let up = e
        .auth
        .sign_up(SignUp::new("new@homi.test", PASSWORD))
        .await
        .unwrap();
    // The original answered 400 here; Homi returns the user, not signed in.
    assert!(up.session.is_none());
    assert!(up.user.email_confirmed_at.is_none());
    let err = e.auth.sign_in("new@homi.test", PASSWORD).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden, "{err}");
    // A lost link can be sent again; the new one replaces the old.
    let first = e.fake.confirmation_token_hash("new@homi.test").unwrap();
    e.auth.resend_confirmation("new@homi.test").await.unwrap();
    let hash = eventually(|| {
        e.fake
            .confirmation_token_hash("new@homi.test")
            .filter(|h| *h != first)
    })
    .await;
    assert_eq!(
        e.auth.confirm_email(&first).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let user = e.auth.confirm_email(&hash).await.unwrap();
    assert!(user.email_confirmed_at.is_some());
    e.auth.sign_in("new@homi.test", PASSWORD).await.unwrap();
}

#[tokio::test]
async fn jwks_verification_and_attacks() {
    let e = env(SupabaseSigning::Es256, true, Key::Anon, false).await;
    let s = e
        .auth
        .sign_up(SignUp::new("es@homi.test", PASSWORD))
        .await
        .unwrap()
        .session
        .unwrap();
    let header = jsonwebtoken::decode_header(&s.access_token).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    let p = e.auth.verify_access_token(&s.access_token).await.unwrap();

    let t = now();
    let iss = format!("{}/auth/v1", e.fake.url());
    let claims = |over: serde_json::Value| {
        with_claims(
            json!({"sub": p.user_id.to_string(), "session_id": p.session_id.to_string(),
                   "aud": "authenticated", "role": "authenticated", "iss": iss, "iat": t,
                   "exp": t + 600}),
            over,
        )
    };
    // The control: a token the project signs is accepted.
    e.auth
        .verify_access_token(&e.fake.sign(&claims(json!({}))))
        .await
        .unwrap();
    for (over, what) in [
        (json!({"exp": t - 60}), "expired"),
        (json!({"nbf": t + 600}), "not yet valid"),
        (json!({"iat": t + 600}), "issued in the future"),
        (json!({"aud": "anon"}), "wrong aud"),
        (
            json!({"iss": "https://evil.supabase.co/auth/v1"}),
            "wrong iss",
        ),
        (json!({"role": "anon"}), "not a user token"),
        (json!({"session_id": null}), "no session"),
    ] {
        assert_refused(&e.auth, &e.fake.sign(&claims(over)), what).await;
    }
    // The project's anon key is a JWT too, but no user's access token.
    assert_refused(&e.auth, &e.fake.anon_key(), "the anon key").await;
    // Algorithm confusion: HS256 keyed with the published public key.
    let pem = e.fake.es256_public_pem().unwrap();
    let confused = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(json!({})),
        &EncodingKey::from_secret(pem.as_bytes()),
    )
    .unwrap();
    assert_refused(&e.auth, &confused, "HS256 signed with the ES256 public key").await;
    // HS256 with the project's real secret is refused too when Homi was not
    // given the secret (only JWKS keys are trusted then).
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(json!({})),
        &EncodingKey::from_secret(e.fake.jwt_secret().as_bytes()),
    )
    .unwrap();
    assert_refused(&e.auth, &hs, "HS256 without SUPABASE_JWT_SECRET").await;
    // ES256 with a key the project does not publish.
    let mut foreign = Header::new(Algorithm::ES256);
    foreign.kid = header.kid.clone();
    let attacker = jsonwebtoken::encode(
        &foreign,
        &claims(json!({})),
        &EncodingKey::from_ec_pem(ATTACKER_EC_KEY.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_refused(&e.auth, &attacker, "ES256 signed by another key").await;
    let mut unknown = Header::new(Algorithm::ES256);
    unknown.kid = Some("not-published".into());
    let attacker = jsonwebtoken::encode(
        &unknown,
        &claims(json!({})),
        &EncodingKey::from_ec_pem(ATTACKER_EC_KEY.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_refused(&e.auth, &attacker, "ES256 with an unknown kid").await;
    // Tampered payload.
    use base64::Engine as _;
    let mut parts: Vec<String> = s.access_token.split('.').map(str::to_owned).collect();
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(claims(json!({"sub": uuid::Uuid::new_v4().to_string()})).to_string());
    assert_refused(&e.auth, &parts.join("."), "tampered payload").await;
    // After all that, the real token still verifies.
    e.auth.verify_access_token(&s.access_token).await.unwrap();
}

#[tokio::test]
async fn gotrue_errors_map_to_homi_kinds() {
    let e = env(SupabaseSigning::Hs256, true, Key::Anon, true).await;
    e.fake.push_fault(429, 1);
    let err = e.auth.sign_in("a@homi.test", PASSWORD).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    e.fake.push_fault(500, 1);
    let err = e.auth.sign_in("a@homi.test", PASSWORD).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    // Homi's own policy is checked before any request; Supabase's after.
    let err = e
        .auth
        .sign_up(SignUp::new("a@homi.test", "short"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("password"), "{err}");
    let mut config = e.config.clone();
    config.auth.password_min_length = 1;
    let lax = Auth::open(&config).await.unwrap();
    let err = lax
        .sign_up(SignUp::new("a@homi.test", "abc"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("password"), "{err}");

    // A wrong project key is a configuration error that names the variable.
    let mut wrong = e.config.clone();
    wrong.auth.supabase = Some(SupabaseConfig::new(e.fake.url(), "not-the-key"));
    let wrong = Auth::open(&wrong).await.unwrap();
    let err = wrong.sign_in("a@homi.test", PASSWORD).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("SUPABASE_KEY"), "{err}");
    assert!(!wrong.health().await.healthy);

    // Nothing listening: unavailable, not a client error.
    let mut gone = e.config.clone();
    gone.auth.supabase = Some(SupabaseConfig::new("http://127.0.0.1:9", "k"));
    let gone = Auth::open(&gone).await.unwrap();
    let err = gone.sign_in("a@homi.test", PASSWORD).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

#[tokio::test]
async fn deleting_a_user_removes_the_account_and_their_memories() {
    let e = env(SupabaseSigning::Hs256, true, Key::ServiceRole, true).await;
    let s = e
        .auth
        .sign_up(SignUp::new("bye@homi.test", PASSWORD))
        .await
        .unwrap()
        .session
        .unwrap();
    let fake = FakeProvider::start().await.unwrap();
    let config = e
        .config
        .clone()
        .with_openai_base_url(fake.base_url())
        .with_openai_api_key("sk-test")
        .with_embedding_model("text-embedding-3-small", Some(32));
    let memory = Memory::open(&config).await.unwrap();
    let scope = Scope::user(s.user.id.to_string());
    memory
        .add(
            "Likes long walks",
            &scope,
            AddOptions::default().infer(false),
        )
        .await
        .unwrap();
    assert!(e.auth.delete_user(s.user.id).await.unwrap());
    assert!(
        memory
            .get_all(&scope, Default::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_refused(&e.auth, &s.access_token, "token of a deleted user").await;
    assert!(e.auth.sign_in("bye@homi.test", PASSWORD).await.is_err());
    assert!(!e.auth.delete_user(s.user.id).await.unwrap());

    // With the anon key, Supabase refuses: a clear error, not a silent no-op.
    let anon = env(SupabaseSigning::Hs256, true, Key::Anon, true).await;
    let id = anon
        .auth
        .sign_up(SignUp::new("stay@homi.test", PASSWORD))
        .await
        .unwrap()
        .user
        .id;
    let err = anon.auth.delete_user(id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden, "{err}");
    assert!(err.to_string().contains("service-role"), "{err}");
}

#[tokio::test]
async fn rs256_jwks_keys_are_pinned_to_their_algorithm() {
    let e = env(SupabaseSigning::Rs256, true, Key::Anon, false).await;
    let s = e
        .auth
        .sign_up(SignUp::new("rsa@homi.test", PASSWORD))
        .await
        .unwrap()
        .session
        .unwrap();
    let header = jsonwebtoken::decode_header(&s.access_token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    let p = e.auth.verify_access_token(&s.access_token).await.unwrap();
    let t = now();
    let claims = json!({"sub": p.user_id.to_string(), "session_id": p.session_id.to_string(),
        "aud": "authenticated", "role": "authenticated", "iss": format!("{}/auth/v1", e.fake.url()),
        "iat": t, "exp": t + 600});
    e.auth
        .verify_access_token(&e.fake.sign(&claims))
        .await
        .unwrap();
    // HS256 keyed with the published RSA public key (the classic confusion).
    let pem = e.fake.rs256_public_pem().unwrap();
    let mut confused = Header::new(Algorithm::HS256);
    confused.kid = header.kid.clone();
    let forged = jsonwebtoken::encode(
        &confused,
        &claims,
        &EncodingKey::from_secret(pem.as_bytes()),
    )
    .unwrap();
    assert_refused(&e.auth, &forged, "HS256 signed with the RSA public key").await;
    // ES256 under the RSA key's kid: the key decides the algorithm.
    let mut wrong_alg = Header::new(Algorithm::ES256);
    wrong_alg.kid = header.kid.clone();
    let forged = jsonwebtoken::encode(
        &wrong_alg,
        &claims,
        &EncodingKey::from_ec_pem(ATTACKER_EC_KEY.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_refused(&e.auth, &forged, "ES256 under an RSA kid").await;
    // RS256 signed by another RSA key under the project's kid.
    let mut foreign = Header::new(Algorithm::RS256);
    foreign.kid = header.kid.clone();
    let forged = jsonwebtoken::encode(
        &foreign,
        &claims,
        &EncodingKey::from_rsa_pem(ATTACKER_RSA_KEY.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_refused(&e.auth, &forged, "RS256 signed by another key").await;
}

/// Polls `f` until it gives a value, with a deadline (for work Homi does
/// after answering).
async fn eventually<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "never happened");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

const ATTACKER_RSA_KEY: &str = include_str!("../data/attacker_rsa.pem");

/// A P-256 key made for these tests only (the attacker's).
const ATTACKER_EC_KEY: &str = include_str!("../data/attacker_ec.pem");
