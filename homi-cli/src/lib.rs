//! `homi`: Homi from the shell. `main.rs` parses the command line and calls
//! [`run`]; each sub-command here parses its arguments, calls `homi-core` and
//! renders the result (a table for people, JSON with `--json`).
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
use homi_core::auth::{Auth, KeyScope, NewApiKey};
use homi_core::{Config, Error, ErrorKind};
use serde_json::json;

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
    Serve,
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

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Show the configuration (secrets redacted) and check that the database
    /// and the model provider answer; exits non-zero if one does not.
    Check,
}

/// Whose memories: at least one of user, agent, run for a write, a list or a
/// search. The commands on one memory id and `export` take them as a
/// restriction; without any they reach every scope (the store is the
/// operator's).
#[derive(Debug, clap::Args)]
struct ScopeArgs {
    /// The user.
    #[arg(long = "user")]
    user: Option<String>,
    /// The agent.
    #[arg(long = "agent")]
    agent: Option<String>,
    /// The run.
    #[arg(long = "run")]
    run: Option<String>,
}

impl ScopeArgs {
    fn scope(&self) -> homi_core::Scope {
        homi_core::Scope {
            user_id: self.user.clone(),
            agent_id: self.agent.clone(),
            run_id: self.run.clone(),
        }
    }

    /// The scope given, or every scope when none is.
    fn access(&self) -> homi_core::Access {
        let scope = self.scope();
        if scope.is_empty() {
            homi_core::Access::Any
        } else {
            homi_core::Access::Scope(scope)
        }
    }
}

#[derive(Debug, Subcommand)]
enum MemoryCommand {
    /// Add memories from a message ("-" reads it from stdin).
    Add {
        /// The message.
        text: String,
        #[command(flatten)]
        scope: ScopeArgs,
        /// Extract facts with the chat model (default) or store the text as is.
        #[arg(long, overrides_with = "no_infer")]
        infer: bool,
        /// Store the text as it is (no model call).
        #[arg(long = "no-infer")]
        no_infer: bool,
        /// Metadata, a JSON object.
        #[arg(long)]
        metadata: Option<String>,
        /// When it was said: ISO 8601 (2023-05-08T13:56:00Z) or Unix seconds.
        #[arg(long)]
        timestamp: Option<String>,
    },
    /// The memories closest to a query.
    Search {
        /// The query.
        query: String,
        #[command(flatten)]
        scope: ScopeArgs,
        /// At most this many.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Metadata filters, mem0's JSON shape.
        #[arg(long)]
        filters: Option<String>,
        /// hybrid (words and meaning), semantic or keyword.
        #[arg(long, default_value = "hybrid")]
        mode: String,
    },
    /// The scope's memories, newest first.
    List {
        #[command(flatten)]
        scope: ScopeArgs,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One memory.
    Get {
        /// Its id.
        id: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Replace a memory's text (history keeps the old one).
    Update {
        /// Its id.
        id: String,
        /// The new text.
        text: String,
        #[command(flatten)]
        scope: ScopeArgs,
        /// New metadata, a JSON object.
        #[arg(long)]
        metadata: Option<String>,
    },
    /// Delete one memory for good.
    Delete {
        /// Its id.
        id: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Delete every memory of a scope.
    DeleteAll {
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// A memory's changes, oldest first.
    History {
        /// Its id.
        id: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Write memories as JSON Lines: each with its history, validity window,
    /// scopes and metadata (superseded ones too). Every memory without a scope.
    Export {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Include each memory's vector and the model that made it (an import
        /// with the same embedder then makes no model calls).
        #[arg(long)]
        embeddings: bool,
        /// Write to this file (complete or not at all) instead of stdout.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Restore memories written by `homi memory export` ("-" reads stdin).
    /// Ids already in the store are skipped, so importing twice changes nothing.
    Import {
        /// The JSON Lines file.
        file: String,
    },
    /// Copy an existing mem0 collection from Postgres or Supabase (ids,
    /// scopes, timestamps and vectors kept; running it again adds nothing).
    #[cfg(feature = "postgres")]
    ImportMem0 {
        /// The database holding the collection: postgres://… (or set
        /// MEM0_DATABASE_URL, which keeps a password out of the process list).
        #[arg(
            long = "from",
            value_name = "URL",
            env = "MEM0_DATABASE_URL",
            hide_env_values = true
        )]
        url: String,
        /// mem0's collection_name.
        #[arg(long, default_value = "mem0")]
        collection: String,
        /// mem0's pgvector store or the Supabase (vecs) one; found by default.
        #[arg(long, value_enum)]
        layout: Option<Mem0LayoutArg>,
        /// The embedding model that made mem0's vectors (default: the
        /// configured HOMI_EMBEDDING_MODEL).
        #[arg(long)]
        embedding_model: Option<String>,
    },
    /// Move every memory to the embedder configured now (HOMI_EMBEDDING_MODEL,
    /// HOMI_EMBEDDING_DIMS, OPENAI_BASE_URL). Resumes where an interrupted run
    /// stopped; the switch happens at the end, all at once.
    Reembed,
}

/// Where mem0 kept its memories.
#[cfg(feature = "postgres")]
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Mem0LayoutArg {
    /// mem0's own pgvector store: `{collection}(id, vector, payload)`.
    Pgvector,
    /// The Supabase store: `vecs."{collection}"(id, vec, metadata)`.
    Vecs,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create an account (the password comes from HOMI_NEW_PASSWORD or stdin).
    Create {
        /// Email address.
        email: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// List the accounts.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Skip this many.
        #[arg(long, default_value_t = 0)]
        offset: usize,
    },
    /// Delete an account and everything of the user's (memories, conversations, sessions).
    Delete {
        /// The user's id.
        id: String,
    },
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
    // `--embedder` stands for HOMI_EMBEDDER: the variable is not read then.
    let flag = cli.embedder;
    let config = Config::from_env_with(|name| {
        (name == "HOMI_EMBEDDER")
            .then(|| flag.map(|k| k.as_str().to_owned()))
            .flatten()
    })?;
    match cli.command {
        Command::Serve => {
            homi_server::serve::init_logging(&config);
            homi_server::serve::serve(&config).await
        }
        Command::Key(k) => key(&config, k, cli.json).await,
        Command::Chat {
            user,
            session,
            show_memories,
        } => chat(&config, user, session, show_memories, cli.json).await,
        Command::Memory(m) => memory(&config, m, cli.json).await,
        Command::Migrate => {
            homi_core::open::migrate(&config).await?;
            if cli.json {
                println!("{}", json!({"migrated": config.redacted_database_url()}));
            } else {
                println!("{} is up to date", config.redacted_database_url());
            }
            Ok(())
        }
        Command::Config(ConfigCommand::Check) => config_check(&config, cli.json).await,
        Command::Completions { .. } => Ok(()),
        Command::User(u) => user(&config, u, cli.json).await,
    }
}

/// How long `homi chat` waits at the end for the extraction of its turns.
const CHAT_DRAIN: std::time::Duration = std::time::Duration::from_secs(30);

async fn chat(
    config: &Config,
    user: String,
    mut session: Option<String>,
    show_memories: bool,
    as_json: bool,
) -> homi_core::Result<()> {
    use std::io::{IsTerminal, Write};

    use homi_core::chat::ChatEvent;
    use tokio::io::AsyncBufReadExt;

    let chat = homi_core::chat::Chat::open(config).await?;
    let worker = chat.spawn_local_worker();
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!("Chat with memory as {user} (type 'exit' to quit)");
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut out = std::io::stdout();
    loop {
        if interactive {
            print!("You: ");
            let _ = out.flush();
        }
        let Some(line) = lines
            .next_line()
            .await
            .map_err(|e| Error::invalid("stdin", e.to_string()))?
        else {
            break;
        };
        let message = line.trim();
        if message.is_empty() {
            continue;
        }
        if message.eq_ignore_ascii_case("exit") {
            break;
        }
        let mut events = chat.stream(&user, message, session.as_deref()).await?;
        while let Some(event) = futures::StreamExt::next(&mut events).await {
            match event? {
                ChatEvent::Memories {
                    session_id,
                    memories,
                } => {
                    session = Some(session_id);
                    if show_memories {
                        for m in &memories {
                            eprintln!("  [memory] {m}");
                        }
                    }
                    if !as_json {
                        print!("AI: ");
                    }
                }
                ChatEvent::Delta { content } => {
                    if !as_json {
                        print!("{content}");
                        let _ = out.flush();
                    }
                }
                ChatEvent::Done(turn) => {
                    if as_json {
                        println!("{}", json!(turn));
                    } else {
                        println!();
                    }
                }
            }
        }
    }
    if interactive {
        eprintln!("Goodbye!");
    }
    // Let the extraction of this user's turns finish before leaving (they
    // would otherwise wait in the store for the next run of a worker).
    let left = worker.finish(&user, CHAT_DRAIN).await?;
    if left.queued + left.running > 0 {
        eprintln!(
            "homi: {} memory extractions are still queued; they run the next time a worker does (homi serve, homi chat)",
            left.queued + left.running
        );
    }
    Ok(())
}

async fn config_check(config: &Config, as_json: bool) -> homi_core::Result<()> {
    let effective = homi_core::doctor::effective(config);
    let checks = homi_core::doctor::check(config).await;
    if as_json {
        println!("{}", json!({"config": effective, "checks": checks}));
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(&effective).unwrap_or_default()
        );
        for c in &checks {
            println!(
                "{:<9} {}  {}",
                c.name,
                if c.ok { "ok  " } else { "FAIL" },
                c.detail
            );
        }
    }
    homi_core::doctor::verdict(&checks)
}

fn json_object(field: &str, text: Option<&str>) -> homi_core::Result<Option<homi_core::Metadata>> {
    let Some(text) = text else { return Ok(None) };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(m)) => Ok(Some(m)),
        _ => Err(Error::invalid(
            field,
            "must be a JSON object, e.g. '{\"topic\": \"food\"}'",
        )),
    }
}

/// Prints rows under a header, each column as wide as its widest cell (the
/// last column, free text, is not padded).
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<0$}  ", widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Who a memory belongs to, e.g. `user=alice agent=tutor`.
fn owner(m: &homi_core::MemoryItem) -> String {
    [
        ("user", &m.user_id),
        ("agent", &m.agent_id),
        ("run", &m.run_id),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
    .collect::<Vec<_>>()
    .join(" ")
}

/// Memories as a table: id, score (search), owner, last change, text.
fn print_items(items: &[homi_core::MemoryItem]) {
    let scored = items.iter().any(|m| m.score.is_some());
    let mut header = vec!["ID"];
    if scored {
        header.push("SCORE");
    }
    header.extend(["OWNER", "UPDATED", "MEMORY"]);
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|m| {
            let mut row = vec![m.id.to_string()];
            if scored {
                row.push(m.score.map(|s| format!("{s:.3}")).unwrap_or_default());
            }
            row.push(owner(m));
            row.push(m.updated_at.format("%Y-%m-%d %H:%M").to_string());
            row.push(m.memory.clone());
            row
        })
        .collect();
    print_table(&header, &rows);
}

/// A progress bar on stderr; indicatif hides it when stderr is not a terminal.
fn progress(len: Option<u64>, template: &str) -> indicatif::ProgressBar {
    let bar = match len {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

async fn memory(config: &Config, command: MemoryCommand, as_json: bool) -> homi_core::Result<()> {
    use homi_core::{AddOptions, ListOptions, SearchOptions};
    // These two work on a store whose embedder is not (or not yet) the
    // configured one, so they open no Memory.
    match command {
        #[cfg(feature = "postgres")]
        MemoryCommand::ImportMem0 {
            url,
            collection,
            layout,
            embedding_model,
        } => return import_mem0(config, url, collection, layout, embedding_model, as_json).await,
        MemoryCommand::Reembed => return reembed(config, as_json).await,
        _ => {}
    }
    let memory = homi_core::Memory::open(config).await?;
    match command {
        MemoryCommand::Add {
            text,
            scope,
            infer: _,
            no_infer,
            metadata,
            timestamp,
        } => {
            let text = if text == "-" {
                let mut all = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut all)
                    .map_err(|e| Error::invalid("text", format!("cannot read stdin: {e}")))?;
                // As the shell's $(…) would: without the final line break.
                all.trim_end_matches(['\n', '\r']).to_owned()
            } else {
                text
            };
            let mut options = AddOptions::default().infer(!no_infer);
            if let Some(m) = json_object("metadata", metadata.as_deref())? {
                options = options.metadata(m);
            }
            if let Some(t) = timestamp {
                options = options.timestamp(homi_core::memory::parse_timestamp("timestamp", &t)?);
            }
            let added = memory.add(text.as_str(), &scope.scope(), options).await?;
            if as_json {
                println!("{}", json!(added));
            } else {
                let rows: Vec<Vec<String>> = added
                    .results
                    .iter()
                    .map(|e| {
                        vec![
                            e.id.to_string(),
                            e.event.as_str().to_owned(),
                            e.memory.clone(),
                        ]
                    })
                    .collect();
                print_table(&["ID", "EVENT", "MEMORY"], &rows);
            }
        }
        MemoryCommand::Search {
            query,
            scope,
            limit,
            filters,
            mode,
        } => {
            let mut options = SearchOptions::default().limit(limit).mode(mode.parse()?);
            let mut scope = scope.scope();
            if let Some(f) = filters {
                let value: serde_json::Value = serde_json::from_str(&f)
                    .map_err(|e| Error::invalid("filters", format!("not JSON: {e}")))?;
                let (s, filter) = homi_core::memory::mem0::scope_and_filter(
                    scope.user_id.as_deref(),
                    scope.agent_id.as_deref(),
                    scope.run_id.as_deref(),
                    Some(&value),
                )?;
                scope = s;
                if let Some(filter) = filter {
                    options = options.filters(filter);
                }
            }
            let found = memory.search(&query, &scope, options).await?;
            if as_json {
                println!("{}", json!(found));
            } else {
                print_items(&found.results);
            }
        }
        MemoryCommand::List { scope, limit } => {
            let items = memory
                .get_all(&scope.scope(), ListOptions::default().limit(limit))
                .await?;
            if as_json {
                println!("{}", json!({"results": items}));
            } else {
                print_items(&items);
            }
        }
        MemoryCommand::Get { id, scope } => {
            let item = memory
                .get(&id, scope.access())
                .await?
                .ok_or_else(|| Error::not_found(format!("memory {id}")))?;
            if as_json {
                println!("{}", json!(item));
            } else {
                print_items(std::slice::from_ref(&item));
            }
        }
        MemoryCommand::Update {
            id,
            text,
            scope,
            metadata,
        } => {
            let metadata = json_object("metadata", metadata.as_deref())?;
            let item = memory.update(&id, scope.access(), &text, metadata).await?;
            if as_json {
                println!("{}", json!(item));
            } else {
                print_items(std::slice::from_ref(&item));
            }
        }
        MemoryCommand::Delete { id, scope } => {
            memory.delete(&id, scope.access()).await?;
            if as_json {
                println!("{}", json!({"deleted": id}));
            } else {
                println!("deleted {id}");
            }
        }
        MemoryCommand::DeleteAll { scope } => {
            let n = memory.delete_all(&scope.scope()).await?;
            if as_json {
                println!("{}", json!({"deleted": n}));
            } else {
                println!("deleted {n} memories");
            }
        }
        MemoryCommand::History { id, scope } => {
            let entries = memory.history(&id, scope.access()).await?;
            if as_json {
                println!("{}", json!(entries));
            } else {
                let rows: Vec<Vec<String>> = entries
                    .into_iter()
                    .map(|h| {
                        vec![
                            h.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                            h.event.as_str().to_owned(),
                            h.old_memory.unwrap_or_default(),
                            h.new_memory.unwrap_or_default(),
                        ]
                    })
                    .collect();
                print_table(&["WHEN", "EVENT", "BEFORE", "AFTER"], &rows);
            }
        }
        MemoryCommand::Export {
            scope,
            embeddings,
            output,
        } => export(&memory, &scope.access(), embeddings, output, as_json).await?,
        MemoryCommand::Import { file } => import(&memory, &file, as_json).await?,
        // Run above, before a Memory is opened.
        #[cfg(feature = "postgres")]
        MemoryCommand::ImportMem0 { .. } => {}
        MemoryCommand::Reembed => {}
    }
    Ok(())
}

async fn export(
    memory: &homi_core::Memory,
    access: &homi_core::Access,
    embeddings: bool,
    output: Option<std::path::PathBuf>,
    as_json: bool,
) -> homi_core::Result<()> {
    use std::io::Write;
    let bar = progress(None, "{spinner} exported {human_pos} memories [{elapsed}]");
    let store = memory.store().as_ref();
    let count = |n: u64| bar.set_position(n);
    let written = match &output {
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            homi_core::transfer::export_jsonl(store, access, embeddings, &mut out, count).await?
        }
        Some(path) => {
            homi_core::transfer::export_jsonl_file(store, access, embeddings, path, count).await?
        }
    };
    bar.finish_and_clear();
    match (&output, as_json) {
        (Some(path), true) => println!(
            "{}",
            json!({"exported": written, "output": path.display().to_string()})
        ),
        (Some(path), false) => println!("exported {written} memories to {}", path.display()),
        (None, _) => {
            let _ = std::io::stdout().flush();
            eprintln!("exported {written} memories");
        }
    }
    Ok(())
}

async fn import(memory: &homi_core::Memory, file: &str, as_json: bool) -> homi_core::Result<()> {
    let report = if file == "-" {
        let bar = progress(None, "{spinner} imported {binary_bytes} [{elapsed}]");
        let input = std::io::BufReader::new(std::io::stdin().lock());
        let report =
            homi_core::transfer::import_jsonl(memory, input, |b| bar.set_position(b)).await;
        bar.finish_and_clear();
        report?
    } else {
        let f = std::fs::File::open(file)
            .map_err(|e| Error::invalid("file", format!("cannot open {file}: {e}")))?;
        let len = f.metadata().map(|m| m.len()).ok();
        let bar = progress(
            len,
            "{bar:40} {binary_bytes}/{binary_total_bytes} [{elapsed}, {eta} left]",
        );
        let report = homi_core::transfer::import_jsonl(memory, std::io::BufReader::new(f), |b| {
            bar.set_position(b)
        })
        .await;
        bar.finish_and_clear();
        report?
    };
    if as_json {
        println!("{}", json!(report));
    } else {
        println!(
            "read {} memories: {} imported, {} already present, {} duplicates of a current memory; {} embedded again",
            report.read,
            report.imported,
            report.already_present,
            report.duplicates,
            report.embedded
        );
    }
    Ok(())
}

#[cfg(feature = "postgres")]
async fn import_mem0(
    config: &Config,
    url: String,
    collection: String,
    layout: Option<Mem0LayoutArg>,
    embedding_model: Option<String>,
    as_json: bool,
) -> homi_core::Result<()> {
    use homi_core::import::{Mem0Layout, Mem0Source};
    let store = homi_core::open::open_store(config).await?;
    let source = Mem0Source {
        url,
        collection,
        layout: layout.map(|l| match l {
            Mem0LayoutArg::Pgvector => Mem0Layout::Pgvector,
            Mem0LayoutArg::Vecs => Mem0Layout::Vecs,
        }),
        embedder_model: embedding_model
            .unwrap_or_else(|| config.embedder.model_for(config.embedder.kind).to_owned()),
    };
    let bar = progress(
        Some(0),
        "{bar:40} {pos}/{len} mem0 rows copied [{elapsed}, {eta} left]",
    );
    let report =
        homi_core::import::import_mem0_with_progress(store.as_ref(), &source, |read, total| {
            bar.set_length(total);
            bar.set_position(read);
        })
        .await;
    bar.finish_and_clear();
    let report = report?;
    let layout = match report.layout {
        Some(Mem0Layout::Vecs) => "vecs",
        _ => "pgvector",
    };
    if as_json {
        println!(
            "{}",
            json!({
                "layout": layout,
                "read": report.read,
                "imported": report.imported,
                "already_present": report.already_present,
                "duplicates": report.duplicates,
                "invalid": report.invalid,
            })
        );
    } else {
        println!(
            "read {} rows of {} ({layout} layout): {} imported, {} already present, {} duplicates, {} without text or scope",
            report.read,
            source.collection,
            report.imported,
            report.already_present,
            report.duplicates,
            report.invalid
        );
    }
    Ok(())
}

async fn reembed(config: &Config, as_json: bool) -> homi_core::Result<()> {
    let bar = progress(
        Some(0),
        "{bar:40} {pos}/{len} memories re-embedded [{elapsed}, {eta} left]",
    );
    let report = homi_core::open::reembed_with_config(config, |p| {
        bar.set_length(p.total);
        bar.set_position(p.done);
    })
    .await;
    bar.finish_and_clear();
    let report = report?;
    if as_json {
        println!("{}", json!(report));
    } else if report.from == report.to {
        println!(
            "nothing to do: the store is on {}",
            report
                .to
                .as_deref()
                .unwrap_or("no embedder yet (it holds no memory)")
        );
    } else {
        if report.resumed > 0 {
            eprintln!(
                "resumed: {} of {} memories already had their new vector",
                report.resumed, report.total
            );
        }
        println!(
            "moved {} memories from {} to {} ({} embedded by this run)",
            report.total,
            report.from.as_deref().unwrap_or("-"),
            report.to.as_deref().unwrap_or("-"),
            report.embedded
        );
    }
    Ok(())
}

async fn user(config: &Config, command: UserCommand, as_json: bool) -> homi_core::Result<()> {
    let auth = Auth::open(config).await?;
    match command {
        UserCommand::Create { email, name } => {
            let password = match std::env::var("HOMI_NEW_PASSWORD") {
                Ok(p) if !p.is_empty() => p,
                _ => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line).map_err(|e| {
                        Error::invalid("password", format!("cannot read stdin: {e}"))
                    })?;
                    line.trim_end_matches(['\n', '\r']).to_owned()
                }
            };
            let mut request = homi_core::auth::SignUp::new(email, password);
            if let Some(n) = name {
                request = request.with_full_name(n);
            }
            let up = auth.sign_up(request).await?;
            if as_json {
                println!("{}", json!(up.user));
            } else {
                println!("{}  {}", up.user.id, up.user.email);
            }
        }
        UserCommand::List { limit, offset } => {
            let users = auth.list_users(limit, offset).await?;
            if as_json {
                println!("{}", json!({"users": users}));
            } else {
                let rows: Vec<Vec<String>> = users
                    .into_iter()
                    .map(|u| {
                        vec![
                            u.id.to_string(),
                            u.email,
                            u.created_at.format("%Y-%m-%d %H:%M").to_string(),
                            u.full_name.unwrap_or_default(),
                        ]
                    })
                    .collect();
                print_table(&["ID", "EMAIL", "CREATED", "NAME"], &rows);
            }
        }
        UserCommand::Delete { id } => {
            let uuid = uuid::Uuid::parse_str(id.trim())
                .map_err(|_| Error::invalid("id", format!("'{id}' is not a user id")))?;
            if !auth.delete_user(uuid).await? {
                return Err(Error::not_found(format!("user {id}")));
            }
            if as_json {
                println!("{}", json!({"deleted": id}));
            } else {
                println!("deleted user {id} and everything of theirs");
            }
        }
    }
    Ok(())
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
                let rows: Vec<Vec<String>> = keys
                    .into_iter()
                    .map(|k| {
                        vec![
                            k.id.to_string(),
                            k.name,
                            k.namespace,
                            scope_list(&k.scopes),
                            k.prefix,
                            if k.revoked_at.is_some() {
                                "revoked"
                            } else {
                                "active"
                            }
                            .to_owned(),
                        ]
                    })
                    .collect();
                print_table(
                    &["ID", "NAME", "NAMESPACE", "SCOPES", "PREFIX", "STATUS"],
                    &rows,
                );
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
