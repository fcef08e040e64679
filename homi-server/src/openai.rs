//! The OpenAI-compatible door: `POST /v1/chat/completions` (plain and
//! `stream: true`) and `GET /v1/models`, so any OpenAI SDK pointed at Homi
//! gets memory. The API key is a Homi access token, or a service API key with
//! the user in `X-User-Id`; that user's memories are injected, and the turn
//! is stored and extracted like `/api/v1/chat`.

use std::convert::Infallible;

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::StreamExt;
use homi_core::chat::ChatEvent;
use homi_core::provider::{ChatMessage, Role};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller, caller};
use crate::metrics::ProviderTime;
use homi_core::auth::KeyScope;

/// An error in the OpenAI API's shape.
#[derive(Debug)]
pub struct OpenAiError(ApiError);

impl<E: Into<ApiError>> From<E> for OpenAiError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let mut response = (status, Json(self.0.openai_body())).into_response();
        // Keep WWW-Authenticate / Retry-After from the usual answer.
        let usual = self.0.into_response();
        for name in ["www-authenticate", "retry-after"] {
            if let Some(v) = usual.headers().get(name) {
                response.headers_mut().insert(name, v.clone());
            }
        }
        response
    }
}

/// The caller, with errors in the OpenAI shape: a user's access token as
/// the API key, or a service API key (as the SDK's key, or in `X-API-Key`)
/// with the user it acts for in `X-User-Id`; a turn is a write.
pub struct OpenAiUser(Caller);

impl axum::extract::FromRequestParts<AppState> for OpenAiUser {
    type Rejection = OpenAiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(caller(parts, state, KeyScope::Write).await?))
    }
}

/// [`OpenAiUser`] for reading (`GET /v1/models`): only checked.
pub struct OpenAiReader;

impl axum::extract::FromRequestParts<AppState> for OpenAiReader {
    type Rejection = OpenAiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        caller(parts, state, KeyScope::Read).await?;
        Ok(Self)
    }
}

/// A JSON body, with errors in the OpenAI shape.
pub struct OpenAiJson<T>(T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for OpenAiJson<T> {
    type Rejection = OpenAiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ApiJson(v) = ApiJson::<T>::from_request(req, state).await?;
        Ok(Self(v))
    }
}

/// `POST /v1/chat/completions` (the fields Homi uses; others are ignored, as
/// OpenAI-compatible servers do).
#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<Value>,
    #[serde(default)]
    stream: bool,
}

/// The request's messages. A tool's result (`role: "tool"`, or the older
/// `"function"`) and an assistant's tool calls go to the model as they came
/// (never stored or extracted); text parts of a content list count, other
/// parts (images) are left out.
fn to_messages(input: Vec<Value>) -> Result<Vec<ChatMessage>, ApiError> {
    input
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let field = |f: &str| format!("messages[{i}]{f}");
            let role = m.get("role").and_then(Value::as_str).ok_or_else(|| {
                homi_core::Error::invalid(
                    field(".role"),
                    "is required (system, developer, user, assistant, tool)",
                )
            })?;
            let content = match m.get("content") {
                Some(Value::String(t)) => t.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n"),
                None | Some(Value::Null) => String::new(),
                Some(_) => {
                    return Err(homi_core::Error::invalid(
                        field(".content"),
                        "must be a string or a list of content parts",
                    )
                    .into());
                }
            };
            let tool_calls = m.get("tool_calls").is_some_and(|c| !c.is_null())
                || m.get("function_call").is_some_and(|c| !c.is_null());
            let (role, raw) = match role {
                "system" | "developer" => (Role::System, None),
                "user" => (Role::User, None),
                "assistant" if tool_calls => (Role::Assistant, Some(m.clone())),
                "assistant" => (Role::Assistant, None),
                "tool" | "function" => (Role::User, Some(m.clone())),
                other => {
                    return Err(homi_core::Error::invalid(
                        field(".role"),
                        format!(
                            "'{other}' is not supported (system, developer, user, assistant, tool)"
                        ),
                    )
                    .into());
                }
            };
            Ok(ChatMessage { role, content, raw })
        })
        .collect()
}

/// The conversation to store the turn in: header `X-Homi-Session-Id`, if sent.
fn session(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-homi-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `POST /v1/chat/completions`.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "OpenAI-compatible",
    request_body(content = Object, description = "An OpenAI chat completion request (`model`, `messages`, `stream`)"),
    responses(
        (status = 200, body = Object, description = "A `chat.completion`, or `chat.completion.chunk` events ending with `data: [DONE]` when `stream` is true"),
        (status = 401, body = Object, description = "OpenAI-shaped error: missing or invalid access token")
    ),
    security(("bearer" = [])))]
pub async fn chat_completions(
    State(s): State<AppState>,
    OpenAiUser(user): OpenAiUser,
    headers: HeaderMap,
    OpenAiJson(req): OpenAiJson<CompletionRequest>,
) -> Result<Response, OpenAiError> {
    let messages = to_messages(req.messages)?;
    let session = session(&headers);
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = chrono::Utc::now().timestamp();
    if !req.stream {
        let turn = s
            .chat
            .turn_with_messages(&user.id(), messages, session.as_deref())
            .await?;
        crate::metrics::record_chat("chat_completions", &turn.usage);
        let u = turn.usage;
        let waited = Extension(ProviderTime(turn.provider_ms));
        return Ok((
            waited,
            Json(json!({
                "id": id,
                "object": "chat.completion",
                "created": created,
                "model": turn.model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": turn.response},
                    "finish_reason": "stop",
                    "logprobs": null,
                }],
                "usage": {
                    "prompt_tokens": u.prompt_tokens,
                    "completion_tokens": u.completion_tokens,
                    "total_tokens": u.prompt_tokens + u.completion_tokens,
                },
                "homi": {"session_id": turn.session_id, "memories_used": turn.memories_used},
            })),
        )
            .into_response());
    }
    let model = s
        .chat
        .model_name()
        .map(str::to_owned)
        .or(req.model)
        .unwrap_or_default();
    let events = s
        .chat
        .stream_with_messages(&user.id(), messages, session.as_deref())
        .await?;
    let chunk = move |delta: Value, finish: Option<&str>| {
        json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
        })
        .to_string()
    };
    let stream = events.flat_map(move |ev| {
        let out: Vec<String> = match ev {
            Ok(ChatEvent::Memories { .. }) => {
                vec![chunk(json!({"role": "assistant", "content": ""}), None)]
            }
            Ok(ChatEvent::Delta { content }) => vec![chunk(json!({"content": content}), None)],
            Ok(ChatEvent::Done(turn)) => {
                crate::metrics::record_chat("chat_completions", &turn.usage);
                vec![chunk(json!({}), Some("stop")), "[DONE]".to_owned()]
            }
            Err(e) => vec![
                ApiError::from(e).openai_body().to_string(),
                "[DONE]".to_owned(),
            ],
        };
        futures::stream::iter(
            out.into_iter()
                .map(|data| Ok::<_, Infallible>(Event::default().data(data))),
        )
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// `GET /v1/models`: the chat model Homi answers with.
#[utoipa::path(get, path = "/v1/models", tag = "OpenAI-compatible",
    responses((status = 200, body = Object, description = "The chat model Homi answers with")))]
pub async fn models(State(s): State<AppState>, _: OpenAiReader) -> Result<Response, OpenAiError> {
    let data: Vec<Value> = s
        .chat
        .model_name()
        .map(|m| json!({"id": m, "object": "model", "created": 0, "owned_by": "homi"}))
        .into_iter()
        .collect();
    Ok((
        StatusCode::OK,
        Json(json!({"object": "list", "data": data})),
    )
        .into_response())
}
