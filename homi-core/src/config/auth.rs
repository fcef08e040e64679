//! Accounts and tokens: the built-in accounts' settings, or Supabase Auth's.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::{check_http_url, parse_bool, parse_range, redact_url_password};
use crate::error::{Error, Result};

/// Accounts and tokens. With [`AuthConfig::supabase`] set, Supabase Auth
/// holds the accounts; otherwise Homi's built-in accounts live in the store.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthConfig {
    /// `HOMI_JWT_SECRET`: the HS256 key of access tokens (at least 32 bytes).
    /// When unset, a random one is generated once and kept in the store.
    pub jwt_secret: Option<SecretString>,
    /// `HOMI_JWT_ISSUER`: the `iss` claim.
    pub jwt_issuer: String,
    /// `HOMI_JWT_AUDIENCE`: the `aud` claim.
    pub jwt_audience: String,
    /// `HOMI_ACCESS_TOKEN_TTL_SECS`: lifetime of an access token.
    pub access_token_ttl: Duration,
    /// `HOMI_SESSION_TTL_SECS`: an auth session ends after this long without a refresh.
    pub session_ttl: Duration,
    /// `HOMI_REFRESH_REUSE_GRACE_SECS`: how long an already-used refresh token
    /// is still accepted (for concurrent refreshes) before its reuse revokes the
    /// whole auth session.
    pub refresh_reuse_grace: Duration,
    /// `HOMI_PASSWORD_MIN_LENGTH`: shortest password accepted.
    pub password_min_length: usize,
    /// `HOMI_PASSWORD_MAX_LENGTH`: longest password accepted (at most
    /// [`PASSWORD_LENGTH_LIMIT`]; it bounds the hashing work).
    pub password_max_length: usize,
    /// `HOMI_RESET_TOKEN_TTL_SECS`: lifetime of password-reset and email-confirmation tokens.
    pub reset_token_ttl: Duration,
    /// `HOMI_REQUIRE_EMAIL_CONFIRMATION`: sign-up sends a confirmation link and
    /// sign-in waits for it (needs SMTP).
    pub require_email_confirmation: bool,
    /// `HOMI_SIGNIN_MAX_FAILURES`: failed sign-ins for one email before it is locked.
    pub max_failed_signins: u32,
    /// `HOMI_SIGNIN_LOCKOUT_SECS`: the first lock's length; it doubles with
    /// each further failure (at most an hour).
    pub signin_lockout: Duration,
    /// `HOMI_SMTP_URL`: e.g. `smtps://user:pass@smtp.example.com` or
    /// `smtp://127.0.0.1:2525` (plain, for a local relay).
    pub smtp_url: Option<SecretString>,
    /// `HOMI_SMTP_FROM`: the sender of Homi's emails.
    pub smtp_from: String,
    /// `HOMI_PUBLIC_URL`: the address users reach Homi (or your app) at; links
    /// in emails point there.
    pub public_url: String,
    /// `SUPABASE_URL` + `SUPABASE_KEY` (+ `SUPABASE_JWT_SECRET`): use Supabase Auth.
    pub supabase: Option<SupabaseConfig>,
}

/// A Supabase project whose Auth (GoTrue) holds the accounts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SupabaseConfig {
    /// `SUPABASE_URL`, e.g. `https://abcd.supabase.co`.
    pub url: String,
    /// `SUPABASE_KEY`: the project's anon (or service-role) key, sent as `apikey`.
    pub key: SecretString,
    /// `SUPABASE_JWT_SECRET`: verifies HS256 access tokens locally; when unset,
    /// tokens are verified with the project's JWKS (ES256 / RS256).
    pub jwt_secret: Option<SecretString>,
}

impl SupabaseConfig {
    /// A project at `url` with its API key.
    pub fn new(url: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            url: url.into().trim_end_matches('/').to_owned(),
            key: SecretString::from(key.into()),
            jwt_secret: None,
        }
    }

    /// Verifies access tokens with this HS256 secret instead of the JWKS.
    pub fn with_jwt_secret(mut self, secret: impl Into<String>) -> Self {
        self.jwt_secret = Some(SecretString::from(secret.into()));
        self
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            jwt_issuer: "homi".to_owned(),
            jwt_audience: "authenticated".to_owned(),
            access_token_ttl: Duration::from_secs(900),
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            refresh_reuse_grace: Duration::ZERO,
            password_min_length: 8,
            password_max_length: 1024,
            reset_token_ttl: Duration::from_secs(3600),
            require_email_confirmation: false,
            max_failed_signins: 5,
            signin_lockout: Duration::from_secs(60),
            smtp_url: None,
            smtp_from: "Homi <no-reply@localhost>".to_owned(),
            public_url: "http://localhost:8000".to_owned(),
            supabase: None,
        }
    }
}

/// The most [`AuthConfig::password_max_length`] can be.
pub const PASSWORD_LENGTH_LIMIT: usize = 4096;

impl AuthConfig {
    /// Checks values set in code as [`Config::from_env`](super::Config::from_env) checks the
    /// environment; the error names the variable.
    pub fn validate(&self) -> Result<()> {
        if let Some(secret) = &self.jwt_secret
            && secret.expose_secret().len() < 32
        {
            return Err(Error::config(
                "HOMI_JWT_SECRET",
                format!(
                    "the secret is {} bytes long; it must be at least 32 (e.g. `openssl rand -base64 48`), or unset to let Homi generate and keep one",
                    secret.expose_secret().len()
                ),
            ));
        }
        let check = |var: &str, d: Duration, min: u64, max: u64| {
            if d < Duration::from_secs(min) || d > Duration::from_secs(max) {
                Err(Error::config(
                    var,
                    format!("{}s is out of range ({min}..={max} seconds)", d.as_secs()),
                ))
            } else {
                Ok(())
            }
        };
        check(
            "HOMI_ACCESS_TOKEN_TTL_SECS",
            self.access_token_ttl,
            10,
            86_400,
        )?;
        check(
            "HOMI_SESSION_TTL_SECS",
            self.session_ttl,
            60,
            10 * 365 * 86_400,
        )?;
        check(
            "HOMI_REFRESH_REUSE_GRACE_SECS",
            self.refresh_reuse_grace,
            0,
            300,
        )?;
        check(
            "HOMI_RESET_TOKEN_TTL_SECS",
            self.reset_token_ttl,
            0,
            7 * 86_400,
        )?;
        check("HOMI_SIGNIN_LOCKOUT_SECS", self.signin_lockout, 1, 3600)?;
        if self.session_ttl < self.access_token_ttl {
            return Err(Error::config(
                "HOMI_SESSION_TTL_SECS",
                "must be at least HOMI_ACCESS_TOKEN_TTL_SECS",
            ));
        }
        if self.max_failed_signins == 0 {
            return Err(Error::config(
                "HOMI_SIGNIN_MAX_FAILURES",
                "must be at least 1",
            ));
        }
        if self.password_min_length == 0 || self.password_min_length > self.password_max_length {
            return Err(Error::config(
                "HOMI_PASSWORD_MIN_LENGTH",
                format!(
                    "{} must be at least 1 and at most HOMI_PASSWORD_MAX_LENGTH ({})",
                    self.password_min_length, self.password_max_length
                ),
            ));
        }
        if self.password_max_length > PASSWORD_LENGTH_LIMIT {
            return Err(Error::config(
                "HOMI_PASSWORD_MAX_LENGTH",
                format!(
                    "{} is more than {PASSWORD_LENGTH_LIMIT}",
                    self.password_max_length
                ),
            ));
        }
        if self.require_email_confirmation && self.smtp_url.is_none() && self.supabase.is_none() {
            return Err(Error::config(
                "HOMI_REQUIRE_EMAIL_CONFIRMATION",
                "confirmation links are sent by email: set HOMI_SMTP_URL too",
            ));
        }
        Ok(())
    }
}

pub(super) fn read_auth(
    a: &mut AuthConfig,
    get: &mut impl FnMut(&str) -> Option<String>,
) -> Result<()> {
    if let Some(secret) = get("HOMI_JWT_SECRET") {
        a.jwt_secret = Some(SecretString::from(secret));
    }
    if let Some(v) = get("HOMI_JWT_ISSUER") {
        a.jwt_issuer = v.trim().to_owned();
    }
    if let Some(v) = get("HOMI_JWT_AUDIENCE") {
        a.jwt_audience = v.trim().to_owned();
    }
    if let Some(v) = get("HOMI_ACCESS_TOKEN_TTL_SECS") {
        a.access_token_ttl =
            Duration::from_secs(parse_range("HOMI_ACCESS_TOKEN_TTL_SECS", &v, 10, 86_400)?);
    }
    if let Some(v) = get("HOMI_SESSION_TTL_SECS") {
        a.session_ttl = Duration::from_secs(parse_range(
            "HOMI_SESSION_TTL_SECS",
            &v,
            60,
            10 * 365 * 86_400,
        )?);
    }
    if let Some(v) = get("HOMI_REFRESH_REUSE_GRACE_SECS") {
        a.refresh_reuse_grace =
            Duration::from_secs(parse_range("HOMI_REFRESH_REUSE_GRACE_SECS", &v, 0, 300)?);
    }
    if let Some(v) = get("HOMI_PASSWORD_MIN_LENGTH") {
        a.password_min_length = parse_range(
            "HOMI_PASSWORD_MIN_LENGTH",
            &v,
            1,
            PASSWORD_LENGTH_LIMIT as u64,
        )? as usize;
    }
    if let Some(v) = get("HOMI_PASSWORD_MAX_LENGTH") {
        a.password_max_length = parse_range(
            "HOMI_PASSWORD_MAX_LENGTH",
            &v,
            1,
            PASSWORD_LENGTH_LIMIT as u64,
        )? as usize;
    }
    if let Some(v) = get("HOMI_RESET_TOKEN_TTL_SECS") {
        a.reset_token_ttl = Duration::from_secs(parse_range(
            "HOMI_RESET_TOKEN_TTL_SECS",
            &v,
            60,
            7 * 86_400,
        )?);
    }
    if let Some(v) = get("HOMI_REQUIRE_EMAIL_CONFIRMATION") {
        a.require_email_confirmation = parse_bool("HOMI_REQUIRE_EMAIL_CONFIRMATION", &v)?;
    }
    if let Some(v) = get("HOMI_SIGNIN_MAX_FAILURES") {
        a.max_failed_signins = parse_range("HOMI_SIGNIN_MAX_FAILURES", &v, 1, 1000)? as u32;
    }
    if let Some(v) = get("HOMI_SIGNIN_LOCKOUT_SECS") {
        a.signin_lockout =
            Duration::from_secs(parse_range("HOMI_SIGNIN_LOCKOUT_SECS", &v, 1, 3600)?);
    }
    if let Some(v) = get("HOMI_SMTP_URL") {
        let v = v.trim();
        if !["smtp://", "smtps://"].iter().any(|s| v.starts_with(s)) {
            return Err(Error::config(
                "HOMI_SMTP_URL",
                format!(
                    "'{}' is not an smtp:// or smtps:// URL",
                    redact_url_password(v)
                ),
            ));
        }
        a.smtp_url = Some(SecretString::from(v.to_owned()));
    }
    if let Some(v) = get("HOMI_SMTP_FROM") {
        a.smtp_from = v.trim().to_owned();
    }
    if let Some(v) = get("HOMI_PUBLIC_URL") {
        a.public_url = check_http_url("HOMI_PUBLIC_URL", v.trim())?;
    }
    match (get("SUPABASE_URL"), get("SUPABASE_KEY")) {
        (Some(url), Some(key)) => {
            let url = check_http_url("SUPABASE_URL", url.trim())?;
            let mut s = SupabaseConfig::new(url, key.trim());
            if let Some(secret) = get("SUPABASE_JWT_SECRET") {
                s = s.with_jwt_secret(secret.trim());
            }
            a.supabase = Some(s);
        }
        (Some(_), None) => {
            return Err(Error::config(
                "SUPABASE_KEY",
                "SUPABASE_URL is set but SUPABASE_KEY is not: set the project's anon or service-role key (or unset SUPABASE_URL for built-in auth)",
            ));
        }
        (None, Some(_)) => {
            return Err(Error::config(
                "SUPABASE_URL",
                "SUPABASE_KEY is set but SUPABASE_URL is not: set the project's URL, e.g. https://abcd.supabase.co",
            ));
        }
        (None, None) => {}
    }
    a.validate()
}
