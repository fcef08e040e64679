//! `homi-server`: serves Homi's REST API with the configuration of the
//! environment (and `.env`). With nothing set it runs on `./homi.db` with
//! built-in accounts; chat needs OPENAI_API_KEY or OPENAI_BASE_URL.

use homi_core::Config;

/// mimalloc: a search allocates and frees tens of kilobytes of scratch space;
/// glibc's allocator spent ~9% of the server's time on that under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let result = async {
        let config = Config::from_env()?;
        homi_server::serve::init_logging(&config);
        homi_server::serve::serve(&config).await
    };
    match result.await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("homi-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
