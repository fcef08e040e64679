//! `homi`: Homi from the shell.
//!
//! - `homi serve` runs the REST server exactly as `homi-server` does.
//! - `homi key create|list|revoke` manages service API keys (the secret of a
//!   new key is printed once).
//!
//! Configuration comes from the environment and `.env` (`DATABASE_URL`, …),
//! as for every Homi door. Exit codes: 0 success, 2 usage, and one per kind
//! of error (see [`exit_code`]); the error is one sentence on stderr, or a
//! JSON object with `--json`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use homi_core::auth::{Auth, KeyScope, NewApiKey};
use homi_core::{Config, Error, ErrorKind};
use serde_json::json;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "homi", version, about = "Persistent memory for chatbots")]
struct Cli {
    /// Print results (and errors) as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the REST server (the configuration `homi-server` reads).
    Serve,
    /// Service API keys: a backend acting for its own users.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Create a key; its secret is printed this once.
    Create {
        /// A name for people.
        #[arg(long)]
        name: String,
        /// The namespace the key's users live in (a-z, 0-9, '-', '_').
        #[arg(long, default_value = "default")]
        namespace: String,
        /// read, write (implies read) or admin; repeat or separate with commas.
        #[arg(long = "scope", required = true, value_delimiter = ',')]
        scopes: Vec<String>,
    },
    /// List the keys (never their secrets).
    List,
    /// Revoke a key at once.
    Revoke {
        /// The key's id (from `homi key list`).
        id: String,
    },
}

/// The exit code of an error kind: 2 stays clap's usage error.
fn exit_code(kind: ErrorKind) -> u8 {
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                eprintln!(
                    "{}",
                    json!({"error": format!("{:?}", e.kind()), "detail": e.to_string()})
                );
            } else {
                eprintln!("homi: {e}");
            }
            ExitCode::from(exit_code(e.kind()))
        }
    }
}

async fn run(cli: Cli) -> homi_core::Result<()> {
    let config = Config::from_env()?;
    match cli.command {
        Command::Serve => {
            homi_server::serve::init_logging(&config);
            homi_server::serve::serve(&config).await
        }
        Command::Key(k) => key(&config, k, cli.json).await,
    }
}

async fn key(config: &Config, command: KeyCommand, as_json: bool) -> homi_core::Result<()> {
    let auth = Auth::open(config).await?;
    match command {
        KeyCommand::Create {
            name,
            namespace,
            scopes,
        } => {
            let scopes = scopes
                .iter()
                .map(|s| KeyScope::parse(s))
                .collect::<homi_core::Result<Vec<_>>>()?;
            let created = auth
                .create_api_key(NewApiKey::new(name, namespace, scopes))
                .await?;
            if as_json {
                println!("{}", json!(created));
            } else {
                println!("{}", created.secret());
                eprintln!(
                    "created key {} ({}; namespace {}; scopes {}). The secret above is shown once: store it now.",
                    created.key.id,
                    created.key.name,
                    created.key.namespace,
                    scope_list(&created.key.scopes)
                );
            }
        }
        KeyCommand::List => {
            let keys = auth.list_api_keys().await?;
            if as_json {
                println!("{}", json!({"keys": keys}));
            } else {
                println!(
                    "{:<36}  {:<20}  {:<16}  {:<17}  {:<16}  status",
                    "id", "name", "namespace", "scopes", "prefix"
                );
                for k in keys {
                    println!(
                        "{:<36}  {:<20}  {:<16}  {:<17}  {:<16}  {}",
                        k.id,
                        k.name,
                        k.namespace,
                        scope_list(&k.scopes),
                        k.prefix,
                        if k.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        }
                    );
                }
            }
        }
        KeyCommand::Revoke { id } => {
            let id = uuid::Uuid::parse_str(id.trim())
                .map_err(|_| Error::invalid("id", format!("'{id}' is not a key id")))?;
            auth.revoke_api_key(id).await?;
            if as_json {
                println!("{}", json!({"revoked": id}));
            } else {
                println!("revoked {id}");
            }
        }
    }
    Ok(())
}

fn scope_list(scopes: &[KeyScope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}
