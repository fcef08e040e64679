//! Test doubles for Homi: a deterministic, OpenAI-compatible fake model
//! provider (this module's root), an SMTP sink ([`smtp::SmtpSink`]) and a fake
//! Supabase Auth server ([`supabase::FakeSupabase`]), each on real sockets of
//! `127.0.0.1` so the code under test goes through its real clients.
//!
//! - [`smtp`]: receives mail over plain SMTP (as `lettre` sends it) and decodes
//!   headers and quoted-printable / base64 bodies, for tests of confirmation and
//!   password-reset mails.
//! - [`hub`]: a fake Hugging Face Hub serving one model repository from a
//!   directory, for the local embedder's downloads.
//! - `db` (feature `db`): a fresh test database per test on SQLite or
//!   Postgres, and the `conformance!` macro that runs a test on each.
//! - [`supabase`]: GoTrue's REST API under `/auth/v1` (sign-up, password and
//!   refresh-token grants with reuse detection, logout, user, recover, admin
//!   delete, JWKS), signing HS256 or ES256, with switchable faults.
//!
//! [`FakeProvider`] serves `POST /v1/chat/completions` (plain, SSE streaming and
//! structured outputs), `POST /v1/embeddings` (float and base64 encodings) and
//! `GET /v1/models` over real HTTP on `127.0.0.1`, so the code under test goes
//! through its real HTTP client. Faults (500, 429 with `Retry-After`, a timeout,
//! malformed JSON, an answer of the wrong schema) and latency can be switched on
//! from Rust through the handle, or from any language through the control routes
//! under `/_fake/` (see the crate README or `homi-fake-provider --help`).
//!
//! Behaviour without a script:
//! - embeddings are a hashed bag of words (lower-cased alphanumeric words, each
//!   hashed to a signed dimension), normalised: texts that share words are close.
//! - a structured-output request whose schema is named `memory_operations`
//!   (Homi's extraction call) is answered from the JSON document in the last user
//!   message: each user message becomes one fact, `NONE` when it equals an
//!   existing memory shown to the model, `ADD` otherwise.
//! - any other chat request is answered `You said: <last user message>`, followed
//!   by `I remember: a; b` when the system prompt lists memories as `- ` bullets.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[cfg(feature = "db")]
pub mod db;
pub mod hub;
mod openai;
pub mod process;
pub mod smtp;
pub mod supabase;

pub use openai::lexical_embedding;
use openai::{azure_chat_completions, azure_embeddings, chat_completions, embeddings, models};

/// Which endpoint a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// Both.
    Any,
}

/// A fault the fake provider answers with instead of a normal response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// HTTP 500 with an OpenAI-style error body.
    ServerError,
    /// HTTP 429 with a `Retry-After` header (seconds).
    RateLimited {
        /// Value of the `Retry-After` header, in seconds.
        retry_after_secs: u64,
    },
    /// Waits this long before answering normally (longer than the client's timeout).
    Timeout {
        /// How long to wait, in milliseconds.
        delay_ms: u64,
    },
    /// HTTP 200 with a body that is not valid JSON.
    MalformedJson,
    /// HTTP 200 and the start of the answer, then nothing, with the
    /// connection left open: a chat answer stops in the middle of its JSON, a
    /// stream after its first words, an embeddings answer after its first
    /// bytes.
    Stall,
    /// HTTP 200, valid JSON, but not the shape that was asked for: a chat answer
    /// whose content does not match the requested JSON schema, or an embeddings
    /// answer without vectors.
    WrongSchema,
}

#[derive(Debug, Clone)]
struct QueuedFault {
    target: Target,
    fault: Fault,
    /// Matching requests to let through before the fault applies.
    skip: u32,
    remaining: u32,
}

/// Request counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Chat completion requests received (faulted ones included).
    pub chat_requests: u64,
    /// Embeddings requests received (faulted ones included).
    pub embedding_requests: u64,
    /// Texts embedded across all embeddings requests.
    pub embedding_inputs: u64,
}

/// One request as the fake provider received it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// The path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The JSON body.
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    replies: VecDeque<String>,
    faults: Vec<QueuedFault>,
    latency: Duration,
    chunk_delay: Duration,
    base64: Base64Support,
    log: VecDeque<RecordedRequest>,
    /// Every `.0`-th answer fails (500) and every `.1`-th stalls after its
    /// headers (0: never), counted over all requests.
    chaos: (u64, u64),
}

/// How the fake answers `encoding_format: "base64"` on embeddings requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Base64Support {
    /// Base64-encoded little-endian f32s, as OpenAI does.
    #[default]
    Yes,
    /// Ignores the field and answers float arrays (some compatible servers).
    Ignored,
    /// Refuses the field with a 400 naming it (other compatible servers).
    Refused,
}

const LOG_CAPACITY: usize = 256;

struct Shared {
    inner: Mutex<Inner>,
    chat_requests: AtomicU64,
    embedding_requests: AtomicU64,
    embedding_inputs: AtomicU64,
    /// Requests answered under chaos so far.
    chaos_seen: AtomicU64,
    default_dims: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means a handler panicked mid-update; the data is
        // plain queues, still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_fault(&self, target: Target) -> Option<Fault> {
        let mut inner = self.lock();
        let pos = inner
            .faults
            .iter()
            .position(|f| f.remaining > 0 && (f.target == target || f.target == Target::Any))?;
        let entry = &mut inner.faults[pos];
        if entry.skip > 0 {
            entry.skip -= 1;
            return None;
        }
        entry.remaining -= 1;
        let fault = entry.fault.clone();
        if entry.remaining == 0 {
            inner.faults.remove(pos);
        }
        Some(fault)
    }

    fn record(&self, path: &str, body: &Value) {
        let mut inner = self.lock();
        if inner.log.len() == LOG_CAPACITY {
            inner.log.pop_front();
        }
        inner.log.push_back(RecordedRequest {
            path: path.to_owned(),
            body: body.clone(),
        });
    }
}

/// Start options.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// Address to bind; port 0 picks a free one.
    pub addr: SocketAddr,
    /// Embedding dimension for models the fake does not know and requests
    /// without a `dimensions` field.
    pub default_dims: usize,
    /// Delay before every answer.
    pub latency: Duration,
}

impl Default for FakeOptions {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            default_dims: 1536,
            latency: Duration::ZERO,
        }
    }
}

/// A running fake provider. Dropping it stops the server.
pub struct FakeProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FakeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeProvider")
            .field("addr", &self.addr)
            .finish()
    }
}

impl FakeProvider {
    /// Starts on a free port of 127.0.0.1.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(FakeOptions::default()).await
    }

    /// Starts with options.
    pub async fn start_with(options: FakeOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(options.addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                latency: options.latency,
                chunk_delay: Duration::ZERO,
                base64: Base64Support::Yes,
                ..Inner::default()
            }),
            chat_requests: AtomicU64::new(0),
            embedding_requests: AtomicU64::new(0),
            embedding_inputs: AtomicU64::new(0),
            chaos_seen: AtomicU64::new(0),
            default_dims: options.default_dims,
        });
        let app = router(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            // Small JSON exchanges over keep-alive stall on Nagle + delayed ACK.
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            shared,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to give an OpenAI client, ending in `/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues the content of the next chat completion (first in, first out).
    pub fn push_reply(&self, content: impl Into<String>) {
        self.shared.lock().replies.push_back(content.into());
    }

    /// Queues a fault for the next `times` requests to `target`.
    pub fn push_fault(&self, target: Target, fault: Fault, times: u32) {
        self.push_fault_after(target, fault, times, 0);
    }

    /// Lets the next `after` requests to `target` through, then answers the
    /// `times` following ones with `fault`.
    pub fn push_fault_after(&self, target: Target, fault: Fault, times: u32, after: u32) {
        self.shared.lock().faults.push(QueuedFault {
            target,
            fault,
            skip: after,
            remaining: times,
        });
    }

    /// Fails every `fail_every`-th request with a 500 and stalls every
    /// `stall_every`-th after its headers ([`Fault::Stall`]), counted over
    /// chat and embeddings requests together (0: never): a provider with a
    /// steady share of trouble, for soak runs.
    pub fn set_chaos(&self, fail_every: u64, stall_every: u64) {
        self.shared.lock().chaos = (fail_every, stall_every);
    }

    /// Sets the delay before every answer.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// Sets the pause before each event of a streamed chat answer.
    pub fn set_chunk_delay(&self, delay: Duration) {
        self.shared.lock().chunk_delay = delay;
    }

    /// Sets how base64-encoded embeddings are answered.
    pub fn set_base64(&self, support: Base64Support) {
        self.shared.lock().base64 = support;
    }

    /// Request counters.
    pub fn stats(&self) -> Stats {
        stats(&self.shared)
    }

    /// The most recent requests (up to 256), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().log.iter().cloned().collect()
    }

    /// Clears scripts, faults, latency, counters and the request log.
    pub fn reset(&self) {
        reset(&self.shared);
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn stats(shared: &Shared) -> Stats {
    Stats {
        chat_requests: shared.chat_requests.load(Ordering::Relaxed),
        embedding_requests: shared.embedding_requests.load(Ordering::Relaxed),
        embedding_inputs: shared.embedding_inputs.load(Ordering::Relaxed),
    }
}

fn reset(shared: &Shared) {
    *shared.lock() = Inner::default();
    shared.chat_requests.store(0, Ordering::Relaxed);
    shared.embedding_requests.store(0, Ordering::Relaxed);
    shared.embedding_inputs.store(0, Ordering::Relaxed);
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(azure_chat_completions),
        )
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(azure_embeddings),
        )
        .route("/_fake/replies", post(control_replies))
        .route("/_fake/faults", post(control_faults))
        .route("/_fake/latency", post(control_latency))
        .route("/_fake/stats", get(control_stats))
        .route("/_fake/requests", get(control_requests))
        .route("/_fake/reset", post(control_reset))
        .with_state(shared)
}

// ---------------------------------------------------------------- control API

#[derive(Deserialize)]
#[serde(untagged)]
enum RepliesBody {
    One { content: String },
    Many { contents: Vec<String> },
}

async fn control_replies(
    State(s): State<Arc<Shared>>,
    Json(body): Json<RepliesBody>,
) -> StatusCode {
    let mut inner = s.lock();
    match body {
        RepliesBody::One { content } => inner.replies.push_back(content),
        RepliesBody::Many { contents } => inner.replies.extend(contents),
    }
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct FaultBody {
    target: Target,
    fault: Fault,
    #[serde(default = "one")]
    times: u32,
    #[serde(default)]
    after: u32,
}

fn one() -> u32 {
    1
}

async fn control_faults(State(s): State<Arc<Shared>>, Json(body): Json<FaultBody>) -> StatusCode {
    s.lock().faults.push(QueuedFault {
        target: body.target,
        fault: body.fault,
        skip: body.after,
        remaining: body.times,
    });
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct LatencyBody {
    ms: u64,
}

async fn control_latency(
    State(s): State<Arc<Shared>>,
    Json(body): Json<LatencyBody>,
) -> StatusCode {
    s.lock().latency = Duration::from_millis(body.ms);
    StatusCode::NO_CONTENT
}

async fn control_stats(State(s): State<Arc<Shared>>) -> Json<Stats> {
    Json(stats(&s))
}

async fn control_requests(State(s): State<Arc<Shared>>) -> Json<Vec<RecordedRequest>> {
    Json(s.lock().log.iter().cloned().collect())
}

async fn control_reset(State(s): State<Arc<Shared>>) -> StatusCode {
    reset(&s);
    StatusCode::NO_CONTENT
}
