//! The routes. Each parses its input, calls one `homi-core` function and
//! renders the answer; the caller's user id comes from [`CurrentUser`].

use std::convert::Infallible;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::{Stream, StreamExt};
use homi_core::auth::{AuthHealth, CreatedApiKey};
use homi_core::auth::{AuthSession, SignUp, User, UserUpdate};
use homi_core::chat::ChatEvent;
use homi_core::chat::TurnResult;
use homi_core::{HistoryEntry, ListOptions, MemoryItem, Scope, SearchMode, SearchOptions};

use crate::error::ErrorBody;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Admin, ApiJson, ApiPath, ApiQuery, ClientAuth, CurrentUser, Reader, Writer};
use crate::metrics::ProviderTime;

type ApiResult<T> = Result<T, ApiError>;

// ---------------------------------------------------------------- auth

/// `POST /api/v1/auth/signup`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUpBody {
    email: String,
    password: String,
    #[serde(default)]
    full_name: Option<String>,
}

/// `POST /api/v1/auth/signin`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInBody {
    email: String,
    password: String,
}

/// The token answer of sign-up, sign-in and refresh (the original's shape).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenAnswer {
    user: User,
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<u64>,
    token_type: &'static str,
    /// Sign-up only: the email must be confirmed before signing in.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    confirmation_required: bool,
}

impl From<AuthSession> for TokenAnswer {
    fn from(s: AuthSession) -> Self {
        Self {
            user: s.user,
            access_token: Some(s.access_token),
            refresh_token: Some(s.refresh_token),
            expires_in: Some(s.expires_in),
            token_type: "bearer",
            confirmation_required: false,
        }
    }
}

/// `POST /api/v1/auth/signup`: creates an account (201), signed in unless the email must be confirmed.
#[utoipa::path(post, path = "/auth/signup", tag = "Auth", request_body = SignUpBody, responses((status = 201, body = TokenAnswer), (status = 409, description = "the email is taken", body = ErrorBody), (status = 422, description = "invalid input; `detail` names the field", body = ErrorBody)))]
pub async fn signup(
    ClientAuth(auth): ClientAuth,
    ApiJson(b): ApiJson<SignUpBody>,
) -> ApiResult<(StatusCode, Json<TokenAnswer>)> {
    let mut request = SignUp::new(b.email, b.password);
    if let Some(name) = b.full_name {
        request = request.with_full_name(name);
    }
    let up = auth.sign_up(request).await?;
    let answer = match up.session {
        Some(session) => TokenAnswer::from(session),
        None => TokenAnswer {
            user: up.user,
            access_token: None,
            refresh_token: None,
            expires_in: None,
            token_type: "bearer",
            confirmation_required: true,
        },
    };
    Ok((StatusCode::CREATED, Json(answer)))
}

/// `POST /api/v1/auth/signin`: email and password → tokens; 401 on a wrong pair.
#[utoipa::path(post, path = "/auth/signin", tag = "Auth", request_body = SignInBody, responses((status = 200, body = TokenAnswer), (status = 401, description = "wrong email or password", body = ErrorBody), (status = 429, description = "too many failures; see Retry-After", body = ErrorBody)))]
pub async fn signin(
    ClientAuth(auth): ClientAuth,
    ApiJson(b): ApiJson<SignInBody>,
) -> ApiResult<Json<TokenAnswer>> {
    Ok(Json(auth.sign_in(&b.email, &b.password).await?.into()))
}

/// `POST /api/v1/auth/signout`: ends the caller's auth session.
#[utoipa::path(post, path = "/auth/signout", tag = "Auth", responses((status = 200, body = Object), (status = 401, description = "missing or invalid credentials", body = ErrorBody)), security(("bearer" = [])))]
pub async fn signout(State(s): State<AppState>, user: CurrentUser) -> ApiResult<Json<Value>> {
    s.auth.sign_out(&user.0).await?;
    Ok(Json(json!({"message": "signed out"})))
}

/// `POST /api/v1/auth/refresh`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    refresh_token: String,
}

/// `POST /api/v1/auth/refresh`: a refresh token → a new pair (each works once).
#[utoipa::path(post, path = "/auth/refresh", tag = "Auth", request_body = RefreshBody, responses((status = 200, body = TokenAnswer), (status = 401, description = "missing or invalid credentials", body = ErrorBody)))]
pub async fn refresh(
    ClientAuth(auth): ClientAuth,
    ApiJson(b): ApiJson<RefreshBody>,
) -> ApiResult<Json<TokenAnswer>> {
    Ok(Json(auth.refresh(&b.refresh_token).await?.into()))
}

/// `GET /api/v1/auth/me`: the caller's profile.
#[utoipa::path(get, path = "/auth/me", tag = "Auth", responses((status = 200, body = User), (status = 401, description = "missing or invalid credentials", body = ErrorBody)), security(("bearer" = [])))]
pub async fn me(State(s): State<AppState>, user: CurrentUser) -> ApiResult<Json<User>> {
    Ok(Json(s.auth.get_user(&user.0).await?))
}

/// `PUT /api/v1/auth/me`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeBody {
    #[serde(default)]
    full_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    /// Needed to change the email.
    #[serde(default)]
    current_password: Option<String>,
}

/// `PUT /api/v1/auth/me`: changes the caller's name and/or email. A new
/// email needs `current_password`; with SMTP configured it is `new_email`
/// until the link sent to it is followed (the old address is told).
#[utoipa::path(put, path = "/auth/me", tag = "Auth", request_body = UpdateMeBody, responses((status = 200, body = User), (status = 401, description = "missing or invalid credentials", body = ErrorBody), (status = 422, description = "invalid input; `detail` names the field", body = ErrorBody)), security(("bearer" = [])))]
pub async fn update_me(
    State(s): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<UpdateMeBody>,
) -> ApiResult<Json<User>> {
    let mut update = UserUpdate::default();
    if let Some(n) = b.full_name {
        update = update.full_name(n);
    }
    if let Some(e) = b.email {
        update = update.email(e);
    }
    if let Some(p) = b.current_password {
        update = update.current_password(p);
    }
    Ok(Json(s.auth.update_user(&user.0, update).await?))
}

/// `POST /api/v1/auth/change-password`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordBody {
    current_password: String,
    new_password: String,
}

/// `POST /api/v1/auth/change-password`: checks the current password; other sessions end.
#[utoipa::path(post, path = "/auth/change-password", tag = "Auth", request_body = ChangePasswordBody, responses((status = 200, body = Object), (status = 401, description = "missing or invalid credentials", body = ErrorBody), (status = 422, description = "invalid input; `detail` names the field", body = ErrorBody)), security(("bearer" = [])))]
pub async fn change_password(
    State(s): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<ChangePasswordBody>,
) -> ApiResult<Json<Value>> {
    s.auth
        .change_password(&user.0, &b.current_password, &b.new_password)
        .await?;
    Ok(Json(
        json!({"message": "password changed; your other sessions are signed out"}),
    ))
}

/// `POST /api/v1/auth/reset-password`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    email: String,
}

/// `POST /api/v1/auth/reset-password`: 202 whether or not the email has an account.
#[utoipa::path(post, path = "/auth/reset-password", tag = "Auth", request_body = ResetBody, responses((status = 202, body = Object, description = "sent if the email has an account")))]
pub async fn reset_password(
    ClientAuth(auth): ClientAuth,
    ApiJson(b): ApiJson<ResetBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    auth.request_password_reset(&b.email).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"message": "if an account has this email, a reset link is on its way"})),
    ))
}

/// `POST /api/v1/auth/reset-password/confirm`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmResetBody {
    token: String,
    new_password: String,
}

/// `POST /api/v1/auth/reset-password/confirm`: a reset token and a new password.
#[utoipa::path(post, path = "/auth/reset-password/confirm", tag = "Auth", request_body = ConfirmResetBody, responses((status = 200, body = Object), (status = 401, description = "missing or invalid credentials", body = ErrorBody), (status = 422, description = "invalid input; `detail` names the field", body = ErrorBody)))]
pub async fn confirm_reset(
    ClientAuth(auth): ClientAuth,
    ApiJson(b): ApiJson<ConfirmResetBody>,
) -> ApiResult<Json<Value>> {
    auth.confirm_password_reset(&b.token, &b.new_password)
        .await?;
    Ok(Json(
        json!({"message": "password changed; sign in with the new one"}),
    ))
}

/// `GET /api/v1/auth/confirm?token=…`: the link of a confirmation email.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ConfirmQuery {
    token: String,
}

/// `GET /api/v1/auth/confirm?token=…`: confirms an email address.
#[utoipa::path(get, path = "/auth/confirm", tag = "Auth", params(ConfirmQuery), responses((status = 200, body = User), (status = 401, description = "missing or invalid credentials", body = ErrorBody)))]
pub async fn confirm_email(
    ClientAuth(auth): ClientAuth,
    ApiQuery(q): ApiQuery<ConfirmQuery>,
) -> ApiResult<Json<User>> {
    Ok(Json(auth.confirm_email(&q.token).await?))
}

/// `GET /api/v1/auth/health`: the auth backend's state (503 when it does not answer).
#[utoipa::path(get, path = "/auth/health", tag = "Auth", responses((status = 200, body = AuthHealth), (status = 503, body = AuthHealth)))]
pub async fn auth_health(State(s): State<AppState>) -> Response {
    let h = s.auth.health().await;
    let status = if h.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(h)).into_response()
}

// ---------------------------------------------------------------- chat

/// `POST /api/v1/chat` and `/api/v1/chat/stream`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatBody {
    message: String,
    #[serde(default)]
    session_id: Option<String>,
}

/// `POST /api/v1/chat`: one memory-augmented turn.
#[utoipa::path(post, path = "/chat", tag = "Chat", request_body = ChatBody, responses((status = 200, body = TurnResult, headers(("Server-Timing" = String, description = "total and provider milliseconds"))), (status = 401, description = "missing or invalid credentials", body = ErrorBody), (status = 403, description = "the API key lacks the scope", body = ErrorBody), (status = 422, description = "invalid input; `detail` names the field", body = ErrorBody), (status = 502, description = "the model provider failed", body = ErrorBody), (status = 503, description = "no model provider configured", body = ErrorBody), (status = 504, description = "the model provider timed out", body = ErrorBody)), security(("bearer" = []), ("api_key" = [], "user_id" = [])))]
pub async fn chat(
    State(s): State<AppState>,
    user: Writer,
    ApiJson(b): ApiJson<ChatBody>,
) -> ApiResult<(Extension<ProviderTime>, Json<homi_core::chat::TurnResult>)> {
    let turn = s
        .chat
        .turn(&user.id(), &b.message, b.session_id.as_deref())
        .await?;
    crate::metrics::record_chat("chat", &turn.usage);
    Ok((Extension(ProviderTime(turn.provider_ms)), Json(turn)))
}

/// `POST /api/v1/chat/stream`: one turn as server-sent events (`memories`, `delta`…, `done`).
#[utoipa::path(post, path = "/chat/stream", tag = "Chat", request_body = ChatBody, responses((status = 200, content_type = "text/event-stream", description = "events `memories`, `delta`…, then `done` (the turn) or `error`"), (status = 401, description = "missing or invalid credentials", body = ErrorBody), (status = 403, description = "the API key lacks the scope", body = ErrorBody), (status = 422, description = "invalid input; `detail` names the field", body = ErrorBody), (status = 502, description = "the model provider failed", body = ErrorBody), (status = 503, description = "no model provider configured", body = ErrorBody), (status = 504, description = "the model provider timed out", body = ErrorBody)), security(("bearer" = []), ("api_key" = [], "user_id" = [])))]
pub async fn chat_stream(
    State(s): State<AppState>,
    user: Writer,
    ApiJson(b): ApiJson<ChatBody>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let events = s
        .chat
        .stream(&user.id(), &b.message, b.session_id.as_deref())
        .await?;
    let sse = events.map(|ev| {
        Ok(match ev {
            Ok(ev) => {
                let name = match &ev {
                    ChatEvent::Memories { .. } => "memories",
                    ChatEvent::Delta { .. } => "delta",
                    ChatEvent::Done(turn) => {
                        crate::metrics::record_chat("chat_stream", &turn.usage);
                        "done"
                    }
                };
                Event::default()
                    .event(name)
                    .json_data(&ev)
                    .unwrap_or_else(|_| Event::default().event(name))
            }
            Err(e) => {
                let e = ApiError::from(e);
                Event::default().event("error").data(e.body().to_string())
            }
        })
    });
    Ok(Sse::new(sse).keep_alive(KeepAlive::default()))
}

// ---------------------------------------------------------------- memories

/// `POST /api/v1/memories/search`: the original's `query` and `limit`, and
/// mem0's `filters`, `top_k`, `threshold`, with `mode` and `as_of`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    query: String,
    /// How many (1–20; default 5).
    #[serde(default)]
    limit: Option<usize>,
    /// mem0 2.x's name for the limit (1–100).
    #[serde(default)]
    top_k: Option<usize>,
    /// `hybrid` (default: words and meaning), `semantic` or `keyword`.
    #[serde(default)]
    mode: SearchMode,
    /// Metadata filters in mem0's shape (`{"topic": "food"}`, `{"AND": […]}`,
    /// operators `eq, ne, in, nin, gt, gte, lt, lte, contains, icontains`);
    /// `agent_id` and `run_id` narrow the caller's memories.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    filters: Option<Value>,
    /// Only results scoring at least this (0–1).
    #[serde(default)]
    threshold: Option<f32>,
    /// What was true then (ISO 8601 or Unix seconds): superseded memories
    /// included, later ones left out.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    as_of: Option<Value>,
}

/// The search answer: the original's `memories` (texts) and the full results.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchAnswer {
    memories: Vec<String>,
    results: Vec<MemoryItem>,
    user_id: String,
    query: String,
}

/// The caller's scope, narrowed by `agent_id` / `run_id` (in `filters` or
/// the body); a `user_id` there must be the caller's.
fn caller_scope(
    user: &str,
    agent_id: Option<&str>,
    run_id: Option<&str>,
    filters: Option<&Value>,
) -> homi_core::Result<(Scope, Option<homi_core::Filter>)> {
    homi_core::memory::mem0::scope_and_filter(Some(user), agent_id, run_id, filters)
}

/// `POST /api/v1/memories/search`: the caller's memories closest to `query`.
#[utoipa::path(post, path = "/memories/search", tag = "Memories", request_body = SearchBody, responses((status = 200, body = SearchAnswer), (status = 401, description = "missing or invalid credentials", body = ErrorBody), (status = 403, description = "the API key lacks the scope", body = ErrorBody), (status = 422, description = "invalid input; `detail` names the field", body = ErrorBody), (status = 502, description = "the model provider failed", body = ErrorBody), (status = 503, description = "no model provider configured", body = ErrorBody), (status = 504, description = "the model provider timed out", body = ErrorBody)), security(("bearer" = []), ("api_key" = [], "user_id" = [])))]
pub async fn search_memories(
    State(s): State<AppState>,
    user: Reader,
    ApiJson(b): ApiJson<SearchBody>,
) -> ApiResult<(Extension<ProviderTime>, Json<SearchAnswer>)> {
    use homi_core::memory::mem0::within;
    if let Some(n) = b.limit {
        within("limit", n, 20)?;
    }
    if let Some(n) = b.top_k {
        within("top_k", n, 100)?;
    }
    let limit = homi_core::memory::mem0::limit(b.limit, b.top_k, 5)?;
    let (scope, filter) = caller_scope(&user.id(), None, None, b.filters.as_ref())?;
    let mut options = SearchOptions::default().limit(limit).mode(b.mode);
    if let Some(f) = filter {
        options = options.filters(f);
    }
    if let Some(t) = b.threshold {
        options = options.threshold(t);
    }
    if let Some(at) = &b.as_of {
        options = options.as_of(homi_core::memory::mem0::time_value("as_of", at)?);
    }
    let found = s.memory.search(&b.query, &scope, options).await?;
    crate::metrics::record_usage("search", &found.usage);
    Ok((
        Extension(ProviderTime(found.usage.provider_ms)),
        Json(SearchAnswer {
            memories: found.results.iter().map(|m| m.memory.clone()).collect(),
            results: found.results,
            user_id: user.id(),
            query: b.query,
        }),
    ))
}

/// `POST /api/v1/memories`: memories added for the caller, from mem0's
/// `messages` (a string, a `{role, content}` message or a list).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMemoriesBody {
    #[schema(value_type = Object)]
    messages: Value,
    /// Extract facts with the chat model (default), or store each message as it is.
    #[serde(default = "yes")]
    infer: bool,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    metadata: Option<homi_core::Metadata>,
    /// When it was said (ISO 8601 or Unix seconds).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    timestamp: Option<Value>,
    /// Narrow the caller's memories to an agent or a run.
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    run_id: Option<String>,
}

fn yes() -> bool {
    true
}

/// `POST /api/v1/memories`: adds memories for the caller; `{results, usage}`.
#[utoipa::path(post, path = "/memories", tag = "Memories", request_body = AddMemoriesBody, responses((status = 200, body = Object, description = "`{results: [{id, memory, event, …}], usage}`"), (status = 401, description = "missing or invalid credentials", body = ErrorBody), (status = 403, description = "the API key lacks the scope", body = ErrorBody), (status = 422, description = "invalid input; `detail` names the field", body = ErrorBody), (status = 502, description = "the model provider failed", body = ErrorBody), (status = 503, description = "no model provider configured", body = ErrorBody), (status = 504, description = "the model provider timed out", body = ErrorBody)), security(("bearer" = []), ("api_key" = [], "user_id" = [])))]
pub async fn add_memories(
    State(s): State<AppState>,
    user: Writer,
    ApiJson(b): ApiJson<AddMemoriesBody>,
) -> ApiResult<(Extension<ProviderTime>, Json<homi_core::AddResult>)> {
    let messages = homi_core::Messages::from_json(&b.messages)?;
    let (scope, _) = caller_scope(&user.id(), b.agent_id.as_deref(), b.run_id.as_deref(), None)?;
    let mut options = homi_core::AddOptions::default().infer(b.infer);
    if let Some(m) = b.metadata {
        options = options.metadata(m);
    }
    if let Some(at) = &b.timestamp {
        options = options.timestamp(homi_core::memory::mem0::time_value("timestamp", at)?);
    }
    let added = s.memory.add(messages, &scope, options).await?;
    crate::metrics::record_usage("add", &added.usage);
    Ok((
        Extension(ProviderTime(added.usage.provider_ms)),
        Json(added),
    ))
}

/// `GET /api/v1/memories/summary`: what Homi remembers about the caller.
#[utoipa::path(get, path = "/memories/summary", tag = "Memories", responses((status = 200, body = homi_core::chat::MemorySummary), (status = 401, description = "missing or invalid credentials", body = ErrorBody), (status = 403, description = "the API key lacks the scope", body = ErrorBody), (status = 502, description = "the model provider failed", body = ErrorBody), (status = 503, description = "no model provider configured", body = ErrorBody), (status = 504, description = "the model provider timed out", body = ErrorBody)), security(("bearer" = []), ("api_key" = [], "user_id" = [])))]
pub async fn summary(
    State(s): State<AppState>,
    user: Reader,
) -> ApiResult<Json<homi_core::chat::MemorySummary>> {
    Ok(Json(s.chat.summary(&user.id()).await?))
}

/// `DELETE /api/v1/memories`: deletes all of the caller's memories.
#[utoipa::path(delete, path = "/memories", tag = "Memories", responses((status = 200, body = Object, description = "`{deleted, message}`"), (status = 401, description = "missing or invalid credentials", body = ErrorBody), (status = 403, description = "the API key lacks the scope", body = ErrorBody)), security(("bearer" = []), ("api_key" = [], "user_id" = [])))]
pub async fn delete_memories(State(s): State<AppState>, user: Writer) -> ApiResult<Json<Value>> {
    let deleted = s.memory.delete_all(&Scope::user(user.id())).await?;
    Ok(Json(
        json!({"deleted": deleted, "message": format!("deleted {deleted} memories")}),
    ))
}

/// `?limit=`: how many of the newest (memories) or latest (messages) to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /api/v1/memories?limit=&cursor=`: a page of the caller's memories.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// At most this many (default 100).
    #[serde(default)]
    limit: Option<usize>,
    /// The `next_cursor` of the page before.
    #[serde(default)]
    cursor: Option<String>,
}

/// `GET /api/v1/sessions?limit=&offset=`: paging of the caller's conversations.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    offset: Option<usize>,
}

/// `GET /api/v1/memories`: the caller's memories, newest first, a page at a
/// time: `next_cursor` (absent on the last page) asks for the next.
#[utoipa::path(get, path = "/memories", tag = "Memories", params(PageQuery), responses((status = 200, body = Object, description = "`{results: [memory], user_id, next_cursor}`"), (status = 401, description = "missing or invalid credentials", body = ErrorBody), (status = 403, description = "the API key lacks the scope", body = ErrorBody), (status = 422, description = "invalid input; `detail` names the field", body = ErrorBody)), security(("bearer" = []), ("api_key" = [], "user_id" = [])))]
pub async fn list_memories(
    State(s): State<AppState>,
    user: Reader,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(100);
    let page = s
        .memory
        .list_page(
            &Scope::user(user.id()),
            ListOptions::default().limit(limit),
            q.cursor.as_deref(),
        )
        .await?;
    Ok(Json(json!({
        "results": page.results,
        "user_id": user.id(),
        "next_cursor": page.next_cursor,
    })))
}

/// `GET /api/v1/memories/{id}`: one of the caller's memories (404 for anyone else's).
#[utoipa::path(get, path = "/memories/{id}", tag = "Memories", params(("id" = String, Path)), responses((status = 200, body = MemoryItem), (status = 401, description = "missing or invalid credentials", body = ErrorBody), (status = 403, description = "the API key lacks the scope", body = ErrorBody), (status = 404, description = "not the caller's, or no such thing", body = ErrorBody)), security(("bearer" = []), ("api_key" = [], "user_id" = [])))]
pub async fn get_memory(
    State(s): State<AppState>,
    user: Reader,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<MemoryItem>> {
    s.memory
        .get(&id, &Scope::user(user.id()))
        .await?
        .map(Json)
        .ok_or_else(|| {
            homi_core::Error::NotFound {
                what: format!("memory {id}"),
            }
            .into()
        })
}

/// `PUT /api/v1/memories/{id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMemoryBody {
    memory: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    metadata: Option<homi_core::Metadata>,
}

/// `PUT /api/v1/memories/{id}`: replaces the text (history keeps the old one).
#[utoipa::path(put, path = "/memories/{id}", tag = "Memories", params(("id" = String, Path)), request_body = UpdateMemoryBody, responses((status = 200, body = MemoryItem), (status = 401, description = "missing or invalid credentials", body = ErrorBody), (status = 403, description = "the API key lacks the scope", body = ErrorBody), (status = 404, description = "not the caller's, or no such thing", body = ErrorBody), (status = 422, description = "invalid input; `detail` names the field", body = ErrorBody), (status = 502, description = "the model provider failed", body = ErrorBody), (status = 503, description = "no model provider configured", body = ErrorBody), (status = 504, description = "the model provider timed out", body = ErrorBody)), security(("bearer" = []), ("api_key" = [], "user_id" = [])))]
pub async fn update_memory(
    State(s): State<AppState>,
    user: Writer,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<UpdateMemoryBody>,
) -> ApiResult<Json<MemoryItem>> {
    Ok(Json(
        s.memory
            .update(&id, &Scope::user(user.id()), &b.memory, b.metadata)
            .await?,
    ))
}

/// `DELETE /api/v1/memories/{id}`: deletes one memory for good.
#[utoipa::path(delete, path = "/memories/{id}", tag = "Memories", params(("id" = String, Path)), responses((status = 200, body = Object, description = "`{message, id}`"), (status = 401, description = "missing or invalid credentials", body = ErrorBody), (status = 403, description = "the API key lacks the scope", body = ErrorBody), (status = 404, description = "not the caller's, or no such thing", body = ErrorBody)), security(("bearer" = []), ("api_key" = [], "user_id" = [])))]
pub async fn delete_memory(
    State(s): State<AppState>,
    user: Writer,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    s.memory.delete(&id, &Scope::user(user.id())).await?;
    Ok(Json(json!({"message": "memory deleted", "id": id})))
}

/// `GET /api/v1/memories/{id}/history`: the memory's changes, oldest first.
#[utoipa::path(get, path = "/memories/{id}/history", tag = "Memories", params(("id" = String, Path)), responses((status = 200, body = Vec<HistoryEntry>), (status = 401, description = "missing or invalid credentials", body = ErrorBody), (status = 403, description = "the API key lacks the scope", body = ErrorBody), (status = 404, description = "not the caller's, or no such thing", body = ErrorBody)), security(("bearer" = []), ("api_key" = [], "user_id" = [])))]
pub async fn memory_history(
    State(s): State<AppState>,
    user: Reader,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Vec<homi_core::HistoryEntry>>> {
    let entries = s.memory.history(&id, &Scope::user(user.id())).await?;
    // Every memory has at least its ADD: none means not the caller's.
    if entries.is_empty() {
        return Err(homi_core::Error::not_found(format!("memory {id}")).into());
    }
    Ok(Json(entries))
}

/// `GET /api/v1/sessions`: the caller's conversations, most recent first.
#[utoipa::path(get, path = "/sessions", tag = "Conversations", params(ListQuery), responses((status = 200, body = Vec<homi_core::chat::Conversation>, description = "most recent first"), (status = 401, description = "missing or invalid credentials", body = ErrorBody), (status = 403, description = "the API key lacks the scope", body = ErrorBody)), security(("bearer" = []), ("api_key" = [], "user_id" = [])))]
pub async fn sessions(
    State(s): State<AppState>,
    user: Reader,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<homi_core::chat::Conversation>>> {
    let limit = q.limit.unwrap_or(50).min(1000);
    Ok(Json(
        s.chat
            .conversations(&user.id(), limit, q.offset.unwrap_or(0))
            .await?,
    ))
}

/// `GET /api/v1/sessions/{id}/messages`: a conversation's last messages, oldest first.
#[utoipa::path(get, path = "/sessions/{id}/messages", tag = "Conversations", params(("id" = String, Path), LimitQuery), responses((status = 200, body = Vec<homi_core::chat::ConversationMessage>, description = "oldest first"), (status = 401, description = "missing or invalid credentials", body = ErrorBody), (status = 403, description = "the API key lacks the scope", body = ErrorBody), (status = 404, description = "not the caller's, or no such thing", body = ErrorBody)), security(("bearer" = []), ("api_key" = [], "user_id" = [])))]
pub async fn session_messages(
    State(s): State<AppState>,
    user: Reader,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> ApiResult<Json<Vec<homi_core::chat::ConversationMessage>>> {
    let limit = q.limit.unwrap_or(100).min(1000);
    Ok(Json(s.chat.messages(&user.id(), &id, limit).await?))
}

/// `DELETE /api/v1/sessions/{id}`: deletes a conversation and its messages.
#[utoipa::path(delete, path = "/sessions/{id}", tag = "Conversations", params(("id" = String, Path)), responses((status = 200, body = Object, description = "`{message, session_id}`"), (status = 401, description = "missing or invalid credentials", body = ErrorBody), (status = 403, description = "the API key lacks the scope", body = ErrorBody), (status = 404, description = "not the caller's, or no such thing", body = ErrorBody)), security(("bearer" = []), ("api_key" = [], "user_id" = [])))]
pub async fn delete_session(
    State(s): State<AppState>,
    user: Writer,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    if s.chat.delete_conversation(&user.id(), &id).await? {
        Ok(Json(
            json!({"message": "session deleted", "session_id": id}),
        ))
    } else {
        Err(homi_core::Error::NotFound {
            what: format!("session {id}"),
        }
        .into())
    }
}

// ---------------------------------------------------------------- health

/// `POST /api/v1/admin/keys` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    name: String,
    /// The namespace the key's users live in (default `default`).
    #[serde(default = "default_namespace")]
    namespace: String,
    scopes: Vec<String>,
}

fn default_namespace() -> String {
    "default".to_owned()
}

/// `POST /api/v1/admin/keys`: a new service API key; the secret is in this
/// answer only.
#[utoipa::path(post, path = "/admin/keys", tag = "Admin", request_body = NewKeyBody, responses((status = 201, body = CreatedApiKey, description = "the secret is shown this once"), (status = 401, description = "missing or invalid credentials", body = ErrorBody), (status = 403, description = "the API key lacks the scope", body = ErrorBody), (status = 422, description = "invalid input; `detail` names the field", body = ErrorBody)), security(("api_key" = [])))]
pub async fn create_key(
    State(s): State<AppState>,
    _admin: Admin,
    ApiJson(b): ApiJson<NewKeyBody>,
) -> ApiResult<(StatusCode, Json<homi_core::auth::CreatedApiKey>)> {
    let scopes = b
        .scopes
        .iter()
        .map(|x| homi_core::auth::KeyScope::parse(x))
        .collect::<homi_core::Result<Vec<_>>>()?;
    let created = s
        .auth
        .create_api_key(homi_core::auth::NewApiKey::new(b.name, b.namespace, scopes))
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /api/v1/admin/keys`: every key, without secrets.
#[utoipa::path(get, path = "/admin/keys", tag = "Admin", responses((status = 200, body = Object, description = "`{keys: [key]}` without secrets"), (status = 401, description = "missing or invalid credentials", body = ErrorBody), (status = 403, description = "the API key lacks the scope", body = ErrorBody)), security(("api_key" = [])))]
pub async fn list_keys(State(s): State<AppState>, _admin: Admin) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"keys": s.auth.list_api_keys().await?})))
}

/// `DELETE /api/v1/admin/keys/{id}`: revokes a key at once.
#[utoipa::path(delete, path = "/admin/keys/{id}", tag = "Admin", params(("id" = String, Path)), responses((status = 204), (status = 401, description = "missing or invalid credentials", body = ErrorBody), (status = 403, description = "the API key lacks the scope", body = ErrorBody), (status = 404, description = "not the caller's, or no such thing", body = ErrorBody)), security(("api_key" = [])))]
pub async fn revoke_key(
    State(s): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let id = uuid::Uuid::parse_str(&id).map_err(|_| homi_core::Error::InvalidInput {
        field: "id".into(),
        reason: format!("'{id}' is not a key id"),
    })?;
    s.auth.revoke_api_key(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /`: what this is.
#[utoipa::path(get, path = "/", tag = "Health", responses((status = 200, body = Object)))]
pub async fn root() -> Json<Value> {
    Json(json!({
        "name": "Homi",
        "version": env!("CARGO_PKG_VERSION"),
        "status": "running",
    }))
}

/// `GET /health`: liveness.
#[utoipa::path(get, path = "/health", tag = "Health", responses((status = 200, body = Object, description = "liveness")))]
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: the database answers, and whether a model provider is configured.
#[utoipa::path(get, path = "/health", tag = "Health", responses((status = 200, body = Object, description = "database and provider ready"), (status = 503, body = Object)))]
pub async fn ready(State(s): State<AppState>) -> Response {
    // The job backlog through its index: an answer from the database that
    // costs no table scan, however many jobs have finished.
    let database = s.chat.queue().backlog().await;
    let ok = database.is_ok();
    let body = json!({
        "status": if ok { "ok" } else { "unavailable" },
        "database": match &database {
            Ok(_) => "ok".to_owned(),
            Err(e) => {
                tracing::error!(error = %e, "readiness: the database does not answer");
                "unavailable".to_owned()
            }
        },
        "provider": if s.provider_configured { "configured" } else { "not configured: set OPENAI_API_KEY or OPENAI_BASE_URL" },
        "jobs": database.ok().map(|c| json!({
            "queued": c.queued,
            "retrying": c.retrying,
            "running": c.running,
        })),
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Any other path: a JSON 404.
pub async fn fallback() -> ApiError {
    ApiError::no_route()
}

/// A path the server has, with a method it does not answer there: a JSON 405.
pub async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this endpoint does not answer {method}"),
    )
}
