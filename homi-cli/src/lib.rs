//! `homi`: Homi from the shell. `main.rs` parses the command line and calls
//! [`run`]; each group of sub-commands has its module (`memory`, `user`,
//! `key`, `chat`, `config`), where a command parses its arguments, calls
//! `homi-core` and renders the result through `output` (a table for people,
//! JSON with `--json`).
//!
//! - `homi serve` runs the REST server exactly as `homi-server` does.
//! - `homi chat` chats with memory, like the original memory-agent.py.
//! - `homi memory …` adds, searches, lists, changes and deletes memories;
//!   exports and imports them as JSON Lines; copies a mem0 collection; moves
//!   a store to another embedder.
//! - `homi user …` and `homi key …` manage accounts and service API keys
//!   (the secret of a new key is printed once).
//! - `homi migrate`, `homi config check`, `homi completions`.
//!
//! Configuration comes from the environment and `.env` (`DATABASE_URL`, …),
//! as for every Homi door. Exit codes: 0 success, 2 usage, and one per kind
//! of error (see [`exit_code`]); the error is one sentence on stderr, or a
//! JSON object with `--json` ([`report`]).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use homi_core::{Config, Error, ErrorKind};
use serde_json::json;

mod chat;
mod config;
mod key;
mod memory;
mod output;
mod user;

use config::ConfigCommand;
use key::KeyCommand;
use memory::MemoryCommand;
use output::Out;
use user::UserCommand;

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "homi", version, about = "Persistent memory for chatbots")]
pub struct Cli {
    /// Print results (and errors) as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Which embedder turns texts into vectors: `local` (in process, no key),
    /// `openai` (the provider's), or `auto` (local when no provider is
    /// configured). Overrides HOMI_EMBEDDER.
    #[arg(long, global = true, value_name = "auto|local|openai", value_parser = parse_embedder)]
    embedder: Option<homi_core::config::EmbedderKind>,
    #[command(subcommand)]
    command: Command,
}

fn parse_embedder(s: &str) -> Result<homi_core::config::EmbedderKind, String> {
    homi_core::config::EmbedderKind::parse(s)
        .ok_or_else(|| format!("'{s}' is not an embedder: use auto, local or openai"))
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the REST server (the configuration `homi-server` reads).
    Serve {
        /// Listen on this address (overrides API_HOST).
        #[arg(long)]
        host: Option<String>,
        /// Listen on this port (overrides API_PORT).
        #[arg(long)]
        port: Option<u16>,
    },
    /// Chat with memory, like the original memory-agent.py: type a message,
    /// the reply streams in; `exit` or end of input quits. Works from a pipe.
    Chat {
        /// Whose memories and conversation.
        #[arg(long)]
        user: String,
        /// Continue this conversation (a new one by default).
        #[arg(long)]
        session: Option<String>,
        /// Print the memories each reply was given (on stderr).
        #[arg(long)]
        show_memories: bool,
    },
    /// Service API keys: a backend acting for its own users.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Memories: add, search, list, read, change, delete.
    #[command(subcommand)]
    Memory(MemoryCommand),
    /// Built-in accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Be the memory of an MCP client (Claude Desktop, Claude Code, Cursor,
    /// an agent) over stdio: the client starts `homi mcp` and calls its
    /// tools. Logs go to stderr.
    Mcp {
        /// Whose memories (default: HOMI_MCP_USER, else the OS user name).
        #[arg(long, env = "HOMI_MCP_USER")]
        user: Option<String>,
        /// The agent scope of the memories: by default the client's name
        /// from MCP's initialize, so each app keeps its own; give one name to
        /// several apps to share them, or "" for the user's memories across
        /// every app.
        #[arg(long)]
        agent: Option<String>,
    },
    /// Create or bring the store's tables up to date.
    Migrate,
    /// The effective configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Shell completions: `homi completions bash > /etc/bash_completion.d/homi`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// The exit code of an error kind (2 is clap's, for usage errors): 3
/// configuration, 4 invalid input, 5 not found, 6 not authenticated or not
/// allowed, 7 conflict, 8 rate limited, 9 the model provider, 10 the store,
/// 11 another service, 1 anything else.
pub fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Config => 3,
        ErrorKind::InvalidInput => 4,
        ErrorKind::NotFound => 5,
        ErrorKind::Unauthorized | ErrorKind::Forbidden => 6,
        ErrorKind::Conflict => 7,
        ErrorKind::RateLimited => 8,
        ErrorKind::ProviderNotConfigured
        | ErrorKind::ProviderUnavailable
        | ErrorKind::ProviderTimeout
        | ErrorKind::ProviderInvalidResponse => 9,
        ErrorKind::Unavailable => 11,
        ErrorKind::Storage => 10,
        _ => 1,
    }
}

/// Shows an error on stderr: one sentence, or with `json` the object
/// `{"error": "<code>", "detail": "<sentence>"}` (the server's codes), and
/// returns the exit code of its kind.
pub fn report(e: &Error, json: bool) -> ExitCode {
    if json {
        eprintln!(
            "{}",
            json!({"error": e.kind().code(), "detail": e.to_string()})
        );
    } else {
        eprintln!("homi: {e}");
    }
    ExitCode::from(exit_code(e.kind()))
}

/// Shows a command line clap refused: help and version as clap prints them;
/// a usage error as clap prints it, or with `json` as
/// `{"error": "usage", "detail": …}`; exit code 2.
pub fn usage_error(e: clap::Error, json: bool) -> ExitCode {
    use clap::error::ErrorKind as Clap;
    let is_usage = !matches!(
        e.kind(),
        Clap::DisplayHelp | Clap::DisplayVersion | Clap::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if json && is_usage {
        // clap's message without its usage lines, on one line.
        let text = e.to_string();
        let detail = text
            .lines()
            .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let detail = detail.trim_start_matches("error: ");
        eprintln!("{}", json!({"error": "usage", "detail": detail}));
        return ExitCode::from(2);
    }
    let _ = e.print();
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> homi_core::Result<()> {
    if let Command::Completions { shell } = &cli.command {
        use clap::CommandFactory;
        clap_complete::generate(*shell, &mut Cli::command(), "homi", &mut std::io::stdout());
        return Ok(());
    }
    // A flag stands for its variable (`--embedder` for HOMI_EMBEDDER, `serve
    // --host/--port` for API_HOST/API_PORT): the variable is not read then.
    let flag = cli.embedder;
    let (host, port) = match &cli.command {
        Command::Serve { host, port } => (host.clone(), *port),
        _ => (None, None),
    };
    let config = Config::from_env_with(|name| match name {
        "HOMI_EMBEDDER" => flag.map(|k| k.as_str().to_owned()),
        "API_HOST" => host.clone(),
        "API_PORT" => port.map(|p| p.to_string()),
        _ => None,
    })?;
    let out = Out { json: cli.json };
    match cli.command {
        Command::Serve { .. } => {
            homi_server::serve::init_logging(&config);
            homi_server::serve::serve(&config).await
        }
        Command::Key(k) => key::run(&config, k, out).await,
        Command::Chat {
            user,
            session,
            show_memories,
        } => chat::run(&config, user, session, show_memories, out).await,
        Command::Memory(m) => memory::run(&config, m, out).await,
        Command::Mcp { user, agent } => {
            homi_server::mcp::serve_stdio(&config, user, homi_server::mcp::Agent::from_arg(agent))
                .await
        }
        Command::Migrate => {
            homi_core::open::migrate(&config).await?;
            let url = config.redacted_database_url();
            out.show(&json!({"migrated": url}), |_| {
                println!("{url} is up to date")
            });
            Ok(())
        }
        Command::Config(ConfigCommand::Check) => config::check(&config, out).await,
        Command::Completions { .. } => Ok(()),
        Command::User(u) => user::run(&config, u, out).await,
    }
}
