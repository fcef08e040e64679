//! The Supabase backend: the same operations through Supabase Auth's (GoTrue's)
//! REST API, with access tokens verified locally.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::jwt::SupabaseVerifier;
use super::store::AuthStore;
use super::{
    AuthBackend, AuthHealth, AuthSession, Principal, SignUp, SignedUp, User, UserUpdate,
    normalize_email, normalize_name, password,
};
use crate::config::{Config, SupabaseConfig};
use crate::error::{Error, Result};

pub(super) struct Supabase {
    url: String,
    key: SecretString,
    http: reqwest::Client,
    verifier: SupabaseVerifier,
    store: Arc<dyn AuthStore>,
    password_length: (usize, usize),
}

impl std::fmt::Debug for Supabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supabase")
            .field("url", &self.url)
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

/// GoTrue's user object (the fields Homi reads).
#[derive(Debug, Deserialize)]
struct GoTrueUser {
    id: Uuid,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_confirmed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    new_email: Option<String>,
    #[serde(default)]
    user_metadata: Value,
    created_at: DateTime<Utc>,
    #[serde(default)]
    updated_at: Option<DateTime<Utc>>,
}

impl GoTrueUser {
    fn into_user(self) -> User {
        let full_name = self
            .user_metadata
            .get("full_name")
            .and_then(Value::as_str)
            .map(str::to_owned);
        User {
            id: self.id,
            email: self.email.unwrap_or_default(),
            full_name,
            email_confirmed_at: self.email_confirmed_at,
            new_email: self.new_email.filter(|e| !e.is_empty()),
            created_at: self.created_at,
            updated_at: self.updated_at.unwrap_or(self.created_at),
        }
    }
}

/// GoTrue's session answer.
#[derive(Debug, Deserialize)]
struct GoTrueSession {
    access_token: String,
    refresh_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    expires_at: Option<i64>,
    user: GoTrueUser,
}

impl GoTrueSession {
    fn into_session(self) -> AuthSession {
        let expires_in = self.expires_in.unwrap_or(3600);
        AuthSession {
            access_token: self.access_token,
            refresh_token: self.refresh_token,
            token_type: "bearer".into(),
            expires_in,
            expires_at: self
                .expires_at
                .unwrap_or_else(|| Utc::now().timestamp() + expires_in as i64),
            user: self.user.into_user(),
        }
    }
}

/// The longest access-token lifetime a Supabase project can set (one week):
/// revocations Homi records for Supabase tokens last this long.
const MAX_TOKEN_LIFETIME: chrono::Duration = chrono::Duration::days(7);

const INVALID_REFRESH: &str =
    "the refresh token is invalid or its auth session has ended; sign in again";

/// Maps a GoTrue error answer to Homi's error (`refreshing`: the request
/// presented a refresh token, which older GoTrue versions refuse as `invalid_grant`).
fn gotrue_error(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &str,
    refreshing: bool,
) -> Error {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let code = v
        .get("error_code")
        .or_else(|| v.get("error"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let msg = ["msg", "message", "error_description", "error"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .map(str::to_owned)
        .unwrap_or_else(|| body.chars().take(200).collect());
    if status.as_u16() == 401 && msg.contains("API key") {
        return Error::config(
            "SUPABASE_KEY",
            format!(
                "Supabase refused the project key: {msg}; set the project's anon, service-role or secret (sb_secret_…) key"
            ),
        );
    }
    match (status.as_u16(), code.as_str()) {
        (429, _) => Error::RateLimited {
            message: format!("Supabase Auth: {msg}"),
            retry_after: retry_after.unwrap_or(Duration::from_secs(60)),
        },
        (_, "invalid_grant") if refreshing => Error::Unauthorized(INVALID_REFRESH.into()),
        (_, "invalid_credentials" | "invalid_grant") => {
            Error::Unauthorized("invalid email or password".into())
        }
        (_, "email_not_confirmed") => Error::Forbidden(
            "the email address is not confirmed yet: open the link sent to it".into(),
        ),
        (_, "refresh_token_already_used") => Error::Unauthorized(
            "this refresh token was already used, so the auth session has been revoked to be safe; sign in again".into(),
        ),
        (_, "refresh_token_not_found" | "session_not_found" | "session_expired") => {
            Error::Unauthorized(INVALID_REFRESH.into())
        }
        (_, "weak_password") => Error::invalid("password", msg),
        (_, "user_already_exists" | "email_exists") => {
            Error::Conflict("an account with this email already exists".into())
        }
        (_, "not_admin") => Error::Forbidden(format!(
            "Supabase Auth refused: {msg} (SUPABASE_KEY must be the service-role or a secret key for this)"
        )),
        (_, "otp_expired" | "flow_state_expired" | "bad_code_verifier") => {
            Error::invalid("token", "the token is invalid, already used or expired")
        }
        (404, _) => Error::not_found("user"),
        (401 | 403, _) => Error::Unauthorized(format!("Supabase Auth refused the token: {msg}")),
        (400 | 422, "validation_failed" | "email_address_invalid") => {
            Error::invalid("email", msg)
        }
        (400 | 422, _) => Error::invalid("request", format!("Supabase Auth: {msg}")),
        _ => Error::unavailable(
            "Supabase Auth failed",
            format!("HTTP {}: {msg}", status.as_u16()),
        ),
    }
}

/// Sends a request to Supabase Auth; the JSON body of a 2xx answer, or the mapped error.
async fn send(request: RequestBuilder, refreshing: bool) -> Result<Value> {
    let response = request
        .send()
        .await
        .map_err(|e| Error::unavailable("Supabase Auth could not be reached", e))?;
    let status = response.status();
    let retry_after = parse_retry_after(response.headers());
    let body = response
        .text()
        .await
        .map_err(|e| Error::unavailable("Supabase Auth's answer broke off", e))?;
    if !status.is_success() {
        return Err(gotrue_error(status, retry_after, &body, refreshing));
    }
    if body.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&body).map_err(|e| {
        Error::unavailable(
            "Supabase Auth answered something that is not JSON",
            format!("{e}: {}", body.chars().take(200).collect::<String>()),
        )
    })
}

fn parse_retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

impl Supabase {
    pub fn new(
        config: &Config,
        project: &SupabaseConfig,
        store: Arc<dyn AuthStore>,
    ) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| {
                Error::config("SUPABASE_URL", format!("cannot build an HTTP client: {e}"))
            })?;
        let verifier = SupabaseVerifier::new(
            &project.url,
            project.jwt_secret.as_ref().map(|s| s.expose_secret()),
            http.clone(),
            project.key.clone(),
        );
        Ok(Self {
            url: project.url.clone(),
            key: project.key.clone(),
            http,
            verifier,
            store,
            password_length: (
                config.auth.password_min_length,
                config.auth.password_max_length,
            ),
        })
    }

    fn request(&self, method: Method, path: &str, bearer: Option<&str>) -> RequestBuilder {
        let key = self.key.expose_secret();
        self.http
            .request(method, format!("{}/auth/v1{path}", self.url))
            .header("apikey", key)
            .bearer_auth(bearer.unwrap_or(key))
    }

    /// A request made for a client: GoTrue's per-IP limits then count that
    /// client's address, not Homi's. Self-hosted GoTrue reads it from
    /// `X-Forwarded-For` (with `GOTRUE_RATE_LIMIT_HEADER` naming it); hosted
    /// Supabase from `Sb-Forwarded-For`, and only with a secret key
    /// (`sb_secret_…`) and IP forwarding turned on for the project, so that
    /// header goes only with such a key.
    fn request_for(&self, method: Method, path: &str, client: Option<IpAddr>) -> RequestBuilder {
        let request = self.request(method, path, None);
        let Some(ip) = client else { return request };
        let ip = ip.to_string();
        let request = if self.key.expose_secret().starts_with("sb_secret_") {
            request.header("Sb-Forwarded-For", &ip)
        } else {
            request
        };
        request.header("X-Forwarded-For", ip)
    }

    /// Sends a request; the JSON body of a 2xx answer, or the mapped error.
    async fn call(&self, request: RequestBuilder) -> Result<Value> {
        self.call_as(request, false).await
    }

    async fn call_as(&self, request: RequestBuilder, refreshing: bool) -> Result<Value> {
        send(request, refreshing).await
    }

    fn parse<T: for<'de> Deserialize<'de>>(what: &str, v: Value) -> Result<T> {
        serde_json::from_value(v).map_err(|e| {
            Error::unavailable(format!("Supabase Auth's {what} has an unexpected shape"), e)
        })
    }

    async fn password_grant(
        &self,
        email: &str,
        pw: &str,
        client: Option<IpAddr>,
    ) -> Result<AuthSession> {
        let v = self
            .call(
                self.request_for(Method::POST, "/token?grant_type=password", client)
                    .json(&json!({"email": email, "password": pw})),
            )
            .await?;
        Ok(Self::parse::<GoTrueSession>("session", v)?.into_session())
    }

    pub async fn sign_up(&self, request: SignUp, client: Option<IpAddr>) -> Result<SignedUp> {
        let (email, _) = normalize_email("email", &request.email)?;
        let pw = request.password.expose_secret();
        let (min, max) = self.password_length;
        password::check_policy("password", pw, min, max)?;
        let full_name = normalize_name("full_name", request.full_name.as_deref())?;
        let mut body = json!({"email": email, "password": pw});
        if let Some(name) = &full_name {
            body["data"] = json!({"full_name": name});
        }
        let v = self
            .call(
                self.request_for(Method::POST, "/signup", client)
                    .json(&body),
            )
            .await?;
        // With email confirmation on in the project, GoTrue answers the user
        // alone: signed up, not signed in.
        if v.get("access_token").is_some() {
            let session = Self::parse::<GoTrueSession>("session", v)?.into_session();
            Ok(SignedUp {
                user: session.user.clone(),
                session: Some(session),
            })
        } else {
            let user = v.get("user").cloned().unwrap_or(v);
            Ok(SignedUp {
                user: Self::parse::<GoTrueUser>("user", user)?.into_user(),
                session: None,
            })
        }
    }

    pub async fn sign_in(
        &self,
        email: &str,
        pw: &str,
        client: Option<IpAddr>,
    ) -> Result<AuthSession> {
        if email.trim().is_empty() {
            return Err(Error::invalid("email", "an email address is required"));
        }
        if pw.is_empty() {
            return Err(Error::invalid("password", "a password is required"));
        }
        self.password_grant(email.trim(), pw, client).await
    }

    pub async fn sign_out(&self, principal: &Principal) -> Result<()> {
        // Supabase's access tokens stay valid until they expire: Homi refuses
        // this session's from now on, first, so that nothing Supabase answers
        // can leave them working.
        self.store
            .revoke_external_session(
                principal.session_id,
                &principal.user_id.to_string(),
                Utc::now() + MAX_TOKEN_LIFETIME,
            )
            .await?;
        match self
            .call(self.request(
                Method::POST,
                "/logout?scope=local",
                Some(principal.access_token()),
            ))
            .await
        {
            Ok(_) => Ok(()),
            // Already ended at Supabase (e.g. by a password change elsewhere).
            Err(e) if e.kind() == crate::ErrorKind::Unauthorized => Ok(()),
            Err(e) => Err(Error::unavailable(
                "signed out in Homi, but Supabase Auth could not end the session (its refresh token may still work)",
                e,
            )),
        }
    }

    /// Refuses the user's earlier tokens in Homi (all but `keep`'s).
    async fn revoke_user_tokens(&self, user_id: Uuid, keep: Option<Uuid>) -> Result<()> {
        let now = Utc::now();
        self.store
            .revoke_external_user(&user_id.to_string(), now, keep, now + MAX_TOKEN_LIFETIME)
            .await
    }

    pub async fn refresh(
        &self,
        refresh_token: &str,
        client: Option<IpAddr>,
    ) -> Result<AuthSession> {
        let refresh_token = refresh_token.trim();
        if refresh_token.is_empty() {
            return Err(Error::invalid(
                "refresh_token",
                "a refresh token is required",
            ));
        }
        let v = self
            .call_as(
                self.request_for(Method::POST, "/token?grant_type=refresh_token", client)
                    .json(&json!({"refresh_token": refresh_token})),
                true,
            )
            .await?;
        Ok(Self::parse::<GoTrueSession>("session", v)?.into_session())
    }

    pub async fn verify_access_token(&self, token: &str) -> Result<Principal> {
        let now = Utc::now();
        let claims = self.verifier.verify(token, now).await?;
        let user_id = Uuid::parse_str(&claims.sub)
            .map_err(|_| Error::Unauthorized("the access token's subject is invalid".into()))?;
        if claims.role.as_deref() != Some("authenticated") {
            return Err(Error::Unauthorized(
                "the token is not a signed-in user's access token".into(),
            ));
        }
        let session_id = claims
            .session_id
            .as_deref()
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| Error::Unauthorized("the access token names no auth session".into()))?;
        let revoked = self
            .store
            .external_revocation(session_id, &claims.sub)
            .await?;
        let ended = || {
            Error::Unauthorized(
                "the auth session has ended (signed out, expired or revoked); sign in again".into(),
            )
        };
        if revoked.session_revoked {
            return Err(ended());
        }
        if let Some(not_before) = revoked.user_not_before
            && revoked.keep_session != Some(session_id)
        {
            // `iat` has whole seconds. Issued before the revocation's second:
            // refused; after it: fine; within it: Supabase Auth decides
            // (whether the token's session still exists).
            let iat = claims.iat.unwrap_or(0);
            let cut = not_before.timestamp();
            if iat < cut {
                return Err(ended());
            }
            if iat == cut
                && let Err(e) = self
                    .call(self.request(Method::GET, "/user", Some(token)))
                    .await
            {
                return Err(match e.kind() {
                    crate::ErrorKind::Unauthorized => ended(),
                    _ => e,
                });
            }
        }
        Ok(Principal {
            user_id,
            session_id,
            expires_at: DateTime::from_timestamp(claims.exp, 0).unwrap_or(now),
            token: token.to_owned().into(),
        })
    }

    pub async fn get_user(&self, principal: &Principal) -> Result<User> {
        let v = self
            .call(self.request(Method::GET, "/user", Some(principal.access_token())))
            .await?;
        Ok(Self::parse::<GoTrueUser>("user", v)?.into_user())
    }

    pub async fn update_user(&self, principal: &Principal, update: UserUpdate) -> Result<User> {
        let mut body = json!({});
        if let Some(e) = &update.email {
            let (email, normalized) = normalize_email("email", e)?;
            let user = self.get_user(principal).await?;
            if normalized != user.email.to_lowercase() {
                // Supabase confirms the new address itself before it takes
                // effect.
                let pw = update.password_for_email_change()?;
                self.check_password(&user.email, pw).await?;
            }
            body["email"] = json!(email);
        }
        if let Some(n) = &update.full_name {
            body["data"] = json!({"full_name": normalize_name("full_name", Some(n))?});
        }
        let v = self
            .call(
                self.request(Method::PUT, "/user", Some(principal.access_token()))
                    .json(&body),
            )
            .await?;
        Ok(Self::parse::<GoTrueUser>("user", v)?.into_user())
    }

    /// Checks the caller's current password. GoTrue does not check it
    /// itself: a password grant does, and the session it opens is closed
    /// again at once.
    async fn check_password(&self, email: &str, current_password: &str) -> Result<()> {
        let check = match self.password_grant(email, current_password, None).await {
            Ok(s) => s,
            Err(e) if e.kind() == crate::ErrorKind::Unauthorized => {
                return Err(Error::Unauthorized("the current password is wrong".into()));
            }
            Err(e) => return Err(e),
        };
        let _ = self
            .call(self.request(
                Method::POST,
                "/logout?scope=local",
                Some(&check.access_token),
            ))
            .await;
        Ok(())
    }

    pub async fn change_password(
        &self,
        principal: &Principal,
        current_password: &str,
        new_password: &str,
    ) -> Result<()> {
        if current_password.is_empty() {
            return Err(Error::invalid(
                "current_password",
                "the current password is required",
            ));
        }
        let (min, max) = self.password_length;
        password::check_policy("new_password", new_password, min, max)?;
        let user = self.get_user(principal).await?;
        self.check_password(&user.email, current_password).await?;
        self.call(
            self.request(Method::PUT, "/user", Some(principal.access_token()))
                .json(&json!({"password": new_password})),
        )
        .await?;
        // The other sessions end: Homi refuses their tokens at once, Supabase
        // stops refreshing them.
        self.revoke_user_tokens(principal.user_id, Some(principal.session_id))
            .await?;
        self.call(self.request(
            Method::POST,
            "/logout?scope=others",
            Some(principal.access_token()),
        ))
        .await
        .map_err(|e| {
            Error::unavailable(
                "the password was changed and Homi refuses the other sessions' tokens, but Supabase Auth could not end those sessions",
                e,
            )
        })?;
        Ok(())
    }

    pub async fn request_password_reset(&self, email: &str, client: Option<IpAddr>) -> Result<()> {
        self.send_later(email, "/recover", json!({}), client)
    }

    pub async fn resend_confirmation(&self, email: &str, client: Option<IpAddr>) -> Result<()> {
        self.send_later(email, "/resend", json!({"type": "signup"}), client)
    }

    /// Asks Supabase to email a link, after answering: GoTrue's answer (a
    /// rate limit for known emails only) and its timing would tell whether an
    /// account exists.
    fn send_later(
        &self,
        email: &str,
        path: &'static str,
        mut body: Value,
        client: Option<IpAddr>,
    ) -> Result<()> {
        let (email, _) = normalize_email("email", email)?;
        body["email"] = json!(email);
        let request = self.request_for(Method::POST, path, client).json(&body);
        tokio::spawn(async move {
            if let Err(e) = send(request, false).await {
                tracing::error!(error = %e, path, "Supabase Auth did not take an email request");
            }
        });
        Ok(())
    }

    /// Verifies a one-time token hash from a Supabase email link and returns
    /// the session it opens.
    async fn verify_otp(
        &self,
        kind: &str,
        token: &str,
        client: Option<IpAddr>,
    ) -> Result<AuthSession> {
        let token = token.trim();
        if token.is_empty() {
            return Err(Error::invalid("token", "the token is required"));
        }
        let v = self
            .call(
                self.request_for(Method::POST, "/verify", client)
                    .json(&json!({"type": kind, "token_hash": token})),
            )
            .await?;
        Ok(Self::parse::<GoTrueSession>("session", v)?.into_session())
    }

    pub async fn confirm_password_reset(
        &self,
        token: &str,
        new_password: &str,
        client: Option<IpAddr>,
    ) -> Result<()> {
        let (min, max) = self.password_length;
        password::check_policy("new_password", new_password, min, max)?;
        let session = self.verify_otp("recovery", token, client).await?;
        let set = self
            .call(
                self.request(Method::PUT, "/user", Some(&session.access_token))
                    .json(&json!({"password": new_password})),
            )
            .await;
        if let Err(e) = set {
            // The link is spent: end the session it opened, and say so.
            let _ = self
                .call(self.request(
                    Method::POST,
                    "/logout?scope=local",
                    Some(&session.access_token),
                ))
                .await;
            return Err(match e.kind() {
                crate::ErrorKind::InvalidInput => Error::invalid(
                    "new_password",
                    format!("{e}; the reset link is used up: request a new one"),
                ),
                _ => Error::unavailable(
                    "the password was not changed; the reset link is used up: request a new one",
                    e,
                ),
            });
        }
        self.revoke_user_tokens(session.user.id, None).await?;
        self.call(self.request(
            Method::POST,
            "/logout?scope=global",
            Some(&session.access_token),
        ))
        .await
        .map_err(|e| {
            Error::unavailable(
                "the password was changed and Homi refuses the old sessions' tokens, but Supabase Auth could not end those sessions",
                e,
            )
        })?;
        Ok(())
    }

    pub async fn confirm_email(&self, token: &str, client: Option<IpAddr>) -> Result<User> {
        Ok(self.verify_otp("email", token, client).await?.user)
    }

    pub async fn delete_user(&self, user_id: Uuid) -> Result<bool> {
        let existed = match self
            .call(self.request(Method::DELETE, &format!("/admin/users/{user_id}"), None))
            .await
        {
            Ok(_) => true,
            Err(e) if e.kind() == crate::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        // The user's access tokens stay valid at Supabase until they expire:
        // Homi refuses every one of them (issued before a time no token of
        // theirs can reach).
        let now = Utc::now();
        self.store
            .revoke_external_user(
                &user_id.to_string(),
                now + MAX_TOKEN_LIFETIME,
                None,
                now + MAX_TOKEN_LIFETIME,
            )
            .await?;
        let local = self.store.delete_user(&user_id.to_string()).await?;
        Ok(existed || local)
    }

    pub async fn health(&self) -> AuthHealth {
        let result = self.call(self.request(Method::GET, "/health", None)).await;
        AuthHealth {
            backend: AuthBackend::Supabase,
            healthy: result.is_ok(),
            detail: match result {
                Ok(_) => format!("Supabase Auth at {} answers", self.url),
                Err(e) => format!("Supabase Auth at {}: {e}", self.url),
            },
            email_delivery: true,
        }
    }
}
