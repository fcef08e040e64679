//! The built-in backend: accounts in Homi's own store.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::jwt::Signer;
use super::mail::Mailer;
use super::store::{
    AuthStore, NewSession, RefreshOutcome, RevokeSessions, SigninKeys, TokenPurpose, UserRecord,
};
use super::{
    AuthBackend, AuthHealth, AuthSession, Principal, SignUp, SignedUp, User, UserUpdate,
    normalize_email, normalize_name, password, random_token, token_digest,
};
use crate::config::{AuthConfig, Config};
use crate::error::{Error, Result};

/// Failed sign-ins older than this are forgotten.
pub(super) const FAILURE_WINDOW: Duration = Duration::from_secs(3600);

/// An account's failures from all networks that lock it (for the networks
/// that failed on it), as a multiple of `HOMI_SIGNIN_MAX_FAILURES`.
const ACCOUNT_FAILURES: u32 = 4;

/// One network's failures across accounts that lock it out of signing in,
/// as a multiple of `HOMI_SIGNIN_MAX_FAILURES`.
const NETWORK_FAILURES: u32 = 10;

#[derive(Clone)]
pub(super) struct Builtin {
    store: Arc<dyn AuthStore>,
    signer: Signer,
    config: AuthConfig,
    mailer: Option<Arc<dyn Mailer>>,
    debug: bool,
}

impl std::fmt::Debug for Builtin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builtin")
            .field("store", &self.store)
            .field("signer", &self.signer)
            .field("mailer", &self.mailer)
            .finish_non_exhaustive()
    }
}

fn to_user(r: &UserRecord) -> User {
    User {
        id: r.id,
        email: r.email.clone(),
        full_name: r.full_name.clone(),
        email_confirmed_at: r.email_confirmed_at,
        new_email: r.pending_email.clone(),
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

fn ended() -> Error {
    Error::Unauthorized(
        "the auth session has ended (signed out, expired or revoked); sign in again".into(),
    )
}

/// `now + d`, or a configuration error naming `var` when that is out of range.
pub(super) fn later(now: DateTime<Utc>, d: Duration, var: &str) -> Result<DateTime<Utc>> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(|| Error::config(var, format!("{}s is too long", d.as_secs())))
}

fn wrong_credentials() -> Error {
    Error::Unauthorized("invalid email or password".into())
}

fn locked(until: DateTime<Utc>, now: DateTime<Utc>, whose: &str) -> Error {
    let wait = (until - now).to_std().unwrap_or_default();
    Error::RateLimited {
        message: format!("too many failed sign-ins {whose}"),
        retry_after: wait.max(Duration::from_secs(1)),
    }
}

impl Builtin {
    pub async fn new(
        config: &Config,
        store: Arc<dyn AuthStore>,
        mailer: Option<Arc<dyn Mailer>>,
    ) -> Result<Self> {
        let secret = match &config.auth.jwt_secret {
            Some(s) => s.expose_secret().to_owned(),
            None => store.jwt_secret(random_token()? + &random_token()?).await?,
        };
        if mailer.is_none() {
            tracing::warn!(
                "HOMI_SMTP_URL is not set: password-reset emails cannot be sent (requests are accepted and logged)"
            );
        }
        let a = &config.auth;
        Ok(Self {
            signer: Signer::new(
                secret.as_bytes(),
                &a.jwt_issuer,
                &a.jwt_audience,
                a.access_token_ttl,
            ),
            store,
            config: a.clone(),
            mailer,
            debug: config.server.debug,
        })
    }

    fn session_expiry(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
        later(now, self.config.session_ttl, "HOMI_SESSION_TTL_SECS")
    }

    fn token_expiry(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
        later(
            now,
            self.config.reset_token_ttl,
            "HOMI_RESET_TOKEN_TTL_SECS",
        )
    }

    /// Checks `pw` against `hash` (a dummy hash when the account is unknown,
    /// so both cost the same), guarded by the sign-in counters of `keys`:
    ///
    /// - a network that has failed too often, across accounts, gets no try;
    /// - the account from that network locks after `max_failed_signins`
    ///   failures (doubling, at most an hour); the attempt is counted before
    ///   the check, so parallel guesses cannot outrun that lock;
    /// - the account as a whole locks after [`ACCOUNT_FAILURES`] times as
    ///   many, from anywhere. It then slows guessing without refusing the
    ///   owner: only networks that have not failed on the account may try.
    ///
    /// A success clears the pair's counter alone: the failures an attacker
    /// ran up on the account and from their network stay counted.
    async fn guarded_check(&self, keys: &SigninKeys, pw: &str, hash: Option<&str>) -> Result<bool> {
        let (max, lockout) = (self.config.max_failed_signins, self.config.signin_lockout);
        let now = Utc::now();
        if let Some(network) = &keys.network {
            let counted = self
                .store
                .signin_failures(network, now, FAILURE_WINDOW)
                .await?;
            if let Some(until) = counted.locked(now) {
                return Err(locked(until, now, "from this network"));
            }
        }
        let account = self
            .store
            .signin_failures(&keys.account, now, FAILURE_WINDOW)
            .await?;
        if let Some(until) = account.locked(now) {
            let pair = self
                .store
                .signin_failures(&keys.pair, now, FAILURE_WINDOW)
                .await?;
            if pair.failures > 0 {
                return Err(locked(until, now, "for this email from this network"));
            }
        }
        if let Some(until) = self
            .store
            .begin_signin_attempt(&keys.pair, now, max, lockout, FAILURE_WINDOW)
            .await?
        {
            return Err(locked(until, now, "for this email from this network"));
        }
        let hash = match hash {
            Some(h) => h.to_owned(),
            None => password::dummy_hash().await?,
        };
        let matches = pw.chars().count() <= self.config.password_max_length
            && password::verify(pw, &hash).await?;
        if matches {
            self.store.clear_signin_failures(&keys.pair).await?;
            return Ok(true);
        }
        let now = Utc::now();
        let pair_lock = self
            .store
            .signin_failed(&keys.pair, now, max, lockout)
            .await?;
        self.count_failure(&keys.account, max.saturating_mul(ACCOUNT_FAILURES), now)
            .await?;
        if let Some(network) = &keys.network {
            self.count_failure(network, max.saturating_mul(NETWORK_FAILURES), now)
                .await?;
        }
        match pair_lock {
            Some(until) => Err(locked(until, now, "for this email from this network")),
            None => Ok(false),
        }
    }

    /// Checks the current password that an authenticated change (password,
    /// email) needs. The caller holds a session, so the sign-in locks (which
    /// an attacker may have run up against the account) do not apply, and a
    /// wrong guess here counts toward none of them. The session counts its
    /// own wrong guesses instead: at `max_failed_signins` it is signed out,
    /// so a stolen access token cannot go on guessing the password (a new
    /// session needs a sign-in, which is under the sign-in locks). Attempts
    /// are counted before the check, as for a sign-in.
    async fn check_current_password(
        &self,
        principal: &Principal,
        user: &UserRecord,
        pw: &str,
    ) -> Result<()> {
        let (max, lockout) = (self.config.max_failed_signins, self.config.signin_lockout);
        let key = SigninKeys::session(principal.session_id);
        let locked = self
            .store
            .begin_signin_attempt(&key, Utc::now(), max, lockout, FAILURE_WINDOW)
            .await?
            .is_some();
        let matches = !locked
            && pw.chars().count() <= self.config.password_max_length
            && password::verify(pw, &user.password_hash).await?;
        if matches {
            self.store.clear_signin_failures(&key).await?;
            return Ok(());
        }
        let now = Utc::now();
        if locked
            || self
                .store
                .signin_failed(&key, now, max, lockout)
                .await?
                .is_some()
        {
            self.store
                .revoke_session(principal.session_id, principal.user_id, now)
                .await?;
            return Err(Error::Unauthorized(
                "the current password was wrong too many times: this session is signed out, \
                 sign in again"
                    .into(),
            ));
        }
        Err(Error::Unauthorized("the current password is wrong".into()))
    }

    /// Counts one failure under `key`, locking it from `max` failures on.
    async fn count_failure(&self, key: &str, max: u32, now: DateTime<Utc>) -> Result<()> {
        let lockout = self.config.signin_lockout;
        self.store
            .begin_signin_attempt(key, now, u32::MAX, lockout, FAILURE_WINDOW)
            .await?;
        self.store.signin_failed(key, now, max, lockout).await?;
        Ok(())
    }

    fn pair(
        &self,
        user: &UserRecord,
        session: Uuid,
        refresh_token: String,
        now: DateTime<Utc>,
    ) -> Result<AuthSession> {
        let (access_token, exp) = self.signer.issue(user.id, session, &user.email, now)?;
        Ok(AuthSession {
            access_token,
            refresh_token,
            token_type: "bearer".into(),
            expires_in: self.signer.ttl().as_secs(),
            expires_at: exp.timestamp(),
            user: to_user(user),
        })
    }

    async fn new_session(&self, user: &UserRecord) -> Result<AuthSession> {
        let now = Utc::now();
        let id = Uuid::new_v4();
        let refresh = random_token()?;
        self.store
            .create_session(&NewSession {
                id,
                user_id: user.id,
                refresh_token_hash: token_digest(&refresh),
                created_at: now,
                expires_at: self.session_expiry(now)?,
            })
            .await?;
        self.pair(user, id, refresh, now)
    }

    /// Emails `user` a one-time link for `purpose`, to their address or,
    /// for an email change, to the new one (`to`), which following it proves.
    async fn send_link(
        &self,
        user: &UserRecord,
        purpose: TokenPurpose,
        to: Option<&str>,
    ) -> Result<()> {
        let now = Utc::now();
        let token = random_token()?;
        let address = to.unwrap_or(&user.email);
        self.store
            .create_one_time_token(
                &token_digest(&token),
                user.id,
                purpose,
                Some(address),
                now,
                self.token_expiry(now)?,
            )
            .await?;
        let minutes = self.config.reset_token_ttl.as_secs() / 60;
        let base = &self.config.public_url;
        let (subject, body) = match purpose {
            TokenPurpose::ResetPassword => (
                "Reset your Homi password",
                format!(
                    "Someone asked to reset the password of the Homi account for {email}.\r\n\r\n\
                     Reset token: {token}\r\n\r\n\
                     Or open: {base}/reset-password?token={token}\r\n\r\n\
                     The token works once and expires in {minutes} minutes. \
                     If you did not ask for this, ignore this email: your password stays as it is.\r\n",
                    email = user.email
                ),
            ),
            TokenPurpose::ConfirmEmail if to.is_some() => (
                "Confirm your new email for Homi",
                format!(
                    "Confirm that {address} is to be the email of your Homi account \
                     (now {email}).\r\n\r\n\
                     Confirmation token: {token}\r\n\r\n\
                     Or open: {base}/api/v1/auth/confirm?token={token}\r\n\r\n\
                     The link works once and expires in {minutes} minutes. Until it is \
                     followed, the account keeps its current email.\r\n",
                    email = user.email
                ),
            ),
            TokenPurpose::ConfirmEmail => (
                "Confirm your email for Homi",
                format!(
                    "Confirm that {email} is yours to finish signing up to Homi.\r\n\r\n\
                     Confirmation token: {token}\r\n\r\n\
                     Or open: {base}/api/v1/auth/confirm?token={token}\r\n\r\n\
                     The link works once and expires in {minutes} minutes.\r\n",
                    email = user.email
                ),
            ),
        };
        match &self.mailer {
            Some(m) => m.send(address, subject, &body).await,
            None => {
                if self.debug {
                    tracing::debug!(user_id = %user.id, %token, purpose = purpose.as_str(), "HOMI_SMTP_URL is not set: email not sent (token shown because DEBUG is on)");
                } else {
                    tracing::warn!(user_id = %user.id, purpose = purpose.as_str(), "HOMI_SMTP_URL is not set: email not sent");
                }
                Ok(())
            }
        }
    }

    pub async fn sign_up(&self, request: SignUp, _client: Option<IpAddr>) -> Result<SignedUp> {
        let (email, _) = normalize_email("email", &request.email)?;
        let pw = request.password.expose_secret();
        password::check_policy(
            "password",
            pw,
            self.config.password_min_length,
            self.config.password_max_length,
        )?;
        let full_name = normalize_name("full_name", request.full_name.as_deref())?;
        let now = Utc::now();
        let confirm = self.config.require_email_confirmation;
        let record = UserRecord {
            id: Uuid::new_v4(),
            email,
            password_hash: password::hash(pw).await?,
            full_name,
            // Confirmed only by following a link sent to it.
            email_confirmed_at: None,
            created_at: now,
            updated_at: now,
            pending_email: None,
        };
        self.store.create_user(&record).await?;
        if confirm {
            if let Err(e) = self
                .send_link(&record, TokenPurpose::ConfirmEmail, None)
                .await
            {
                // No account that cannot be confirmed: undo the sign-up.
                self.store.delete_user(&record.id.to_string()).await?;
                return Err(e);
            }
            return Ok(SignedUp {
                user: to_user(&record),
                session: None,
            });
        }
        let session = self.new_session(&record).await?;
        Ok(SignedUp {
            user: to_user(&record),
            session: Some(session),
        })
    }

    pub async fn sign_in(
        &self,
        email: &str,
        pw: &str,
        client: Option<IpAddr>,
    ) -> Result<AuthSession> {
        let normalized = email.trim().to_lowercase();
        let keys = SigninKeys::new(&normalized, client.map(super::client_network));
        if normalized.is_empty() {
            return Err(Error::invalid("email", "an email address is required"));
        }
        if pw.is_empty() {
            return Err(Error::invalid("password", "a password is required"));
        }
        let user = self.store.user_by_email(&normalized).await?;
        let hash = user.as_ref().map(|u| u.password_hash.as_str());
        if !self.guarded_check(&keys, pw, hash).await? {
            return Err(wrong_credentials());
        }
        let Some(user) = user else {
            return Err(wrong_credentials());
        };
        if self.config.require_email_confirmation && user.email_confirmed_at.is_none() {
            return Err(Error::Forbidden(
                "the email address is not confirmed yet: open the link sent to it, or ask for a new one"
                    .into(),
            ));
        }
        self.new_session(&user).await
    }

    pub async fn sign_out(&self, principal: &Principal) -> Result<()> {
        self.store
            .revoke_session(principal.session_id, principal.user_id, Utc::now())
            .await?;
        Ok(())
    }

    pub async fn refresh(
        &self,
        refresh_token: &str,
        _client: Option<IpAddr>,
    ) -> Result<AuthSession> {
        let refresh_token = refresh_token.trim();
        if refresh_token.is_empty() {
            return Err(Error::invalid(
                "refresh_token",
                "a refresh token is required",
            ));
        }
        let now = Utc::now();
        let next = random_token()?;
        let outcome = self
            .store
            .rotate_refresh_token(
                &token_digest(refresh_token),
                &token_digest(&next),
                now,
                self.session_expiry(now)?,
                self.config.refresh_reuse_grace,
            )
            .await?;
        match outcome {
            RefreshOutcome::Rotated {
                session_id,
                user_id,
            } => {
                let user = self.store.user_by_id(user_id).await?.ok_or_else(ended)?;
                self.pair(&user, session_id, next, now)
            }
            RefreshOutcome::Reused => Err(Error::Unauthorized(
                "this refresh token was already used, so the auth session has been revoked to be safe; sign in again".into(),
            )),
            RefreshOutcome::Invalid => Err(Error::Unauthorized(
                "the refresh token is invalid or its auth session has ended; sign in again".into(),
            )),
        }
    }

    pub async fn verify_access_token(&self, token: &str) -> Result<Principal> {
        let now = Utc::now();
        let (user_id, session_id, expires_at) = self.signer.verify(token, now)?;
        if !self.store.session_active(session_id, user_id, now).await? {
            return Err(ended());
        }
        Ok(Principal {
            user_id,
            session_id,
            expires_at,
            token: token.to_owned().into(),
        })
    }

    async fn current(&self, principal: &Principal) -> Result<UserRecord> {
        self.store
            .user_by_id(principal.user_id)
            .await?
            .ok_or_else(ended)
    }

    pub async fn get_user(&self, principal: &Principal) -> Result<User> {
        Ok(to_user(&self.current(principal).await?))
    }

    pub async fn update_user(&self, principal: &Principal, update: UserUpdate) -> Result<User> {
        let before = self.current(principal).await?;
        let name = match &update.full_name {
            Some(n) => Some(normalize_name("full_name", Some(n))?),
            None => None,
        };
        let new_email = match &update.email {
            Some(e) => {
                let (email, normalized) = normalize_email("email", e)?;
                (normalized != before.email.to_lowercase()).then_some(email)
            }
            None => None,
        };
        if new_email.is_some() {
            let pw = update.password_for_email_change()?;
            self.check_current_password(principal, &before, pw).await?;
        }
        let now = Utc::now();
        let mut after = if name.is_some() {
            self.store
                .update_user(principal.user_id, name, None, now)
                .await?
                .ok_or_else(ended)?
        } else {
            before.clone()
        };
        let Some(email) = new_email else {
            return Ok(to_user(&after));
        };
        if self.mailer.is_none() {
            // Nobody can be sent a link: the address changes now, unconfirmed.
            after = self
                .store
                .update_user(principal.user_id, None, Some((email, None)), now)
                .await?
                .ok_or_else(ended)?;
            return Ok(to_user(&after));
        }
        // It takes effect once a link sent to it is followed; the old
        // address is told.
        self.store
            .set_pending_email(principal.user_id, Some(&email), now)
            .await?;
        if let Err(e) = self
            .send_link(&after, TokenPurpose::ConfirmEmail, Some(&email))
            .await
        {
            self.store
                .set_pending_email(principal.user_id, None, Utc::now())
                .await?;
            return Err(e);
        }
        if let Some(m) = &self.mailer {
            let notice = format!(
                "Someone asked to change the email of your Homi account from {old} to {email}.\r\n\r\n\
                 It changes only once a link sent to {email} is followed. If this was not you, \
                 reset your password now: whoever asked knows it.\r\n",
                old = before.email
            );
            if let Err(e) = m
                .send(&before.email, "Your Homi email is being changed", &notice)
                .await
            {
                tracing::warn!(user_id = %before.id, error = %e, "the old address could not be told of an email change");
            }
        }
        after.pending_email = Some(email);
        Ok(to_user(&after))
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
        password::check_policy(
            "new_password",
            new_password,
            self.config.password_min_length,
            self.config.password_max_length,
        )?;
        let user = self.current(principal).await?;
        self.check_current_password(principal, &user, current_password)
            .await?;
        let hash = password::hash(new_password).await?;
        self.store
            .set_password(
                user.id,
                &hash,
                RevokeSessions::AllExcept(principal.session_id),
                Utc::now(),
            )
            .await
    }

    pub async fn request_password_reset(&self, email: &str, _client: Option<IpAddr>) -> Result<()> {
        self.send_later(email, TokenPurpose::ResetPassword)
    }

    pub async fn resend_confirmation(&self, email: &str, _client: Option<IpAddr>) -> Result<()> {
        self.send_later(email, TokenPurpose::ConfirmEmail)
    }

    /// Emails a one-time link for `purpose` if an account has this email (and,
    /// for a confirmation, is not confirmed yet). The work happens after the
    /// answer, so neither the answer nor its timing says whether it has.
    fn send_later(&self, email: &str, purpose: TokenPurpose) -> Result<()> {
        let (_, normalized) = normalize_email("email", email)?;
        let this = self.clone();
        tokio::spawn(async move {
            let result = async {
                let user = this.store.user_by_email(&normalized).await?;
                let wanted = match purpose {
                    TokenPurpose::ResetPassword => user,
                    TokenPurpose::ConfirmEmail => user.filter(|u| u.email_confirmed_at.is_none()),
                };
                if let Some(user) = wanted {
                    this.send_link(&user, purpose, None).await?;
                }
                Ok::<_, Error>(())
            }
            .await;
            if let Err(e) = result {
                tracing::error!(error = %e, purpose = purpose.as_str(), "an email could not be sent");
            }
        });
        Ok(())
    }

    pub async fn confirm_password_reset(
        &self,
        token: &str,
        new_password: &str,
        _client: Option<IpAddr>,
    ) -> Result<()> {
        let token = token.trim();
        if token.is_empty() {
            return Err(Error::invalid("token", "the reset token is required"));
        }
        password::check_policy(
            "new_password",
            new_password,
            self.config.password_min_length,
            self.config.password_max_length,
        )?;
        let hash = password::hash(new_password).await?;
        match self
            .store
            .reset_password(&token_digest(token), &hash, Utc::now())
            .await?
        {
            Some(_) => Ok(()),
            None => Err(Error::invalid(
                "token",
                "the reset token is invalid, already used or expired; request a new one",
            )),
        }
    }

    pub async fn confirm_email(&self, token: &str, _client: Option<IpAddr>) -> Result<User> {
        let token = token.trim();
        if token.is_empty() {
            return Err(Error::invalid(
                "token",
                "the confirmation token is required",
            ));
        }
        let id = self
            .store
            .confirm_email(&token_digest(token), Utc::now())
            .await?
            .ok_or_else(|| {
                Error::invalid(
                    "token",
                    "the confirmation link is invalid, already used or expired",
                )
            })?;
        let user = self
            .store
            .user_by_id(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("user {id}")))?;
        Ok(to_user(&user))
    }

    pub async fn delete_user(&self, user_id: Uuid) -> Result<bool> {
        self.store.delete_user(&user_id.to_string()).await
    }

    pub async fn list_users(&self, limit: usize, offset: usize) -> Result<Vec<User>> {
        Ok(self
            .store
            .list_users(limit, offset)
            .await?
            .iter()
            .map(to_user)
            .collect())
    }

    pub async fn health(&self) -> AuthHealth {
        let probe = self.store.user_by_id(Uuid::nil()).await;
        AuthHealth {
            backend: AuthBackend::Builtin,
            healthy: probe.is_ok(),
            detail: match probe {
                Ok(_) => "built-in accounts: the store answers".into(),
                Err(e) => format!("built-in accounts: {e}"),
            },
            email_delivery: self.mailer.is_some(),
        }
    }
}
