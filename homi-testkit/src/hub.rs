//! A fake Hugging Face Hub: serves the files of one directory as the files of
//! a model repository, the way `hf-hub` downloads them
//! (`GET {endpoint}/{repo_id}/resolve/{revision}/{file}`, with `Range`
//! requests, `ETag` and `X-Repo-Commit` headers), on `127.0.0.1`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let hub = homi_testkit::hub::FakeHub::start("sentence-transformers/all-MiniLM-L6-v2", "/models/minilm").await?;
//! // HF_ENDPOINT=hub.endpoint()
//! assert!(hub.endpoint().starts_with("http://127.0.0.1:"));
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The commit every file is served at.
pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

struct Shared {
    repo_id: String,
    dir: PathBuf,
    requests: AtomicU64,
}

/// A running fake hub. Dropping it stops the server.
pub struct FakeHub {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FakeHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeHub").field("addr", &self.addr).finish()
    }
}

impl FakeHub {
    /// Serves the files under `dir` as the repository `repo_id`, on a free
    /// port of 127.0.0.1.
    pub async fn start(repo_id: &str, dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            repo_id: repo_id.to_owned(),
            dir: dir.into(),
            requests: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/{*path}", get(serve))
            .with_state(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
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

    /// The endpoint to give the client (`HF_ENDPOINT`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests were answered.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
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

impl Drop for FakeHub {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// `bytes=a-b` (either end may be missing), clamped to `len`.
fn range(headers: &HeaderMap, len: u64) -> Option<(u64, u64)> {
    let spec = headers
        .get(header::RANGE)?
        .to_str()
        .ok()?
        .strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let last = len.checked_sub(1)?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", b) => (len.saturating_sub(b.parse().ok()?), last),
        (a, "") => (a.parse().ok()?, last),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.min(last)),
    };
    (start <= end).then_some((start, end))
}

async fn serve(
    State(s): State<Arc<Shared>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    s.requests.fetch_add(1, Ordering::Relaxed);
    let Some(rest) = path.strip_prefix(&format!("{}/resolve/", s.repo_id)) else {
        return (StatusCode::NOT_FOUND, "Repository not found").into_response();
    };
    let Some((_revision, file)) = rest.split_once('/') else {
        return (StatusCode::NOT_FOUND, "Entry not found").into_response();
    };
    if file.split('/').any(|part| part == ".." || part.is_empty()) {
        return (StatusCode::BAD_REQUEST, "bad path").into_response();
    }
    let Ok(bytes) = tokio::fs::read(s.dir.join(file)).await else {
        return (StatusCode::NOT_FOUND, "Entry not found").into_response();
    };
    let len = bytes.len() as u64;
    let etag = format!(
        "\"{:016x}-{len}\"",
        file.bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b))
                .wrapping_mul(0x0100_0000_01b3))
    );
    let mut out = HeaderMap::new();
    let set = |out: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.insert(name, v);
        }
    };
    set(&mut out, "etag", &etag);
    set(&mut out, "x-repo-commit", COMMIT);
    set(&mut out, "accept-ranges", "bytes");
    match range(&headers, len) {
        Some((start, end)) => {
            set(
                &mut out,
                "content-range",
                &format!("bytes {start}-{end}/{len}"),
            );
            let body = bytes[start as usize..=end as usize].to_vec();
            (StatusCode::PARTIAL_CONTENT, out, body).into_response()
        }
        None => (StatusCode::OK, out, bytes).into_response(),
    }
}
