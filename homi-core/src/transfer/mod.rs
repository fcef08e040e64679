//! Moving memories in and out of a store, and to another embedder: what
//! `homi memory export`, `import` and `reembed` run.
//!
//! The export format is JSON Lines: one [`MemoryRecord`] per line — the
//! memory's fields as the API returns them (id, memory, hash, metadata,
//! scopes, actor and role, timestamps, `valid_from`/`valid_to`,
//! `superseded_by`), its `history`, and, when asked for, its `embedding`
//! (`{"model", "vector"}`). Superseded memories are exported too. Importing
//! an export into an empty store and exporting again gives the same bytes;
//! importing it twice changes nothing.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> homi_core::Result<()> {
//! # let fake = homi_testkit::FakeProvider::start().await.unwrap();
//! # let config = homi_core::Config::default()
//! #     .with_database_url("sqlite::memory:")
//! #     .with_openai_base_url(fake.base_url());
//! use homi_core::{Access, AddOptions, Memory, Scope, transfer};
//! let memory = Memory::open(&config).await?;
//! let alice = Scope::user("alice");
//! memory.add("I live in Lisbon", &alice, AddOptions::raw()).await?;
//!
//! let mut jsonl = Vec::new();
//! let n = transfer::export_jsonl(memory.store().as_ref(), &Access::from(&alice), false, &mut jsonl, |_| {}).await?;
//! assert_eq!(n, 1);
//!
//! let other = Memory::open(&config.clone().with_database_url("sqlite::memory:")).await?;
//! let report = transfer::import_jsonl(&other, &jsonl[..], |_| {}).await?;
//! assert_eq!((report.imported, report.already_present), (1, 0));
//! let again = transfer::import_jsonl(&other, &jsonl[..], |_| {}).await?;
//! assert_eq!((again.imported, again.already_present), (0, 1));
//! # Ok(()) }
//! ```

use std::io::{BufRead, Write};
use std::sync::Arc;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::memory::{Access, Memory};
use crate::provider::Embedder;
use crate::store::{EmbedderInfo, MemoryRecord, Outcome, Store};

pub use crate::store::{MemoryRecord as Record, RecordEmbedding};

/// Memories read from the store per page while exporting.
const EXPORT_PAGE: usize = 500;
/// Records written per transaction while importing (and texts per
/// embedding call when they need vectors).
const IMPORT_BATCH: usize = 256;

/// Writes every memory `access` reaches (every scope's with
/// [`Access::Any`]) as JSON Lines to `out`, with vectors when `embeddings` is
/// set; `progress` gets the count so far. Returns how many were written.
pub async fn export_jsonl(
    store: &dyn Store,
    access: &Access,
    embeddings: bool,
    out: &mut dyn Write,
    mut progress: impl FnMut(u64),
) -> Result<u64> {
    access.validate()?;
    let mut after = None;
    let mut written = 0u64;
    loop {
        let page = store.export(access, after, EXPORT_PAGE, embeddings).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.item.id);
        for record in &page {
            serde_json::to_writer(&mut *out, record)
                .map_err(|e| Error::storage(format!("writing the export: {e}")))?;
            out.write_all(b"\n").map_err(write_error)?;
            written += 1;
        }
        progress(written);
        if page.len() < EXPORT_PAGE {
            break;
        }
    }
    out.flush().map_err(write_error)?;
    Ok(written)
}

/// [`export_jsonl`] into the file at `path`, which is complete or not there:
/// the records go to `path` + `.partial`, which is synced and renamed over
/// `path` at the end, and removed if the export fails.
pub async fn export_jsonl_file(
    store: &dyn Store,
    access: &Access,
    embeddings: bool,
    path: &std::path::Path,
    progress: impl FnMut(u64),
) -> Result<u64> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let cannot = |e: std::io::Error, what: &std::path::Path| {
        Error::invalid("output", format!("cannot write {}: {e}", what.display()))
    };
    let file = std::fs::File::create(&partial).map_err(|e| cannot(e, &partial))?;
    let mut out = std::io::BufWriter::new(file);
    let written = match export_jsonl(store, access, embeddings, &mut out, progress).await {
        Ok(n) => n,
        Err(e) => {
            drop(out);
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    let finished = out
        .into_inner()
        .map_err(std::io::IntoInnerError::into_error)
        .and_then(|f| f.sync_all())
        .and_then(|()| std::fs::rename(&partial, path));
    if let Err(e) = finished {
        let _ = std::fs::remove_file(&partial);
        return Err(cannot(e, path));
    }
    Ok(written)
}

fn write_error(e: std::io::Error) -> Error {
    Error::storage(format!("writing the export: {e}"))
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Records read.
    pub read: u64,
    /// Memories written.
    pub imported: u64,
    /// Records whose id was already in the store (an earlier import).
    pub already_present: u64,
    /// Current records whose text was already current in their scope under another id.
    pub duplicates: u64,
    /// Records embedded again (no vector in the file, or one from another model).
    pub embedded: u64,
}

/// Reads JSON Lines written by [`export_jsonl`] and restores each memory
/// whole ([`Memory::restore`]), in batches; `progress` gets the bytes read so
/// far. Blank lines are skipped. A line that is not a valid record stops the
/// import with an error naming it; the batches before it are kept, and
/// running the import again skips them.
pub async fn import_jsonl(
    memory: &Memory,
    input: impl BufRead,
    mut progress: impl FnMut(u64),
) -> Result<ImportReport> {
    let mut report = ImportReport::default();
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    let mut first_line = 1usize;
    let mut bytes = 0u64;
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        let line =
            line.map_err(|e| Error::invalid("input", format!("line {n} cannot be read: {e}")))?;
        bytes += line.len() as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let record: MemoryRecord = serde_json::from_str(&line).map_err(|e| {
            Error::invalid(
                "input",
                format!("line {n} is not a Homi memory record: {e}"),
            )
        })?;
        if batch.is_empty() {
            first_line = n;
        }
        batch.push(record);
        if batch.len() == IMPORT_BATCH {
            restore_batch(memory, std::mem::take(&mut batch), first_line, &mut report).await?;
            progress(bytes);
        }
    }
    if !batch.is_empty() {
        restore_batch(memory, batch, first_line, &mut report).await?;
    }
    progress(bytes);
    Ok(report)
}

async fn restore_batch(
    memory: &Memory,
    batch: Vec<MemoryRecord>,
    first_line: usize,
    report: &mut ImportReport,
) -> Result<()> {
    report.read += batch.len() as u64;
    let restored = memory.restore(batch).await.map_err(|e| match e {
        Error::InvalidInput { field, reason } => Error::InvalidInput {
            field,
            reason: format!(
                "{reason} (in the batch starting at line {first_line}; nothing from it was written)"
            ),
        },
        other => other,
    })?;
    report.embedded += restored.embedded as u64;
    for o in restored.outcomes {
        match o {
            Outcome::Added { .. } => report.imported += 1,
            Outcome::Exists { .. } => report.already_present += 1,
            _ => report.duplicates += 1,
        }
    }
    Ok(())
}

/// Where a re-embedding stands, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReembedProgress {
    /// Memories with their new vector (staged).
    pub done: u64,
    /// Memories in the store.
    pub total: u64,
}

/// What a re-embedding did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReembedReport {
    /// The embedder before (`None` for a store that never held a memory).
    pub from: Option<String>,
    /// The embedder now.
    pub to: Option<String>,
    /// Memories in the store.
    pub total: u64,
    /// Memories whose new vector an earlier, interrupted run had staged.
    pub resumed: u64,
    /// Memories embedded by this run.
    pub embedded: u64,
}

/// Texts per embedding call while re-embedding.
pub const REEMBED_BATCH: usize = 128;

/// Moves every memory of `store` to `embedder`: embeds each text again,
/// stages the vectors in the store (so an interrupted run resumes where it
/// stopped), and swaps them all in with one transaction at the end, when the
/// new embedder is recorded. Writers that change a memory meanwhile are
/// caught up before the swap. Servers still configured with the old embedder
/// refuse to embed afterwards (an embedder mismatch) until they are
/// restarted with the new one.
pub async fn reembed(
    store: &Arc<dyn Store>,
    embedder: &dyn Embedder,
    batch: usize,
    mut progress: impl FnMut(ReembedProgress),
) -> Result<ReembedReport> {
    let before = store.embedder().await?;
    let mut report = ReembedReport {
        from: before.as_ref().map(ToString::to_string),
        to: before.as_ref().map(ToString::to_string),
        total: 0,
        resumed: 0,
        embedded: 0,
    };
    let Some(before) = before else {
        return Ok(report);
    };
    if before.model == embedder.model() && embedder.dims().is_none_or(|d| d == before.dims) {
        return Ok(report);
    }
    let target = EmbedderInfo {
        model: embedder.model().to_owned(),
        dims: embedder.dims().unwrap_or(0),
    };
    let batch = batch.max(1);
    let mut first = true;
    // A few rounds at most: each catches up the memories written meanwhile.
    for _ in 0..5 {
        loop {
            let next = store.reembed_next(&target, batch).await?;
            report.total = next.total;
            if first {
                report.resumed = next.done;
                first = false;
            }
            progress(ReembedProgress {
                done: next.done,
                total: next.total,
            });
            if next.todo.is_empty() {
                break;
            }
            let texts: Vec<String> = next.todo.iter().map(|t| t.text.clone()).collect();
            let vectors = embedder.embed(&texts).await?.vectors;
            if vectors.len() != texts.len() {
                return Err(Error::ProviderInvalidResponse {
                    reason: format!(
                        "{} returned {} vectors for {} texts",
                        target.model,
                        vectors.len(),
                        texts.len()
                    ),
                    raw: String::new(),
                });
            }
            report.embedded += texts.len() as u64;
            store
                .reembed_stage(
                    &target,
                    next.todo
                        .into_iter()
                        .zip(vectors)
                        .map(|(t, v)| (t.id, t.hash, v))
                        .collect(),
                )
                .await?;
        }
        if let Some(now) = store.reembed_finish(&target).await? {
            report.to = Some(now.to_string());
            progress(ReembedProgress {
                done: report.total,
                total: report.total,
            });
            return Ok(report);
        }
        if store.embedder().await?.is_none() {
            // Every memory was deleted meanwhile: nothing is left to move.
            return Ok(report);
        }
    }
    Err(Error::Conflict(
        "memories kept changing during the re-embedding; run it again (it resumes)".into(),
    ))
}
