//! The `homi` command: parses the command line and runs it with
//! [`homi_cli::run`]; errors become one sentence (or JSON with `--json`) on
//! stderr and the exit code of their kind.

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    // `--json` asks for JSON errors, usage errors included.
    let json = std::env::args_os().any(|a| a == "--json");
    let cli = match homi_cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return homi_cli::usage_error(e, json),
    };
    match homi_cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => homi_cli::report(&e, json),
    }
}
