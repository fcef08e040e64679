//! Homi's REST server: every endpoint of the original FastAPI backend (auth,
//! memory-augmented chat, memories, health) over `homi-core`.
//!
//! [`app`] builds the router from an [`AppState`], so tests drive it over a
//! real socket (or with `tower::ServiceExt::oneshot`); `main.rs` reads the
//! configuration, opens the state, runs the extraction worker and serves.
//! Routes are thin: they parse, call one core function and render; errors are
//! mapped once, in [`error::ApiError`].

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use homi_core::auth::Auth;
use homi_core::chat::Chat;
use homi_core::{Config, Memory};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub mod error;
pub mod extract;
pub mod openai;
pub mod routes;

/// Largest request body accepted (a chat message is at most 2,000 characters).
pub const BODY_LIMIT: usize = 64 * 1024;

/// What the routes share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Accounts and tokens.
    pub auth: Auth,
    /// Memories.
    pub memory: Memory,
    /// Turns, conversations and the extraction queue.
    pub chat: Chat,
    /// Whether a model provider is configured (for readiness).
    pub provider_configured: bool,
}

impl AppState {
    /// Opens everything the configuration names, on one store.
    pub async fn open(config: &Config) -> homi_core::Result<Self> {
        let stores = homi_core::store::open_stores(config).await?;
        let memory = Memory::with_store(config, stores.memory).await?;
        let chat = Chat::with_memory(config, memory.clone())?;
        let auth = Auth::with_store(config, stores.auth).await?;
        Ok(Self {
            auth,
            memory,
            chat,
            provider_configured: config.provider.is_configured(),
        })
    }
}

/// The router with every route and the middleware.
pub fn app(state: AppState) -> Router {
    use routes::*;
    let x_request_id = axum::http::HeaderName::from_static("x-request-id");
    let api = Router::new()
        .route("/auth/signup", post(signup))
        .route("/auth/signin", post(signin))
        .route("/auth/signout", post(signout))
        .route("/auth/refresh", post(refresh))
        .route("/auth/me", get(me).put(update_me))
        .route("/auth/change-password", post(change_password))
        .route("/auth/reset-password", post(reset_password))
        .route("/auth/reset-password/confirm", post(confirm_reset))
        .route("/auth/confirm", get(confirm_email))
        .route("/auth/health", get(auth_health))
        .route("/chat", post(chat))
        .route("/chat/stream", post(chat_stream))
        .route("/memories/search", post(search_memories))
        .route("/memories/summary", get(summary))
        .route("/memories", get(list_memories).delete(delete_memories))
        .route(
            "/memories/{id}",
            get(get_memory).put(update_memory).delete(delete_memory),
        )
        .route("/memories/{id}/history", get(memory_history))
        .route("/sessions", get(sessions))
        .route("/sessions/{id}", axum::routing::delete(delete_session))
        .route("/sessions/{id}/messages", get(session_messages))
        .route("/health", get(ready));
    Router::new()
        .route("/", get(root))
        .route("/health", get(health))
        .nest("/api/v1", api)
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/models", get(openai::models))
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
        .with_state(state)
}

/// How long a graceful shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
