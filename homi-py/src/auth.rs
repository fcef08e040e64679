//! `homi.Auth`: accounts, auth sessions and service API keys over
//! `homi_core::auth::Auth` (built-in accounts, or Supabase Auth when
//! SUPABASE_URL and SUPABASE_KEY are set). Methods that act for a signed-in
//! user take their access token and verify it first.

use std::sync::Arc;

use homi_core::Config;
use homi_core::auth::{KeyScope, NewApiKey, Principal, SignUp, UserUpdate};
use pyo3::prelude::*;
use serde_json::{Value, json};

use crate::convert::to_py;
use crate::errors::IntoPy;
use crate::memory::{PerProcess, config_from};
use crate::runtime::block_on;

struct Shared {
    config: Config,
    auth: PerProcess<homi_core::auth::Auth>,
}

impl Shared {
    async fn auth(&self) -> PyResult<homi_core::auth::Auth> {
        self.auth
            .get_or_open(|| async { homi_core::auth::Auth::open_shared(&self.config).await.py() })
            .await
    }

    async fn principal(&self, access_token: &str) -> PyResult<(homi_core::auth::Auth, Principal)> {
        let auth = self.auth().await?;
        let principal = auth.verify_access_token(access_token).await.py()?;
        Ok((auth, principal))
    }
}

fn session(s: &homi_core::auth::AuthSession) -> Value {
    json!({
        "access_token": s.access_token,
        "refresh_token": s.refresh_token,
        "token_type": s.token_type,
        "expires_in": s.expires_in,
        "expires_at": s.expires_at,
        "user": s.user,
    })
}

/// Accounts and tokens (built-in, or Supabase Auth), and service API keys.
#[pyclass(module = "homi._homi", frozen)]
pub struct Auth {
    shared: Arc<Shared>,
}

macro_rules! run {
    ($self:ident, $py:ident, |$s:ident| $body:expr) => {{
        let $s = $self.shared.clone();
        let value: Value = block_on($py, async move { $body })?;
        to_py($py, &value)
    }};
}

#[pymethods]
impl Auth {
    /// On the configuration of the environment.
    #[new]
    fn new() -> PyResult<Self> {
        Ok(Self {
            shared: Arc::new(Shared {
                config: config_from(None)?,
                auth: PerProcess::new(),
            }),
        })
    }

    /// Creates an account: `{user, session}` (`session` is None while the
    /// email must be confirmed).
    #[pyo3(signature = (email, password, full_name=None))]
    fn sign_up<'py>(
        &self,
        py: Python<'py>,
        email: String,
        password: String,
        full_name: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        run!(self, py, |s| {
            let mut request = SignUp::new(email, password);
            if let Some(name) = full_name {
                request = request.with_full_name(name);
            }
            let up = s.auth().await?.sign_up(request).await.py()?;
            Ok(json!({"user": up.user, "session": up.session.as_ref().map(session)}))
        })
    }

    /// Signs in: `{access_token, refresh_token, token_type, expires_in, expires_at, user}`.
    fn sign_in<'py>(
        &self,
        py: Python<'py>,
        email: String,
        password: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        run!(self, py, |s| {
            let signed = s.auth().await?.sign_in(&email, &password).await.py()?;
            Ok(session(&signed))
        })
    }

    /// A new token pair for a refresh token (each works once).
    fn refresh<'py>(&self, py: Python<'py>, refresh_token: String) -> PyResult<Bound<'py, PyAny>> {
        run!(self, py, |s| {
            let signed = s.auth().await?.refresh(&refresh_token).await.py()?;
            Ok(session(&signed))
        })
    }

    /// Who an access token belongs to: `{user_id, session_id, expires_at}`.
    fn verify<'py>(&self, py: Python<'py>, access_token: String) -> PyResult<Bound<'py, PyAny>> {
        run!(self, py, |s| {
            let (_, p) = s.principal(&access_token).await?;
            Ok(
                json!({"user_id": p.user_id, "session_id": p.session_id, "expires_at": p.expires_at}),
            )
        })
    }

    /// Ends the token's auth session.
    fn sign_out(&self, py: Python<'_>, access_token: String) -> PyResult<()> {
        let s = self.shared.clone();
        block_on(py, async move {
            let (auth, p) = s.principal(&access_token).await?;
            auth.sign_out(&p).await.py()
        })
    }

    /// The token's user.
    fn get_user<'py>(&self, py: Python<'py>, access_token: String) -> PyResult<Bound<'py, PyAny>> {
        run!(self, py, |s| {
            let (auth, p) = s.principal(&access_token).await?;
            Ok(json!(auth.get_user(&p).await.py()?))
        })
    }

    /// Changes the token user's name and/or email (a new email needs
    /// `current_password`; with SMTP it is `new_email` until confirmed).
    #[pyo3(signature = (access_token, *, full_name=None, email=None, current_password=None))]
    fn update_user<'py>(
        &self,
        py: Python<'py>,
        access_token: String,
        full_name: Option<String>,
        email: Option<String>,
        current_password: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        run!(self, py, |s| {
            let (auth, p) = s.principal(&access_token).await?;
            let mut update = UserUpdate::default();
            if let Some(n) = full_name {
                update = update.full_name(n);
            }
            if let Some(e) = email {
                update = update.email(e);
            }
            if let Some(pw) = current_password {
                update = update.current_password(pw);
            }
            Ok(json!(auth.update_user(&p, update).await.py()?))
        })
    }

    /// Changes the password (the current one is checked; other sessions end).
    fn change_password(
        &self,
        py: Python<'_>,
        access_token: String,
        current_password: String,
        new_password: String,
    ) -> PyResult<()> {
        let s = self.shared.clone();
        block_on(py, async move {
            let (auth, p) = s.principal(&access_token).await?;
            auth.change_password(&p, &current_password, &new_password)
                .await
                .py()
        })
    }

    /// Emails a reset link if the email has an account (the same answer either way).
    fn request_password_reset(&self, py: Python<'_>, email: String) -> PyResult<()> {
        let s = self.shared.clone();
        block_on(py, async move {
            s.auth().await?.request_password_reset(&email).await.py()
        })
    }

    /// Sets a new password with a reset token.
    fn confirm_password_reset(
        &self,
        py: Python<'_>,
        token: String,
        new_password: String,
    ) -> PyResult<()> {
        let s = self.shared.clone();
        block_on(py, async move {
            s.auth()
                .await?
                .confirm_password_reset(&token, &new_password)
                .await
                .py()
        })
    }

    /// Deletes a user and everything of theirs; whether they existed.
    fn delete_user(&self, py: Python<'_>, user_id: String) -> PyResult<bool> {
        let s = self.shared.clone();
        block_on(py, async move {
            let id = uuid_arg(&user_id)?;
            s.auth().await?.delete_user(id).await.py()
        })
    }

    /// A service API key; the `secret` is in this answer only.
    #[pyo3(signature = (name, scopes, namespace="default".to_owned()))]
    fn create_api_key<'py>(
        &self,
        py: Python<'py>,
        name: String,
        scopes: Vec<String>,
        namespace: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        run!(self, py, |s| {
            let scopes = scopes
                .iter()
                .map(|x| KeyScope::parse(x))
                .collect::<homi_core::Result<Vec<_>>>()
                .py()?;
            let created = s
                .auth()
                .await?
                .create_api_key(NewApiKey::new(name, namespace, scopes))
                .await
                .py()?;
            Ok(json!(created))
        })
    }

    /// Every service API key, without secrets.
    fn list_api_keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        run!(self, py, |s| Ok(json!(
            s.auth().await?.list_api_keys().await.py()?
        )))
    }

    /// Revokes a key at once.
    fn revoke_api_key(&self, py: Python<'_>, key_id: String) -> PyResult<()> {
        let s = self.shared.clone();
        block_on(py, async move {
            let id = uuid_arg(&key_id)?;
            s.auth().await?.revoke_api_key(id).await.py()
        })
    }
}

fn uuid_arg(s: &str) -> PyResult<uuid::Uuid> {
    uuid::Uuid::parse_str(s.trim()).map_err(|_| {
        crate::errors::to_py_err(homi_core::Error::invalid(
            "id",
            format!("'{s}' is not an id"),
        ))
    })
}
