//! `homi-server`: serves Homi's REST API with the configuration of the
//! environment (and `.env`). With nothing set it runs on `./homi.db` with
//! built-in accounts; chat needs OPENAI_API_KEY or OPENAI_BASE_URL.

use std::net::SocketAddr;

use homi_core::Config;
use homi_server::{AppState, app};
use tokio::net::TcpListener;

/// mimalloc: a search allocates and frees tens of kilobytes of scratch space;
/// glibc's allocator spent ~9% of the server's time on that under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("homi-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    let level = if config.server.debug { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    if std::env::var("HOMI_LOG_FORMAT").as_deref() == Ok("json") {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let state = AppState::open(&config).await?;
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
    let addr: SocketAddr = format!("{}:{}", config.server.host, config.server.port)
        .parse()
        .map_err(|e| format!("API_HOST/API_PORT do not make an address: {e}"))?;
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(address = %listener.local_addr()?, database = %config.redacted_database_url(), "Homi is serving");
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    // Queued jobs stay in the store for the next start; a job in flight keeps
    // its lease and is taken over after it.
    let _ = stop_worker.send(());
    let _ = tokio::time::timeout(homi_server::SHUTDOWN_GRACE, worker).await;
    tracing::info!("stopped");
    Ok(())
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
