//! Running the server: the configuration of the environment, the extraction
//! worker beside the routes, graceful shutdown. Used by `homi-server` and by
//! `homi serve`.

use std::net::SocketAddr;

use homi_core::Config;
use tokio::net::TcpListener;

use crate::{AppState, app};

mod conn;

pub use conn::{BodyTimedOut, Limits, serve_on};

/// Logs for people, or JSON lines with `HOMI_LOG_FORMAT=json`; `RUST_LOG`
/// overrides the level (`DEBUG=true` means debug).
pub fn init_logging(config: &Config) {
    init_logging_to(config, std::io::stdout);
}

/// [`init_logging`] to another writer (`homi mcp` logs to stderr: stdout
/// carries the protocol).
pub fn init_logging_to<W>(config: &Config, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let level = if config.server.debug { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let result = if std::env::var("HOMI_LOG_FORMAT").as_deref() == Ok("json") {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(writer)
            .try_init()
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .try_init()
    };
    // Already set up by the embedding program: keep its choice.
    let _ = result;
}

/// Serves on `API_HOST:API_PORT` with the extraction worker until SIGTERM or
/// Ctrl-C; requests in flight are answered first, queued jobs stay for the
/// next start.
pub async fn serve(config: &Config) -> homi_core::Result<()> {
    let state = AppState::open(config).await?;
    if !state.provider_configured {
        tracing::warn!(
            "no model provider configured: chat answers 503 until OPENAI_API_KEY or OPENAI_BASE_URL is set"
        );
    }
    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = state
        .chat
        .queue()
        .clone()
        .spawn_worker(state.memory.clone(), async {
            let _ = worker_stopped.await;
        });
    let pruner = tokio::spawn(prune_on_schedule(state.clone()));
    let addr: SocketAddr = format!("{}:{}", config.server.host, config.server.port)
        .parse()
        .map_err(|e| {
            homi_core::Error::config(
                "API_HOST",
                format!("API_HOST and API_PORT do not make an address: {e}"),
            )
        })?;
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        homi_core::Error::config("API_PORT", format!("cannot listen on {addr}: {e}"))
    })?;
    tracing::info!(address = %addr, database = %config.redacted_database_url(), "Homi is serving");
    // On SIGTERM or Ctrl-C: no new connections, the requests in flight are
    // answered, for at most SHUTDOWN_GRACE.
    let signalled = std::sync::Arc::new(tokio::sync::Notify::new());
    let notify = signalled.clone();
    let server = serve_on(
        listener,
        app(state),
        Limits::from_config(config),
        async move {
            shutdown_signal().await;
            tracing::info!("shutting down: answering the requests in flight");
            notify.notify_one();
        },
    );
    let deadline = async {
        signalled.notified().await;
        tokio::time::sleep(crate::SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        () = server => {}
        () = deadline => tracing::warn!(
            grace_secs = crate::SHUTDOWN_GRACE.as_secs(),
            "requests still running after the shutdown grace; stopping without them"
        ),
    }
    // Queued jobs stay in the store for the next start; a job in flight keeps
    // its lease and is taken over after it.
    pruner.abort();
    let _ = stop_worker.send(());
    let _ = tokio::time::timeout(crate::SHUTDOWN_GRACE, worker).await;
    tracing::info!("stopped");
    Ok(())
}

/// How often the server deletes what has expired.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Deletes expired sessions and tokens and long-finished jobs, at start and
/// then every [`PRUNE_EVERY`] (each process on a database does; the work is
/// the same whoever does it).
async fn prune_on_schedule(state: AppState) {
    let mut every = tokio::time::interval(PRUNE_EVERY);
    loop {
        every.tick().await;
        match state.auth.prune_expired().await {
            Ok(n) if n > 0 => tracing::info!(rows = n, "pruned expired sessions and tokens"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning expired sessions failed"),
        }
        match state.chat.queue().prune_finished().await {
            Ok(n) if n > 0 => tracing::info!(jobs = n, "pruned finished jobs"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning finished jobs failed"),
        }
        if let Err(e) = state.memory.budgets().prune().await {
            tracing::warn!(error = %e, "pruning the users' past spend failed");
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
