//! Extractors: JSON bodies whose rejections are the server's JSON errors, and
//! the caller: a user from a verified `Authorization: Bearer` access token, or
//! a service from a verified `X-API-Key` acting for the user `X-User-Id` names
//! (inside the key's namespace, within the key's scopes).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use homi_core::auth::{KeyScope, Principal, ServiceCaller};
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;

/// A JSON body; malformed JSON, wrong types, unknown fields and oversized
/// bodies are answered with a JSON error that says what is wrong.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// A query string; one that does not parse (a wrong type, an unknown
/// parameter) is answered with a JSON 422 that names the parameter.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                rejection.body_text(),
            )),
        }
    }
}

/// A path parameter; one that does not parse is answered with a JSON 4xx.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => {
                let status = rejection.status();
                let status = if status.is_server_error() {
                    axum::http::StatusCode::BAD_REQUEST
                } else {
                    status
                };
                Err(ApiError::new(status, "invalid_path", rejection.body_text()))
            }
        }
    }
}

/// The caller: the user of a verified access token whose auth session is
/// active. The user id always comes from here, never from a request body.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub Principal);

impl CurrentUser {
    /// The user id, as memories and conversations are scoped.
    pub fn id(&self) -> String {
        self.0.user_id.to_string()
    }
}

/// The Auth client acting for the request's client address (see
/// [`crate::client`]): sign-in failures and Supabase's per-IP limits count it.
#[derive(Debug, Clone)]
pub struct ClientAuth(pub homi_core::auth::Auth);

impl FromRequestParts<AppState> for ClientAuth {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(
            match parts.extensions.get::<crate::client::ClientAddr>() {
                Some(client) => state.auth.for_client(client.0),
                None => state.auth.clone(),
            },
        ))
    }
}

/// The header carrying a service API key.
pub const API_KEY_HEADER: &str = "x-api-key";
/// The header naming the user a service request is for.
pub const USER_HEADER: &str = "x-user-id";

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(API_KEY_HEADER) {
            return Err(ApiError::unauthorized(
                "this route is for signed-in users: send `Authorization: Bearer <access token>`, not an API key",
            ));
        }
        bearer_user(parts, state).await
    }
}

async fn bearer_user(parts: &Parts, state: &AppState) -> Result<CurrentUser, ApiError> {
    {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("send `Authorization: Bearer <access token>`"))?;
        let value = value
            .to_str()
            .map_err(|_| ApiError::unauthorized("the Authorization header is not valid text"))?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => {
                return Err(ApiError::unauthorized(
                    "the Authorization header must be `Bearer <access token>`",
                ));
            }
        };
        let principal = state.auth.verify_access_token(token).await?;
        Ok(CurrentUser(principal))
    }
}

/// Whose memories and conversations a request reaches: the signed-in user's,
/// or, for a service API key, the user `X-User-Id` names in the key's
/// namespace.
#[derive(Debug, Clone)]
pub struct Caller {
    user_id: String,
    /// The key, when a service calls.
    pub service: Option<ServiceCaller>,
}

impl Caller {
    /// The user id memories and conversations are scoped by.
    pub fn id(&self) -> String {
        self.user_id.clone()
    }
}

/// A caller allowed to read (a user, or a key with `read` or `write`).
#[derive(Debug, Clone)]
pub struct Reader(pub Caller);

/// A caller allowed to write (a user, or a key with `write`).
#[derive(Debug, Clone)]
pub struct Writer(pub Caller);

/// A service API key with the `admin` scope.
#[derive(Debug, Clone)]
pub struct Admin(pub ServiceCaller);

impl std::ops::Deref for Reader {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl std::ops::Deref for Writer {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.0
    }
}

/// The service API key of the request: `X-API-Key`, or (as OpenAI's SDKs
/// send their key) `Authorization: Bearer homi_sk_…`; `None` for a user.
fn api_key(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(API_KEY_HEADER) else {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| token.starts_with(homi_core::auth::keys::KEY_PREFIX));
        return Ok(bearer);
    };
    let key = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the X-API-Key header is not valid text"))?;
    if parts.headers.contains_key(header::AUTHORIZATION) {
        return Err(ApiError::bad_request(
            "send an access token (Authorization) or an API key (X-API-Key), not both",
        ));
    }
    Ok(Some(key.trim()))
}

/// Whose data the request reaches, for a key with `scope` (see [`Caller`]).
pub async fn caller(parts: &Parts, state: &AppState, scope: KeyScope) -> Result<Caller, ApiError> {
    match api_key(parts)? {
        Some(key) => {
            let service = state.auth.verify_api_key(key).await?;
            service.require(scope)?;
            let user = parts
                .headers
                .get(USER_HEADER)
                .ok_or_else(|| {
                    ApiError::bad_request("an API key acts for a user: name them in X-User-Id")
                })?
                .to_str()
                .map_err(|_| ApiError::bad_request("the X-User-Id header is not valid text"))?;
            Ok(Caller {
                user_id: service.user_id(user)?,
                service: Some(service),
            })
        }
        None => {
            // A user's id comes from their token, never from a header.
            if parts.headers.contains_key(USER_HEADER) {
                return Err(ApiError::bad_request(
                    "X-User-Id is for API keys; an access token already says who you are",
                ));
            }
            let user = bearer_user(parts, state).await?;
            Ok(Caller {
                user_id: user.id(),
                service: None,
            })
        }
    }
}

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self(caller(parts, state, KeyScope::Read).await?))
    }
}

impl FromRequestParts<AppState> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self(caller(parts, state, KeyScope::Write).await?))
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = api_key(parts)?.ok_or_else(|| {
            ApiError::unauthorized("send an API key with the admin scope in X-API-Key")
        })?;
        let service = state.auth.verify_api_key(key).await?;
        service.require(KeyScope::Admin)?;
        Ok(Self(service))
    }
}
