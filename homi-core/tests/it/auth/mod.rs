//! The Auth conformance suite (built-in accounts): every test runs unchanged on
//! the SQLite store (a temp file) and on Postgres (a fresh database on the test
//! server). Emails go over real SMTP to the test kit's sink on loopback.
//!
//! The attack tests each forge or replay one thing; removing the check that
//! stops it makes the test fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use homi_core::auth::{Auth, AuthSession, SignUp, UserUpdate};
use homi_core::{AddOptions, Config, ErrorKind, Memory, Scope};
use homi_testkit::FakeProvider;
use homi_testkit::smtp::{ReceivedMail, SmtpSink};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::common;
use common::{Backend, assert_refused, postgres_holds, sqlite_files_hold, with_claims};

mod tokens;

/// The HS256 secret of these tests, so they can forge tokens with the real key.
const SECRET: &str = "test-secret-test-secret-test-secret-0123456789";
const PASSWORD: &str = "correct horse battery";

struct Env {
    backend: Backend,
    auth: Auth,
    config: Config,
    smtp: SmtpSink,
    url: String,
    dir: tempfile::TempDir,
}

async fn env(backend: Backend) -> Option<Env> {
    env_with(backend, |_| {}).await
}

async fn env_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<Env> {
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("homi.db").display()),
        Backend::Postgres => common::postgres_url().await?,
    };
    let smtp = SmtpSink::start().await.unwrap();
    let mut config = Config::default().with_database_url(&url);
    config.auth.jwt_secret = Some(SECRET.to_owned().into());
    config.auth.smtp_url = Some(smtp.url().into());
    config.auth.smtp_from = "Homi <auth@homi.test>".into();
    config.auth.public_url = "https://app.homi.test".into();
    tweak(&mut config);
    let auth = Auth::open(&config).await.unwrap();
    Some(Env {
        backend,
        auth,
        config,
        smtp,
        url,
        dir,
    })
}

impl Env {
    async fn sign_up(&self, email: &str) -> AuthSession {
        self.auth
            .sign_up(SignUp::new(email, PASSWORD).with_full_name("Ada Lovelace"))
            .await
            .unwrap()
            .session
            .expect("signed in at once")
    }

    /// Whether `needle` is anywhere in the database: every byte of the SQLite
    /// files; every column of every table on Postgres.
    async fn holds(&self, needle: &str) -> bool {
        match self.backend {
            Backend::Sqlite => sqlite_files_hold(&self.dir.path().join("homi.db"), needle).await,
            Backend::Postgres => postgres_holds(&self.url, needle).await,
        }
    }
}

/// The token after `label: ` in an email's body.
fn token_in(mail: &ReceivedMail, label: &str) -> String {
    let body = mail.body_text();
    let line = body
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no '{label}' in {body}"));
    line.trim().to_owned()
}

fn forge(claims: serde_json::Value, key: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key),
    )
    .unwrap()
}

/// The payload of a JWT, decoded without any check.
fn payload(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let part = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

// ---------------------------------------------------------------------------

async fn lifecycle_sign_up_refresh_update_sign_out(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let up = e
        .auth
        .sign_up(SignUp::new("  Ada@Example.COM ", PASSWORD).with_full_name(" Ada "))
        .await
        .unwrap();
    assert_eq!(up.user.email, "Ada@Example.COM");
    assert_eq!(up.user.full_name.as_deref(), Some("Ada"));
    // Never confirmed without proof: no link was followed.
    assert!(up.user.email_confirmed_at.is_none());
    let s = up.session.unwrap();
    assert_eq!(s.token_type, "bearer");
    assert_eq!(s.expires_in, 900);
    let claims = payload(&s.access_token);
    assert_eq!(claims["sub"], up.user.id.to_string());
    assert_eq!(claims["aud"], "authenticated");
    assert_eq!(claims["iss"], "homi");
    assert!(claims["sid"].is_string() && claims["iat"].is_i64() && claims["exp"].is_i64());

    let p = e.auth.verify_access_token(&s.access_token).await.unwrap();
    assert_eq!(p.user_id, up.user.id);
    assert_eq!(e.auth.get_user(&p).await.unwrap().email, "Ada@Example.COM");

    // Emails are unique case-insensitively.
    let dup = e
        .auth
        .sign_up(SignUp::new("ada@example.com", PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::Conflict, "{dup}");

    // Sign in with another spelling of the email.
    let s2 = e.auth.sign_in("ADA@example.com", PASSWORD).await.unwrap();
    assert_ne!(s2.refresh_token, s.refresh_token);

    // Refresh rotates; the new pair works.
    let r = e.auth.refresh(&s.refresh_token).await.unwrap();
    assert_ne!(r.refresh_token, s.refresh_token);
    let p2 = e.auth.verify_access_token(&r.access_token).await.unwrap();
    assert_eq!(
        p2.session_id, p.session_id,
        "a refresh keeps the auth session"
    );

    // Profile update. A new email needs the current password...
    let err = e
        .auth
        .update_user(&p2, UserUpdate::default().email("ada@lovelace.test"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("current_password"), "{err}");
    let err = e
        .auth
        .update_user(
            &p2,
            UserUpdate::default()
                .email("ada@lovelace.test")
                .current_password("not the password"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    // ... and waits for the link sent to it; the old address is told.
    let u = e
        .auth
        .update_user(
            &p2,
            UserUpdate::default()
                .full_name("Ada King")
                .email("ada@lovelace.test")
                .current_password(PASSWORD),
        )
        .await
        .unwrap();
    assert_eq!(u.full_name.as_deref(), Some("Ada King"));
    assert_eq!(u.email, "Ada@Example.COM");
    assert_eq!(u.new_email.as_deref(), Some("ada@lovelace.test"));
    let mails = e.smtp.wait_for(2, Duration::from_secs(10)).await.unwrap();
    let link = mails
        .iter()
        .find(|m| m.to == ["ada@lovelace.test"])
        .expect("a link to the new address");
    let notice = mails
        .iter()
        .find(|m| m.to == ["Ada@Example.COM"])
        .expect("a notice to the old address");
    assert!(notice.body_text().contains("ada@lovelace.test"));
    e.auth.sign_in("ada@example.com", PASSWORD).await.unwrap();
    let confirmed = e
        .auth
        .confirm_email(&token_in(link, "Confirmation token: "))
        .await
        .unwrap();
    assert_eq!(confirmed.email, "ada@lovelace.test");
    assert!(confirmed.email_confirmed_at.is_some());
    assert!(confirmed.new_email.is_none());
    assert!(e.auth.sign_in("ada@example.com", PASSWORD).await.is_err());
    e.auth.sign_in("ada@lovelace.test", PASSWORD).await.unwrap();

    // Sign-out: this session's access tokens stop at once, its refresh token too;
    // the other session lives on.
    e.auth.sign_out(&p2).await.unwrap();
    assert_refused(&e.auth, &r.access_token, "token of a signed-out session").await;
    assert_refused(&e.auth, &s.access_token, "older token of the same session").await;
    let err = e.auth.refresh(&r.refresh_token).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    e.auth.verify_access_token(&s2.access_token).await.unwrap();
    assert!(e.auth.health().await.healthy);
}

async fn invalid_input_names_the_field(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    for (email, password, field) in [
        ("", PASSWORD, "email"),
        ("not-an-email", PASSWORD, "email"),
        ("a@b.test", "short", "password"),
        ("a@b.test", &"x".repeat(1025), "password"),
    ] {
        let err = e
            .auth
            .sign_up(SignUp::new(email, password))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
    let err = e.auth.refresh("").await.unwrap_err();
    assert!(err.to_string().contains("refresh_token"), "{err}");
    // 8 characters is enough by default; 1024 too.
    e.auth
        .sign_up(SignUp::new("eight@b.test", "12345678"))
        .await
        .unwrap();
    e.auth
        .sign_up(SignUp::new("long@b.test", "y".repeat(1024)))
        .await
        .unwrap();
}

async fn reused_refresh_token_revokes_the_whole_session(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let s = e.sign_up("reuse@homi.test").await;
    let r1 = e.auth.refresh(&s.refresh_token).await.unwrap();
    let r2 = e.auth.refresh(&r1.refresh_token).await.unwrap();
    // An attacker replays the first, stolen refresh token.
    let err = e.auth.refresh(&s.refresh_token).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert!(err.to_string().contains("already used"), "{err}");
    // The whole session is gone: newest refresh token and access tokens included.
    let err = e.auth.refresh(&r2.refresh_token).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert_refused(
        &e.auth,
        &r2.access_token,
        "access token of a revoked session",
    )
    .await;
    // Unknown refresh tokens are refused.
    assert!(e.auth.refresh("made-up-token").await.is_err());
}

async fn grace_window_allows_a_concurrent_refresh(backend: Backend) {
    let Some(e) = env_with(backend, |c| {
        c.auth.refresh_reuse_grace = Duration::from_secs(30)
    })
    .await
    else {
        return;
    };
    let s = e.sign_up("grace@homi.test").await;
    let (a, b) = tokio::join!(
        e.auth.refresh(&s.refresh_token),
        e.auth.refresh(&s.refresh_token)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    e.auth.verify_access_token(&a.access_token).await.unwrap();
    e.auth.verify_access_token(&b.access_token).await.unwrap();
}

async fn change_password_revokes_other_sessions(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let mine = e.sign_up("pw@homi.test").await;
    let other = e.auth.sign_in("pw@homi.test", PASSWORD).await.unwrap();
    let p = e
        .auth
        .verify_access_token(&mine.access_token)
        .await
        .unwrap();

    let err = e
        .auth
        .change_password(&p, "wrong password", "a new password")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    let err = e
        .auth
        .change_password(&p, PASSWORD, "short")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("new_password"), "{err}");

    e.auth
        .change_password(&p, PASSWORD, "a new password")
        .await
        .unwrap();
    e.auth
        .verify_access_token(&mine.access_token)
        .await
        .unwrap();
    assert_refused(
        &e.auth,
        &other.access_token,
        "another session after a password change",
    )
    .await;
    assert!(e.auth.refresh(&other.refresh_token).await.is_err());
    // The old password no longer signs in; the new one does.
    let err = e.auth.sign_in("pw@homi.test", PASSWORD).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    e.auth
        .sign_in("pw@homi.test", "a new password")
        .await
        .unwrap();
}

async fn password_reset_by_email_is_one_time(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let s = e.sign_up("reset@homi.test").await;
    // Unknown and known emails get the same answer.
    e.auth
        .request_password_reset("nobody@homi.test")
        .await
        .unwrap();
    e.auth
        .request_password_reset(" RESET@homi.test")
        .await
        .unwrap();
    let mails = e.smtp.wait_for(1, Duration::from_secs(10)).await.unwrap();
    assert!(
        e.smtp
            .wait_for(2, Duration::from_millis(500))
            .await
            .is_none(),
        "only the existing account gets an email"
    );
    let mail = &mails[0];
    assert_eq!(mail.to, vec!["reset@homi.test".to_string()]);
    assert_eq!(mail.from, "auth@homi.test");
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Reset your Homi password")
    );
    let token = token_in(mail, "Reset token: ");
    assert!(mail.body_text().contains(&format!(
        "https://app.homi.test/reset-password?token={token}"
    )));
    assert!(
        !e.holds(&token).await,
        "the reset token is stored only as a digest"
    );

    let err = e
        .auth
        .confirm_password_reset(&token, "short")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("new_password"), "{err}");
    e.auth
        .confirm_password_reset(&token, "a brand new password")
        .await
        .unwrap();
    // Every session ended; the new password works, the old one not.
    assert_refused(&e.auth, &s.access_token, "session after a password reset").await;
    assert!(e.auth.sign_in("reset@homi.test", PASSWORD).await.is_err());
    e.auth
        .sign_in("reset@homi.test", "a brand new password")
        .await
        .unwrap();
    // Single use.
    let err = e
        .auth
        .confirm_password_reset(&token, "another new password")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("token"), "{err}");
    assert!(
        e.auth
            .confirm_password_reset("made-up", "another new password")
            .await
            .is_err()
    );
}

async fn expired_reset_token_is_refused(backend: Backend) {
    let Some(e) = env_with(backend, |c| c.auth.reset_token_ttl = Duration::ZERO).await else {
        return;
    };
    e.sign_up("late@homi.test").await;
    e.auth
        .request_password_reset("late@homi.test")
        .await
        .unwrap();
    let mails = e.smtp.wait_for(1, Duration::from_secs(10)).await.unwrap();
    let token = token_in(&mails[0], "Reset token: ");
    let err = e
        .auth
        .confirm_password_reset(&token, "a brand new password")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    e.auth.sign_in("late@homi.test", PASSWORD).await.unwrap();
}

async fn email_confirmation_gates_sign_in(backend: Backend) {
    let Some(e) = env_with(backend, |c| c.auth.require_email_confirmation = true).await else {
        return;
    };
    let up = e
        .auth
        .sign_up(SignUp::new("new@homi.test", PASSWORD))
        .await
        .unwrap();
    assert!(up.session.is_none(), "no session before confirmation");
    assert!(up.user.email_confirmed_at.is_none());
    let err = e.auth.sign_in("new@homi.test", PASSWORD).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden, "{err}");
    assert!(err.to_string().contains("not confirmed"), "{err}");
    // A lost link can be sent again; the new one replaces the old.
    let first = token_in(
        &e.smtp.wait_for(1, Duration::from_secs(10)).await.unwrap()[0],
        "Confirmation token: ",
    );
    e.auth.resend_confirmation("NEW@homi.test").await.unwrap();
    e.auth
        .resend_confirmation("nobody@homi.test")
        .await
        .unwrap();
    let mails = e.smtp.wait_for(2, Duration::from_secs(10)).await.unwrap();
    let token = token_in(&mails[1], "Confirmation token: ");
    assert_ne!(token, first);
    assert_eq!(
        e.auth.confirm_email(&first).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert!(mails[1].body_text().contains(&format!(
        "https://app.homi.test/api/v1/auth/confirm?token={token}"
    )));
    let user = e.auth.confirm_email(&token).await.unwrap();
    assert!(user.email_confirmed_at.is_some());
    e.auth.sign_in("new@homi.test", PASSWORD).await.unwrap();
    // The link confirms once.
    assert_eq!(
        e.auth.confirm_email(&token).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

/// A stolen access token cannot guess the account's password through the
/// changes that need it: the session counts its wrong guesses (password and
/// email changes alike) and is signed out at the sign-in limit. The owner's
/// other sessions and sign-ins are untouched.
async fn wrong_current_passwords_sign_the_session_out(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let stolen = e.sign_up("guess@homi.test").await;
    let owner = e.auth.sign_in("guess@homi.test", PASSWORD).await.unwrap();
    let p = e
        .auth
        .verify_access_token(&stolen.access_token)
        .await
        .unwrap();
    let max = e.config.auth.max_failed_signins;
    for guess in 1..max {
        let err = if guess % 2 == 0 {
            e.auth
                .update_user(
                    &p,
                    UserUpdate::default()
                        .email("thief@homi.test")
                        .current_password(format!("guess {guess}")),
                )
                .await
                .unwrap_err()
        } else {
            e.auth
                .change_password(&p, &format!("guess {guess}"), "the thief's password")
                .await
                .unwrap_err()
        };
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
        assert!(err.to_string().contains("is wrong"), "{err}");
    }
    // Still signed in: a right guess would work now; the last wrong one ends it.
    e.auth
        .verify_access_token(&stolen.access_token)
        .await
        .unwrap();
    let err = e
        .auth
        .change_password(&p, "one more guess", "the thief's password")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert!(err.to_string().contains("signed out"), "{err}");
    assert_refused(
        &e.auth,
        &stolen.access_token,
        "a session that guessed too often",
    )
    .await;
    assert!(e.auth.refresh(&stolen.refresh_token).await.is_err());
    let err = e
        .auth
        .change_password(&p, PASSWORD, "the thief's password")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");

    // The owner's session, counted apart, changes the password at once, and
    // the account still signs in.
    let mine = e
        .auth
        .verify_access_token(&owner.access_token)
        .await
        .unwrap();
    e.auth
        .change_password(&mine, "a typo", "a new password")
        .await
        .unwrap_err();
    e.auth
        .change_password(&mine, PASSWORD, "a new password")
        .await
        .unwrap();
    e.auth
        .sign_in("guess@homi.test", "a new password")
        .await
        .unwrap();
}

/// Without SMTP nobody can be sent a link: an email change (with the
/// current password) takes effect at once, and the new address is
/// unconfirmed; a confirmation of the old address does not carry over.
async fn without_email_an_email_change_is_at_once_and_unconfirmed(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let up = e.sign_up("nomail@homi.test").await;
    assert!(
        up.user.email_confirmed_at.is_none(),
        "confirmed without proof"
    );
    // The old address is confirmed by its link (SMTP is there for that).
    e.auth
        .resend_confirmation("nomail@homi.test")
        .await
        .unwrap();
    let mails = e.smtp.wait_for(1, Duration::from_secs(10)).await.unwrap();
    let confirmed = e
        .auth
        .confirm_email(&token_in(&mails[0], "Confirmation token: "))
        .await
        .unwrap();
    assert!(confirmed.email_confirmed_at.is_some());

    // The same accounts, served by a process with no SMTP server.
    let mut config = e.config.clone();
    config.auth.smtp_url = None;
    let auth = Auth::open(&config).await.unwrap();
    let p = auth.verify_access_token(&up.access_token).await.unwrap();
    let err = auth
        .update_user(&p, UserUpdate::default().email("moved@homi.test"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("current_password"), "{err}");
    let moved = auth
        .update_user(
            &p,
            UserUpdate::default()
                .email("moved@homi.test")
                .current_password(PASSWORD),
        )
        .await
        .unwrap();
    assert_eq!(moved.email, "moved@homi.test");
    assert!(moved.new_email.is_none());
    assert!(
        moved.email_confirmed_at.is_none(),
        "the new address is unproven"
    );
    assert!(
        auth.get_user(&p)
            .await
            .unwrap()
            .email_confirmed_at
            .is_none()
    );
    auth.sign_in("moved@homi.test", PASSWORD).await.unwrap();
    assert!(auth.sign_in("nomail@homi.test", PASSWORD).await.is_err());
}

async fn sign_up_fails_whole_when_the_confirmation_cannot_be_sent(backend: Backend) {
    let Some(e) = env_with(backend, |c| {
        c.auth.require_email_confirmation = true;
        // Nothing listens on port 9 of loopback.
        c.auth.smtp_url = Some("smtp://127.0.0.1:9".to_owned().into());
    })
    .await
    else {
        return;
    };
    let err = e
        .auth
        .sign_up(SignUp::new("lost@homi.test", PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(!e.holds("lost@homi.test").await, "no half-made account");
}

conformance!(
    lifecycle_sign_up_refresh_update_sign_out,
    invalid_input_names_the_field,
    reused_refresh_token_revokes_the_whole_session,
    grace_window_allows_a_concurrent_refresh,
    change_password_revokes_other_sessions,
    wrong_current_passwords_sign_the_session_out,
    without_email_an_email_change_is_at_once_and_unconfirmed,
    password_reset_by_email_is_one_time,
    expired_reset_token_is_refused,
    email_confirmation_gates_sign_in,
    sign_up_fails_whole_when_the_confirmation_cannot_be_sent,
);

/// Captures what Homi logs, for the tests of what it must not log.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Waits (with a deadline) until the log holds `needle`.
    async fn wait_for(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.text();
            if text.contains(needle) {
                return text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "'{needle}' never logged: {text}"
            );
            tokio::task::yield_now().await;
        }
    }
}

/// Without SMTP, a reset request is logged without its token; with DEBUG on,
/// the token is logged (and it is the real one).
#[tokio::test(flavor = "current_thread")]
async fn reset_tokens_are_logged_only_in_debug_mode() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    for debug in [false, true] {
        let Some(e) = env_with(Backend::Sqlite, |c| {
            c.auth.smtp_url = None;
            c.server.debug = debug;
        })
        .await
        else {
            return;
        };
        e.sign_up("quiet@homi.test").await;
        log.0.lock().unwrap().clear();
        e.auth
            .request_password_reset("quiet@homi.test")
            .await
            .unwrap();
        let text = log
            .wait_for("HOMI_SMTP_URL is not set: email not sent")
            .await;
        if !debug {
            assert!(!text.contains("token="), "a token was logged: {text}");
            continue;
        }
        let token = text
            .split("token=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no token in the debug log: {text}"))
            .to_owned();
        e.auth
            .confirm_password_reset(&token, "a logged new password")
            .await
            .unwrap();
    }
}

/// An RSA key made for these tests only (the attacker's).
const TEST_RSA_KEY: &str = include_str!("../../data/attacker_rsa.pem");
const TEST_RSA_PUBLIC_KEY: &str = include_str!("../../data/attacker_rsa.pub.pem");
