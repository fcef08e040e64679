//! The connection loop: hyper's HTTP/1 connections with a timer, so a client
//! cannot hold the server with a slow request line, a slow body, idle
//! keep-alive connections or sheer numbers of them.
//!
//! - **Connections are capped** (`HOMI_MAX_CONNECTIONS`): at the cap the
//!   server stops accepting, and new connections wait in the listen queue
//!   until one closes.
//! - **A request's head** (line and headers) must arrive within
//!   `HOMI_HEADER_TIMEOUT_SECS` of its first byte (of the connection's start,
//!   for its first request).
//! - **An idle connection** (no request on it, no byte of the next one) is
//!   closed after `HOMI_KEEP_ALIVE_SECS`.
//! - **A request's body** must arrive within `HOMI_BODY_TIMEOUT_SECS` of its
//!   head: the reader is answered 408.
//!
//! A request being answered (a chat turn waiting for the model, a server-sent
//! event stream) is never cut by these: the request time limit and the
//! provider's deadlines bound it.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The router, with the connection's peer address added to each request.
type Service = axum::middleware::AddExtension<Router, axum::extract::ConnectInfo<SocketAddr>>;

/// What one client may take of the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request's head, from its first byte.
    pub header: Duration,
    /// A connection with no request on it.
    pub keep_alive: Duration,
    /// A request's body, from its head.
    pub body: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Limits {
    /// The limits the configuration sets.
    pub fn from_config(config: &homi_core::Config) -> Self {
        let s = &config.server;
        Self {
            header: s.header_timeout,
            keep_alive: s.keep_alive_timeout,
            body: s.body_timeout,
            max_connections: s.max_connections.max(1),
        }
    }
}

/// A request body that did not arrive within `HOMI_BODY_TIMEOUT_SECS`.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimedOut(pub Duration);

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body did not arrive within {} s (HOMI_BODY_TIMEOUT_SECS)",
            self.0.as_secs()
        )
    }
}

impl std::error::Error for BodyTimedOut {}

/// Serves `router` on `listener` within `limits` until `shutdown` completes;
/// then stops accepting, lets every connection finish the request it is
/// answering, and returns when all are closed. Each request carries its
/// peer's address as `ConnectInfo<SocketAddr>`.
pub async fn serve_on(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopping) = watch::channel(false);
    let mut make = router.into_make_service_with_connect_info::<SocketAddr>();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or a connection reset before it
                    // was taken: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let Ok(service) = tower::Service::call(&mut make, peer).await;
        let stopping = stopping.clone();
        tokio::spawn(async move {
            metrics::gauge!("homi_http_connections_open").increment(1.0);
            connection(tcp, peer, service, limits, stopping).await;
            metrics::gauge!("homi_http_connections_open").decrement(1.0);
            drop(slot);
        });
    }
    let _ = stop.send(true);
    // Every connection holds a slot until it closes.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// When a connection last did what: milliseconds since it opened.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    /// Requests being answered.
    in_flight: AtomicUsize,
    /// Requests answered.
    answered: AtomicU64,
    /// When the last answer ended (0: none yet).
    idle_since: AtomicU64,
    /// When the first byte of the next request arrived, plus one (0: none).
    next_request: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            answered: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            next_request: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64) -> Instant {
        self.opened + Duration::from_millis(ms)
    }

    /// Bytes came in: the next request has started, if none is being answered.
    fn read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let now = self.now().saturating_add(1);
            let _ = self
                .next_request
                .compare_exchange(0, now, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// A request's head is in: it is being answered until `Answering` drops.
    fn begin(self: &Arc<Self>) -> Answering {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.next_request.store(0, Ordering::Release);
        Answering(self.clone())
    }

    /// When the connection is to be closed unless something happens first,
    /// and why.
    fn deadline(&self, limits: &Limits) -> Option<(Instant, &'static str)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        if self.answered.load(Ordering::Acquire) == 0 {
            return Some((self.opened + limits.header, "header"));
        }
        match self.next_request.load(Ordering::Acquire) {
            0 => Some((
                self.at(self.idle_since.load(Ordering::Acquire)) + limits.keep_alive,
                "keep_alive",
            )),
            started => Some((self.at(started - 1) + limits.header, "header")),
        }
    }
}

/// A request being answered; dropped when its answer has been sent (or the
/// connection ended).
#[derive(Debug)]
struct Answering(Arc<Activity>);

impl Drop for Answering {
    fn drop(&mut self) {
        let a = &self.0;
        a.idle_since.store(a.now(), Ordering::Release);
        a.answered.fetch_add(1, Ordering::AcqRel);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    service: Service,
    limits: Limits,
    mut stopping: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: tcp,
        activity: activity.clone(),
    });
    let counted = activity.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let answering = counted.begin();
        let req = req.map(|body| axum::body::Body::new(Deadline::new(body, limits.body)));
        let service = service.clone();
        async move {
            let Ok(response) = tower::ServiceExt::oneshot(service, req).await;
            // The answer counts as in flight until its last byte is sent.
            Ok::<_, Infallible>(response.map(|body| {
                axum::body::Body::new(body.map_err(move |e| {
                    let _ = &answering;
                    e
                }))
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        // hyper's own clock starts when it waits for a request: a backstop
        // behind the finer deadlines below.
        .header_read_timeout(limits.keep_alive + limits.header);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut shutting_down = false;
    loop {
        let deadline = activity.deadline(&limits);
        let wake = deadline.map_or_else(|| Instant::now() + limits.header, |(at, _)| at);
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                return;
            }
            changed = stopping.changed(), if !shutting_down => {
                if changed.is_err() || *stopping.borrow() {
                    shutting_down = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = tokio::time::sleep_until(wake) => {
                if let Some((at, why)) = activity.deadline(&limits)
                    && at <= Instant::now()
                {
                    metrics::counter!("homi_http_connections_timed_out_total", "reason" => why)
                        .increment(1);
                    tracing::debug!(%peer, reason = why, "closing a connection that sent nothing in time");
                    return;
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The TCP stream, noting when bytes of a new request come in.
    struct Watched {
        #[pin]
        inner: TcpStream,
        activity: Arc<Activity>,
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

pin_project_lite::pin_project! {
    /// A request body that must arrive whole by a deadline.
    struct Deadline {
        #[pin]
        inner: Incoming,
        #[pin]
        sleep: tokio::time::Sleep,
        limit: Duration,
    }
}

impl Deadline {
    fn new(inner: Incoming, limit: Duration) -> Self {
        Self {
            inner,
            sleep: tokio::time::sleep(limit),
            limit,
        }
    }
}

impl Body for Deadline {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.sleep.poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut(*this.limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
