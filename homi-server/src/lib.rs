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
use axum::routing::get;
use homi_core::auth::Auth;
use homi_core::chat::Chat;
use homi_core::{Config, Memory};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod client;
pub mod error;
pub mod extract;
pub mod mcp;
pub mod metrics;
pub mod openai;
pub mod openapi;
pub mod routes;
pub mod serve;

/// Largest request body accepted (a chat message is at most 2,000 characters).
pub const BODY_LIMIT: usize = 64 * 1024;

/// Largest body `POST /v1/chat/completions` accepts: OpenAI clients send the
/// whole conversation with every turn.
pub const OPENAI_BODY_LIMIT: usize = 4 * 1024 * 1024;

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
    /// Requests per minute one IP address may send to the unauthenticated
    /// auth routes (0: unlimited).
    pub auth_rate_limit_per_minute: u32,
    /// Origins allowed by CORS (`*` for any); none by default.
    pub cors_origins: Vec<String>,
    /// How long a request may take until its answer starts.
    pub request_timeout: Duration,
    /// The bearer token `GET /metrics` requires, if any.
    pub metrics_token: Option<secrecy::SecretString>,
    /// The reverse proxies whose forwarded client addresses are believed.
    pub trusted_proxies: std::sync::Arc<[ipnet::IpNet]>,
}

impl AppState {
    /// Opens everything the configuration names, on one store.
    pub async fn open(config: &Config) -> homi_core::Result<Self> {
        let homi = homi_core::Homi::open(config).await?;
        homi.jobs.observe(std::sync::Arc::new(metrics::record_job));
        Ok(Self {
            auth: homi.auth,
            memory: homi.memory,
            chat: homi.chat,
            provider_configured: config.provider.is_configured(),
            auth_rate_limit_per_minute: config.server.auth_rate_limit_per_minute,
            cors_origins: config.server.cors_origins.clone(),
            request_timeout: config.server.request_timeout,
            metrics_token: config.server.metrics_token.clone(),
            trusted_proxies: config.server.trusted_proxies.clone().into(),
        })
    }
}

/// The router with every route and the middleware. Serve it with
/// [`serve::serve_on`] (or `into_make_service_with_connect_info::<SocketAddr>()`):
/// the auth routes' rate limit and sign-in failures count the client's
/// address ([`client`]).
pub fn app(state: AppState) -> Router {
    use routes::*;
    metrics::install();
    let x_request_id = axum::http::HeaderName::from_static("x-request-id");
    // Unauthenticated auth routes: rate limited per client network.
    let mut open_auth = OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(signin))
        .routes(routes!(refresh))
        .routes(routes!(reset_password))
        .routes(routes!(confirm_reset))
        .routes(routes!(confirm_email));
    if let Some(limit) = rate_limit(state.auth_rate_limit_per_minute) {
        open_auth = open_auth.layer(limit);
    }
    let api = OpenApiRouter::new()
        .merge(open_auth)
        .routes(routes!(signout))
        .routes(routes!(me, update_me))
        .routes(routes!(change_password))
        .routes(routes!(auth_health))
        .routes(routes!(chat))
        .routes(routes!(chat_stream))
        .routes(routes!(search_memories))
        .routes(routes!(summary))
        .routes(routes!(list_memories, add_memories, delete_memories))
        .routes(routes!(get_memory, update_memory, delete_memory))
        .routes(routes!(memory_history))
        .routes(routes!(sessions))
        .routes(routes!(delete_session))
        .routes(routes!(session_messages))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
        .routes(routes!(ready));
    let (router, doc) =
        OpenApiRouter::with_openapi(<openapi::ApiDoc as utoipa::OpenApi>::openapi())
            .routes(routes!(root))
            .routes(routes!(health))
            .nest("/api/v1", api)
            .merge(
                OpenApiRouter::new()
                    .routes(routes!(openai::chat_completions))
                    .routes(routes!(openai::models))
                    // OpenAI clients resend the whole conversation each turn.
                    .layer(DefaultBodyLimit::max(OPENAI_BODY_LIMIT)),
            )
            .split_for_parts();
    let doc = std::sync::Arc::new(doc);
    let cors = cors(&state.cors_origins);
    let mut router = router
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc) }
            }),
        )
        .route("/metrics", get(metrics::render))
        .merge(mcp_routes(&state))
        .route_layer(axum::middleware::from_fn_with_state(
            state.request_timeout,
            time_limit,
        ))
        .route_layer(axum::middleware::from_fn(metrics::track))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.trusted_proxies.clone(),
            client::identify,
        ))
        .layer(
            // One INFO span per request, with the request id and the path
            // (never the query string: confirmation links carry tokens).
            TraceLayer::new_for_http()
                .make_span_with(|req: &axum::http::Request<axum::body::Body>| {
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                        request_id = %id,
                    )
                })
                .on_response(
                    tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO),
                ),
        )
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid));
    if let Some(cors) = cors {
        router = router.layer(cors);
    }
    router.with_state(state)
}

/// `/mcp`: the MCP door over streamable HTTP, stateless (any server process
/// answers any request), each request authenticated like the REST API.
fn mcp_routes(state: &AppState) -> Router<AppState> {
    use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };
    let (memory, chat) = (state.memory.clone(), state.chat.clone());
    // Every request carries credentials, so the loopback-only Host check
    // (against DNS rebinding of unauthenticated local servers) is not needed
    // and would refuse a server's real host names.
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .disable_allowed_hosts();
    let service = StreamableHttpService::new(
        move || {
            Ok(mcp::HomiMcp::new(
                memory.clone(),
                Some(chat.clone()),
                mcp::Identity::Http,
            ))
        },
        std::sync::Arc::new(NeverSessionManager::default()),
        config,
    );
    Router::new()
        .route_service("/mcp", service)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            mcp_caller,
        ))
}

/// Authenticates a request to `/mcp` as the REST API does (a user's access
/// token, or a service key with the user header): 401 with
/// `WWW-Authenticate` without valid credentials. The caller goes into the
/// request's extensions for the tools.
async fn mcp_caller(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (mut parts, body) = request.into_parts();
    let caller = match extract::caller(&parts, &state, homi_core::auth::KeyScope::Read).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let can_write = caller
        .service
        .as_ref()
        .is_none_or(|s| s.require(homi_core::auth::KeyScope::Write).is_ok());
    parts.extensions.insert(mcp::McpCaller {
        user_id: caller.id(),
        can_write,
    });
    // Read here, so that a body the client stops sending is a 408 (rmcp
    // answers any failed read with a 500).
    let body = match axum::body::to_bytes(body, MCP_BODY_LIMIT).await {
        Ok(bytes) => axum::body::Body::from(bytes),
        Err(e) => return error::ApiError::unreadable_body(&e, MCP_BODY_LIMIT).into_response(),
    };
    next.run(axum::extract::Request::from_parts(parts, body))
        .await
}

/// The largest request `/mcp` reads (rmcp's own limit).
const MCP_BODY_LIMIT: usize = 4 * 1024 * 1024;

type RateLimit = tower_governor::GovernorLayer<
    client::ClientNetworkKey,
    governor::middleware::NoOpMiddleware<governor::clock::QuantaInstant>,
    axum::body::Body,
>;

/// `per_minute` requests a minute per client network (a burst of as many),
/// answered beyond that with a JSON 429 and `Retry-After`. Networks whose
/// allowance is whole again are forgotten every [`RATE_LIMIT_PRUNE`].
fn rate_limit(per_minute: u32) -> Option<RateLimit> {
    if per_minute == 0 {
        return None;
    }
    let config = tower_governor::governor::GovernorConfigBuilder::default()
        .key_extractor(client::ClientNetworkKey)
        .per_millisecond(u64::from((60_000 / per_minute).max(1)))
        .burst_size(per_minute)
        .finish()?;
    let limiter = std::sync::Arc::downgrade(config.limiter());
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let mut every = tokio::time::interval(RATE_LIMIT_PRUNE);
            every.tick().await;
            loop {
                every.tick().await;
                // The router (and its limiter) is gone: so is this task.
                let Some(limiter) = limiter.upgrade() else {
                    return;
                };
                prune(&limiter);
            }
        });
    }
    Some(
        tower_governor::GovernorLayer::new(config).error_handler(|e| {
            use axum::response::IntoResponse;
            match e {
                tower_governor::GovernorError::TooManyRequests { wait_time, .. } => {
                    error::ApiError::from(homi_core::Error::RateLimited {
                        message: "too many requests to the auth routes from this address".into(),
                        retry_after: Duration::from_secs(wait_time.max(1)),
                    })
                    .into_response()
                }
                other => {
                    tracing::error!(error = %other, "rate limiting failed");
                    error::ApiError::new(
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "the server failed; the cause is in its log",
                    )
                    .into_response()
                }
            }
        }),
    )
}

/// How often the auth routes' rate limiter forgets idle networks.
const RATE_LIMIT_PRUNE: Duration = Duration::from_secs(60);

/// Forgets the networks whose allowance is whole again, so that the map
/// holds only the networks of the last minute, however many have called.
fn prune<K: std::hash::Hash + Eq + Clone, M>(
    limiter: &governor::RateLimiter<
        K,
        governor::state::keyed::DefaultKeyedStateStore<K>,
        governor::clock::QuantaClock,
        M,
    >,
) where
    M: governor::middleware::RateLimitingMiddleware<governor::clock::QuantaInstant>,
{
    limiter.retain_recent();
    limiter.shrink_to_fit();
    ::metrics::gauge!("homi_auth_rate_limit_networks").set(limiter.len() as f64);
}

/// CORS for the configured origins (`*` allows any), none when there are none.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, Any, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new().allow_methods(Any).allow_headers(Any);
    if origins.iter().any(|o| o == "*") {
        return Some(layer.allow_origin(Any));
    }
    let values: Vec<axum::http::HeaderValue> = origins
        .iter()
        .filter_map(|o| axum::http::HeaderValue::from_str(o).ok())
        .collect();
    Some(layer.allow_origin(AllowOrigin::list(values)))
}

/// Answers 504 when a handler has not produced its answer within `limit`.
/// Only the start of the answer is timed: a server-sent event stream, once
/// started, runs to its end.
async fn time_limit(
    axum::extract::State(limit): axum::extract::State<Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => error::ApiError::new(
            axum::http::StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!(
                "the request did not finish within {} s (HOMI_REQUEST_TIMEOUT_SECS)",
                limit.as_secs()
            ),
        )
        .into_response(),
    }
}

/// How long a graceful shutdown waits for requests in flight (and then for
/// the extraction jobs running in this process).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pruning_forgets_networks_whose_allowance_is_whole_again() {
        let config = tower_governor::governor::GovernorConfigBuilder::default()
            .key_extractor(client::ClientNetworkKey)
            .per_millisecond(1)
            .burst_size(1)
            .finish()
            .unwrap();
        let limiter = config.limiter();
        for n in 0..200u32 {
            let net = homi_core::auth::client_network(std::net::Ipv4Addr::from(n).into());
            assert!(limiter.check_key(&net).is_ok());
        }
        assert_eq!(limiter.len(), 200);
        std::thread::sleep(Duration::from_millis(20));
        prune(limiter);
        assert_eq!(limiter.len(), 0);
    }
}
