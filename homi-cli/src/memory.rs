//! `homi memory …`: add, search, list, read, change and delete memories;
//! export and import them as JSON Lines, copy a mem0 collection, move a
//! store to another embedder.

use clap::Subcommand;
use homi_core::{Config, Error};
use serde_json::json;

use crate::output::{Out, print_table, progress};

/// Whose memories: at least one of user, agent, run for a write, a list or a
/// search. The commands on one memory id and `export` take them as a
/// restriction; without any they reach every scope (the store is the
/// operator's).
#[derive(Debug, clap::Args)]
pub(crate) struct ScopeArgs {
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
pub(crate) enum MemoryCommand {
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
    /// Delete every memory of a scope (asks first on a terminal).
    DeleteAll {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Do not ask.
        #[arg(long, short)]
        yes: bool,
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
    /// Restore memories written by `homi memory export`. Ids already in the
    /// store are skipped, so importing twice changes nothing.
    Import {
        /// The JSON Lines file; standard input when absent or "-".
        #[arg(default_value = "-")]
        file: String,
    },
    /// Copy an existing mem0 collection from Postgres or Supabase (ids,
    /// scopes, timestamps, vectors and history kept; running it again adds
    /// nothing). mem0's Qdrant store (its default) is pickled Python: the
    /// Python package imports it (`homi.import_mem0(config)`).
    #[cfg(feature = "postgres")]
    ImportMem0 {
        /// mem0's configuration, as JSON: the dict given to mem0's
        /// Memory.from_config (its vector_store, collection_name,
        /// history_db_path and embedder are read). Or name the parts:
        #[arg(long, value_name = "FILE", conflicts_with = "url")]
        config: Option<std::path::PathBuf>,
        /// The database holding the collection: postgres://… (or set
        /// MEM0_DATABASE_URL, which keeps a password out of the process list).
        #[arg(
            long = "from",
            value_name = "URL",
            env = "MEM0_DATABASE_URL",
            hide_env_values = true,
            required_unless_present = "config"
        )]
        url: Option<String>,
        /// mem0's collection_name.
        #[arg(long, default_value = "mem0")]
        collection: String,
        /// mem0's pgvector store or the Supabase (vecs) one; found by default.
        #[arg(long, value_enum)]
        layout: Option<Mem0LayoutArg>,
        /// The embedding model that made mem0's vectors (default: the
        /// config's embedder, or the configured HOMI_EMBEDDING_MODEL).
        #[arg(long)]
        embedding_model: Option<String>,
        /// mem0's history.db (default: the config's history_db_path, else
        /// $MEM0_DIR/history.db or ~/.mem0/history.db, when there).
        #[arg(long, value_name = "FILE")]
        history: Option<std::path::PathBuf>,
    },
    /// Move every memory to the embedder configured now (HOMI_EMBEDDING_MODEL,
    /// HOMI_EMBEDDING_DIMS, OPENAI_BASE_URL). Resumes where an interrupted run
    /// stopped; the switch happens at the end, all at once.
    Reembed,
}

/// Where mem0 kept its memories.
#[cfg(feature = "postgres")]
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Mem0LayoutArg {
    /// mem0's own pgvector store: `{collection}(id, vector, payload)`.
    Pgvector,
    /// The Supabase store: `vecs."{collection}"(id, vec, metadata)`.
    Vecs,
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

/// On a terminal, asks before deleting every memory of `scope`; elsewhere
/// (a script, a pipe) the command is what was asked.
fn confirm(scope: &homi_core::Scope) -> homi_core::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Ok(true);
    }
    let whose = [
        ("user", &scope.user_id),
        ("agent", &scope.agent_id),
        ("run", &scope.run_id),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {v}")))
    .collect::<Vec<_>>()
    .join(", ");
    eprint!("Delete every memory of {whose}? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::invalid("yes", format!("cannot read the answer: {e}")))?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
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

pub(crate) async fn run(
    config: &Config,
    command: MemoryCommand,
    out: Out,
) -> homi_core::Result<()> {
    use homi_core::{AddOptions, ListOptions, SearchOptions};
    // These two open their Memory themselves (re-embedding works on a store
    // whose embedder is not the configured one yet).
    match command {
        #[cfg(feature = "postgres")]
        MemoryCommand::ImportMem0 {
            config: mem0_config,
            url,
            collection,
            layout,
            embedding_model,
            history,
        } => {
            let source = mem0_source(
                config,
                mem0_config,
                url,
                collection,
                layout,
                embedding_model,
                history,
            )?;
            return import_mem0(config, source, out).await;
        }
        MemoryCommand::Reembed => return reembed(config, out).await,
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
            out.show(&json!(added), |_| {
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
            });
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
            out.show(&json!(found), |_| {
                print_items(&found.results);
            });
        }
        MemoryCommand::List { scope, limit } => {
            let items = memory
                .get_all(&scope.scope(), ListOptions::default().limit(limit))
                .await?;
            out.show(&json!({"results": items}), |_| {
                print_items(&items);
            });
        }
        MemoryCommand::Get { id, scope } => {
            let item = memory
                .get(&id, scope.access())
                .await?
                .ok_or_else(|| Error::not_found(format!("memory {id}")))?;
            out.show(&json!(item), |_| {
                print_items(std::slice::from_ref(&item));
            });
        }
        MemoryCommand::Update {
            id,
            text,
            scope,
            metadata,
        } => {
            let metadata = json_object("metadata", metadata.as_deref())?;
            let item = memory.update(&id, scope.access(), &text, metadata).await?;
            out.show(&json!(item), |_| {
                print_items(std::slice::from_ref(&item));
            });
        }
        MemoryCommand::Delete { id, scope } => {
            memory.delete(&id, scope.access()).await?;
            out.show(&json!({"deleted": 1, "id": id}), |_| {
                println!("deleted {id}");
            });
        }
        MemoryCommand::DeleteAll { scope, yes } => {
            if !yes && !confirm(&scope.scope())? {
                return Err(Error::invalid("yes", "nothing was deleted (answered no)"));
            }
            let n = memory.delete_all(&scope.scope()).await?;
            out.show(&json!({"deleted": n}), |_| {
                println!("deleted {n} memories");
            });
        }
        MemoryCommand::History { id, scope } => {
            let entries = memory.history(&id, scope.access()).await?;
            out.show(&json!({"results": entries}), |_| {
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
            });
        }
        MemoryCommand::Export {
            scope,
            embeddings,
            output,
        } => export(&memory, &scope.access(), embeddings, output, out).await?,
        MemoryCommand::Import { file } => import(&memory, &file, out).await?,
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
    out: Out,
) -> homi_core::Result<()> {
    use std::io::Write;
    let bar = progress(None, "{spinner} exported {human_pos} memories [{elapsed}]");
    let count = |n: u64| bar.set_position(n);
    let written = match &output {
        None => {
            let mut writer = std::io::BufWriter::new(std::io::stdout().lock());
            memory
                .export_jsonl(access, embeddings, &mut writer, count)
                .await?
        }
        Some(path) => {
            memory
                .export_jsonl_file(access, embeddings, path, count)
                .await?
        }
    };
    bar.finish_and_clear();
    match (&output, out.json) {
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

async fn import(memory: &homi_core::Memory, file: &str, out: Out) -> homi_core::Result<()> {
    let report = if file == "-" {
        let bar = progress(None, "{spinner} imported {binary_bytes} [{elapsed}]");
        let input = std::io::BufReader::new(std::io::stdin().lock());
        let report = memory.import_jsonl(input, |b| bar.set_position(b)).await;
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
        let report = memory
            .import_jsonl(std::io::BufReader::new(f), |b| bar.set_position(b))
            .await;
        bar.finish_and_clear();
        report?
    };
    out.show(&json!(report), |_| {
        println!(
            "read {} memories: {} imported, {} already present, {} duplicates of a current memory; {} embedded again",
            report.read,
            report.imported,
            report.already_present,
            report.duplicates,
            report.embedded
        );
    });
    Ok(())
}

#[cfg(feature = "postgres")]
/// The mem0 collection to copy: from mem0's configuration, or from the
/// flags (which also correct what a configuration says).
#[cfg(feature = "postgres")]
fn mem0_source(
    config: &Config,
    mem0_config: Option<std::path::PathBuf>,
    url: Option<String>,
    collection: String,
    layout: Option<Mem0LayoutArg>,
    embedding_model: Option<String>,
    history: Option<std::path::PathBuf>,
) -> homi_core::Result<homi_core::transfer::Mem0Source> {
    use homi_core::transfer::{Mem0Layout, Mem0Source, mem0_history_path, read_mem0_history};
    let env = |name: &str| std::env::var(name).ok();
    let mut source = match mem0_config {
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Error::invalid("config", format!("cannot read {}: {e}", path.display()))
            })?;
            let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                Error::invalid("config", format!("{} is not JSON: {e}", path.display()))
            })?;
            Mem0Source::from_mem0_config(&value, &env)?
        }
        None => {
            let history = mem0_history_path(&serde_json::json!({}), &env);
            Mem0Source {
                url: url.unwrap_or_default(),
                collection,
                layout: None,
                embedder_model: Mem0Source::default_embedder_model(config),
                history: read_mem0_history(&history)?,
            }
        }
    };
    if let Some(l) = layout {
        source.layout = Some(match l {
            Mem0LayoutArg::Pgvector => Mem0Layout::Pgvector,
            Mem0LayoutArg::Vecs => Mem0Layout::Vecs,
        });
    }
    if let Some(m) = embedding_model {
        source.embedder_model = m;
    }
    if let Some(h) = history {
        source.history = read_mem0_history(&h)?;
    }
    Ok(source)
}

#[cfg(feature = "postgres")]
async fn import_mem0(
    config: &Config,
    source: homi_core::transfer::Mem0Source,
    out: Out,
) -> homi_core::Result<()> {
    use homi_core::transfer::Mem0Layout;
    // With the configured embedder: mem0's vectors are kept when it made
    // them, and the texts embedded again by it otherwise.
    let memory = homi_core::Memory::open(config).await?;
    let bar = progress(
        Some(0),
        "{bar:40} {pos}/{len} mem0 rows copied [{elapsed}, {eta} left]",
    );
    let report = memory
        .import_mem0(&source, |read, total| {
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
    out.show(&report, |report| {
        println!(
            "read {} rows of {} ({layout} layout): {} imported, {} already present, {} duplicates, {} without text or scope",
            report.read,
            source.collection,
            report.imported,
            report.already_present,
            report.duplicates,
            report.invalid
        );
    });
    Ok(())
}

async fn reembed(config: &Config, out: Out) -> homi_core::Result<()> {
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
    out.show(&report, |report| {
        if report.from == report.to {
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
    });
    Ok(())
}
