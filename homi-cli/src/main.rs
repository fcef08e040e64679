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

/// Whose memories: at least one of user, agent, run for a write or a search.
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
    if let Command::Completions { shell } = &cli.command {
        use clap::CommandFactory;
        clap_complete::generate(*shell, &mut Cli::command(), "homi", &mut std::io::stdout());
        return Ok(());
    }
    let config = Config::from_env()?;
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
            homi_core::store::open(&config).await?;
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
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = chat
        .queue()
        .clone()
        .spawn_worker(chat.memory().clone(), async {
            let _ = stopped.await;
        });
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
    // Let the extraction of this chat's turns finish before leaving (they
    // would otherwise wait in the store for the next run of a worker).
    let left = chat.queue().wait_until_idle(CHAT_DRAIN).await?;
    if left.queued + left.running > 0 {
        eprintln!(
            "homi: {} memory extractions are still queued; they run the next time a worker does (homi serve, homi chat)",
            left.queued + left.running
        );
    }
    let _ = stop.send(());
    let _ = worker.await;
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
    match checks.iter().find(|c| !c.ok) {
        None => Ok(()),
        Some(c) if c.name == "database" => Err(Error::Storage(c.detail.clone().into())),
        Some(c) => Err(Error::Provider {
            status: None,
            message: format!("the provider check failed: {}", c.detail),
            retry_after: None,
        }),
    }
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

/// One line per memory: id, text, and the score when there is one.
fn print_items(items: &[homi_core::MemoryItem]) {
    for m in items {
        match m.score {
            Some(score) => println!("{}  {:.3}  {}", m.id, score, m.memory),
            None => println!("{}  {}", m.id, m.memory),
        }
    }
}

async fn memory(config: &Config, command: MemoryCommand, as_json: bool) -> homi_core::Result<()> {
    use homi_core::{AddOptions, ListOptions, SearchOptions};
    let memory = homi_core::Memory::open(config).await?;
    match command {
        MemoryCommand::Add {
            text,
            scope,
            infer: _,
            no_infer,
            metadata,
        } => {
            let text = if text == "-" {
                let mut all = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut all)
                    .map_err(|e| Error::invalid("text", format!("cannot read stdin: {e}")))?;
                all
            } else {
                text
            };
            let mut options = AddOptions::default().infer(!no_infer);
            if let Some(m) = json_object("metadata", metadata.as_deref())? {
                options = options.metadata(m);
            }
            let added = memory.add(text.as_str(), &scope.scope(), options).await?;
            if as_json {
                println!("{}", json!(added));
            } else {
                for e in &added.results {
                    println!("{}  {:?}  {}", e.id, e.event, e.memory);
                }
            }
        }
        MemoryCommand::Search {
            query,
            scope,
            limit,
            filters,
        } => {
            let mut options = SearchOptions::default().limit(limit);
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
                .get(&id, &scope.scope())
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
            let item = memory.update(&id, &scope.scope(), &text, metadata).await?;
            if as_json {
                println!("{}", json!(item));
            } else {
                print_items(std::slice::from_ref(&item));
            }
        }
        MemoryCommand::Delete { id, scope } => {
            memory.delete(&id, &scope.scope()).await?;
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
            let entries = memory.history(&id, &scope.scope()).await?;
            if as_json {
                println!("{}", json!(entries));
            } else {
                for h in entries {
                    println!(
                        "{}  {:<6}  {} -> {}",
                        h.created_at.to_rfc3339(),
                        format!("{:?}", h.event),
                        h.old_memory.unwrap_or_default(),
                        h.new_memory.unwrap_or_default()
                    );
                }
            }
        }
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
                for u in users {
                    println!("{}  {}  {}", u.id, u.email, u.full_name.unwrap_or_default());
                }
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
