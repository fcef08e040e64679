//! Prometheus metrics at `GET /metrics`: requests and their latency per route
//! and status, extraction jobs per state, provider errors, and model calls and
//! tokens per operation.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use homi_core::Usage;
use homi_core::provider::TokenUsage;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::ApiError;

/// Whether the request's `Authorization` is `Bearer <token>`, compared in
/// constant time.
fn bearer_is(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| bool::from(given.trim().as_bytes().ct_eq(token.as_bytes())))
}

/// The process-wide recorder (installed once; every server of the process shares it).
fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".into()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0, 30.0,
                    ],
                )
                .ok()?;
            match builder.install_recorder() {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "no metrics recorder (another one is installed)");
                    None
                }
            }
        })
        .as_ref()
}

/// Installs the recorder (call before serving).
pub fn install() {
    let _ = handle();
}

/// Milliseconds a handler spent waiting for the model provider, set as a
/// response extension: [`track`] then reports the server's own time apart.
#[derive(Debug, Clone, Copy)]
pub struct ProviderTime(pub f64);

/// Counts a request and its latency under its route's pattern. Responses
/// that waited for the provider get a `Server-Timing` header
/// (`total;dur=…, provider;dur=…`, milliseconds) and their own time (the
/// total less the provider's) in `homi_http_request_own_seconds`.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let mut response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    if let Some(ProviderTime(provider_ms)) = response.extensions().get::<ProviderTime>().copied() {
        let total_ms = start.elapsed().as_secs_f64() * 1000.0;
        if let Ok(value) = header::HeaderValue::from_str(&format!(
            "total;dur={total_ms:.3}, provider;dur={provider_ms:.3}"
        )) {
            response.headers_mut().insert("server-timing", value);
        }
        metrics::histogram!("homi_http_request_own_seconds", "route" => route.clone())
            .record(((total_ms - provider_ms) / 1000.0).max(0.0));
    }
    metrics::counter!("homi_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("homi_http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    response
}

/// Model calls and tokens of an operation (`chat`, `search`).
pub fn record_chat(operation: &'static str, usage: &TokenUsage) {
    metrics::counter!("homi_model_calls_total", "operation" => operation, "model" => "chat")
        .increment(1);
    metrics::counter!("homi_model_tokens_total", "operation" => operation, "kind" => "prompt")
        .increment(usage.prompt_tokens);
    metrics::counter!("homi_model_tokens_total", "operation" => operation, "kind" => "completion")
        .increment(usage.completion_tokens);
}

/// A job a worker ran: its outcome, and its model calls and tokens (under
/// the operation `extraction`).
pub fn record_job(run: &homi_core::jobs::JobRun) {
    let outcome = match run.outcome {
        homi_core::jobs::JobOutcome::Done => "done",
        homi_core::jobs::JobOutcome::Retry { .. } => "retry",
        homi_core::jobs::JobOutcome::Dead { .. } => "dead",
        homi_core::jobs::JobOutcome::LeaseLost => "lease_lost",
    };
    metrics::counter!("homi_jobs_run_total", "outcome" => outcome).increment(1);
    record_usage("extraction", &run.usage);
}

/// Model calls and tokens of a memory operation.
pub fn record_usage(operation: &'static str, usage: &Usage) {
    metrics::counter!("homi_model_calls_total", "operation" => operation, "model" => "chat")
        .increment(u64::from(usage.chat_calls));
    metrics::counter!("homi_model_calls_total", "operation" => operation, "model" => "embeddings")
        .increment(u64::from(usage.embedding_calls));
    metrics::counter!("homi_model_tokens_total", "operation" => operation, "kind" => "prompt")
        .increment(usage.prompt_tokens);
    metrics::counter!("homi_model_tokens_total", "operation" => operation, "kind" => "completion")
        .increment(usage.completion_tokens);
    metrics::counter!("homi_model_tokens_total", "operation" => operation, "kind" => "embedding")
        .increment(usage.embedding_tokens);
}

/// A provider error answered to a client.
pub fn record_provider_error(code: &'static str) {
    metrics::counter!("homi_provider_errors_total", "error" => code).increment(1);
}

/// `GET /metrics`: the Prometheus text format.
pub async fn render(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &s.metrics_token
        && !bearer_is(&headers, token.expose_secret())
    {
        return ApiError::unauthorized(
            "the metrics need `Authorization: Bearer <HOMI_METRICS_TOKEN>`",
        )
        .into_response();
    }
    let Some(handle) = handle() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not recorded in this process",
        )
            .into_response();
    };
    // The backlog only (an index read): finished jobs are counted as they
    // finish, in `homi_jobs_run_total`.
    match s.chat.queue().backlog().await {
        Ok(c) => {
            for (state, n) in [
                ("queued", c.queued),
                ("retrying", c.retrying),
                ("running", c.running),
            ] {
                metrics::gauge!("homi_jobs", "state" => state).set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: job counts unavailable"),
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}
