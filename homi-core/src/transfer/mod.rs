//! Moving memories in and out of a store, and to another embedder: the
//! [`Memory`] methods `homi memory export`, `import`, `import-mem0` and
//! `reembed` run, and the one [`ImportReport`] every import returns.
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
//! use homi_core::{Access, AddOptions, Memory, Scope};
//! let memory = Memory::open(&config).await?;
//! let alice = Scope::user("alice");
//! memory.add("I live in Lisbon", &alice, AddOptions::raw()).await?;
//!
//! let mut jsonl = Vec::new();
//! let n = memory.export_jsonl(&Access::from(&alice), false, &mut jsonl, |_| {}).await?;
//! assert_eq!(n, 1);
//!
//! let other = Memory::open(&config.clone().with_database_url("sqlite::memory:")).await?;
//! let report = other.import_jsonl(&jsonl[..], |_| {}).await?;
//! assert_eq!((report.imported, report.already_present), (1, 0));
//! let again = other.import_jsonl(&jsonl[..], |_| {}).await?;
//! assert_eq!((again.imported, again.already_present), (0, 1));
//! # Ok(()) }
//! ```

use std::io::{BufRead, Write};

use serde::Serialize;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::memory::{Access, Memory, Scope, Usage, text_hash};
use crate::provider::Embedder;
use crate::store::{EmbedderInfo, MemoryRecord, Outcome};

pub use crate::store::{MemoryRecord as Record, RecordEmbedding};

#[cfg(feature = "postgres")]
mod mem0;
mod mem0_points;
#[cfg(feature = "postgres")]
pub use mem0::Mem0Source;
#[cfg(feature = "sqlite")]
pub use mem0_points::read_mem0_history;
pub use mem0_points::{mem0_history_path, mem0_records};

/// Memories read from the store per page while exporting.
const EXPORT_PAGE: usize = 500;
/// Records written per transaction while importing (and texts per
/// embedding call when they need vectors).
const IMPORT_BATCH: usize = 256;

/// Where mem0 kept its memories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mem0Layout {
    /// mem0's pgvector store: `{collection}(id, vector, payload)` in the search path.
    Pgvector,
    /// The Supabase (vecs) store: `vecs."{collection}"(id, vec, metadata)`.
    Vecs,
}

/// What an import did: of an export ([`Memory::import_jsonl`]) or of a mem0
/// collection ([`Memory::import_mem0`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// The mem0 layout that was read (mem0 imports only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<Mem0Layout>,
    /// Records (or mem0 rows) read.
    pub read: u64,
    /// Memories written.
    pub imported: u64,
    /// Records whose id was already in the store (an earlier import).
    pub already_present: u64,
    /// Current records whose text was already current in their scope under another id.
    pub duplicates: u64,
    /// Records embedded again (no vector in the file, or one from another model).
    pub embedded: u64,
    /// mem0 rows that could not be imported (no `data` text, or no scope id);
    /// their ids are logged. (A bad line of an export stops its import instead.)
    pub invalid: u64,
}

impl ImportReport {
    /// Counts the store's answer for one record.
    fn count(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Added { .. } => self.imported += 1,
            Outcome::Exists { .. } => self.already_present += 1,
            _ => self.duplicates += 1,
        }
    }
}

/// What [`Memory::restore`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Restored {
    /// One outcome per record, in order: `Added`, `Exists` or `Duplicate`.
    pub outcomes: Vec<Outcome>,
    /// Records embedded again (no usable vector in the record).
    pub embedded: usize,
    /// Model calls made.
    pub usage: Usage,
}

impl Memory {
    /// Writes every memory `access` reaches (every scope's with
    /// [`Access::Any`]) as JSON Lines to `out`, with vectors when
    /// `embeddings` is set; `progress` gets the count so far. Returns how
    /// many were written.
    pub async fn export_jsonl(
        &self,
        access: &Access,
        embeddings: bool,
        out: &mut dyn Write,
        mut progress: impl FnMut(u64),
    ) -> Result<u64> {
        access.validate()?;
        let store = self.store();
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

    /// [`Memory::export_jsonl`] into the file at `path`, which is complete
    /// or not there: the records go to `path` + `.partial`, which is synced
    /// and renamed over `path` at the end, and removed if the export fails.
    pub async fn export_jsonl_file(
        &self,
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
        let written = match self
            .export_jsonl(access, embeddings, &mut out, progress)
            .await
        {
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

    /// Reads JSON Lines written by [`Memory::export_jsonl`] and restores
    /// each memory whole ([`Memory::restore`]), in batches; `progress` gets
    /// the bytes read so far. Blank lines are skipped. A line that is not a
    /// valid record stops the import with an error naming it; the batches
    /// before it are kept, and running the import again skips them.
    pub async fn import_jsonl(
        &self,
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
                self.restore_batch(std::mem::take(&mut batch), first_line, &mut report)
                    .await?;
                progress(bytes);
            }
        }
        if !batch.is_empty() {
            self.restore_batch(batch, first_line, &mut report).await?;
        }
        progress(bytes);
        Ok(report)
    }

    async fn restore_batch(
        &self,
        batch: Vec<MemoryRecord>,
        first_line: usize,
        report: &mut ImportReport,
    ) -> Result<()> {
        report.read += batch.len() as u64;
        let restored = self.restore(batch).await.map_err(|e| match e {
            Error::InvalidInput { field, reason } => Error::InvalidInput {
                field,
                reason: format!(
                    "{reason} (in the batch starting at line {first_line}; nothing from it was written)"
                ),
            },
            other => other,
        })?;
        report.embedded += restored.embedded as u64;
        for o in &restored.outcomes {
            report.count(o);
        }
        Ok(())
    }

    /// Writes exported memories back whole — ids, texts, scopes, metadata,
    /// validity windows and history — as [`Memory::import_jsonl`]
    /// does for `homi memory import`. A record's vector is used when it was
    /// made by the configured embedder (or, with no provider configured, by
    /// the store's); other records are embedded again. Records whose id
    /// exists are skipped ([`Outcome::Exists`]), so restoring twice changes
    /// nothing. Records are checked first: a bad one fails the call with
    /// nothing written.
    pub async fn restore(&self, records: Vec<MemoryRecord>) -> Result<Restored> {
        let mut usage = Usage::default();
        for r in &records {
            check_record(r)?;
        }
        // Records already in the store (an earlier import) are neither
        // embedded nor written.
        let ids: Vec<Uuid> = records.iter().map(|r| r.item.id).collect();
        let present = self.store().existing_ids(&ids).await?;
        let mut todo = Vec::with_capacity(records.len());
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(records.len());
        for r in records {
            if present.contains(&r.item.id) {
                outcomes.push(Some(Outcome::Exists { id: r.item.id }));
            } else {
                outcomes.push(None);
                todo.push(r);
            }
        }
        // The embedder the memories go in with: the configured one, or
        // without a provider the store's, or else the records' own.
        let stored = self.store().embedder().await?;
        let (model, mut dims) = match (self.configured_embedder(), &stored) {
            (Some(e), _) => (
                Some(e.model().to_owned()),
                e.dims().or(stored
                    .as_ref()
                    .filter(|s| s.model == e.model())
                    .map(|s| s.dims)),
            ),
            (None, Some(s)) => (Some(s.model.clone()), Some(s.dims)),
            (None, None) => (
                todo.iter()
                    .find_map(|r| r.embedding.as_ref().map(|e| e.model.clone())),
                None,
            ),
        };
        // A record's vector is used when that embedder made it, at its size.
        let mut vectors: Vec<Option<Vec<f32>>> = Vec::with_capacity(todo.len());
        for r in &todo {
            let usable = r.embedding.as_ref().filter(|e| {
                Some(&e.model) == model.as_ref()
                    && !e.vector.is_empty()
                    && dims.is_none_or(|d| d == e.vector.len())
            });
            if let Some(e) = usable {
                dims = Some(e.vector.len());
            }
            vectors.push(usable.map(|e| e.vector.clone()));
        }
        let missing: Vec<usize> = (0..todo.len()).filter(|&i| vectors[i].is_none()).collect();
        let mut embedded = 0;
        if !missing.is_empty() {
            let texts: Vec<String> = missing
                .iter()
                .map(|&i| todo[i].item.memory.clone())
                .collect();
            embedded = texts.len();
            let made = self.embed(&texts, &mut usage).await?;
            if let Some(v) = made.first() {
                dims = Some(v.len());
            }
            for (i, v) in missing.into_iter().zip(made) {
                vectors[i] = Some(v);
            }
        }
        let mut written = Vec::new().into_iter();
        if let (false, Some(model), Some(dims)) = (todo.is_empty(), model, dims) {
            let info = EmbedderInfo { model, dims };
            self.store().bind_embedder(&info).await?;
            let batch = todo
                .into_iter()
                .zip(vectors)
                .map(|(r, v)| (r, v.unwrap_or_default()))
                .collect();
            written = self.store().restore(&info, batch).await?.into_iter();
        }
        let outcomes = outcomes
            .into_iter()
            .map(|o| {
                o.or_else(|| written.next())
                    .ok_or_else(|| Error::storage("a restored memory has no outcome"))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Restored {
            outcomes,
            embedded,
            usage,
        })
    }
}

fn write_error(e: std::io::Error) -> Error {
    Error::storage(format!("writing the export: {e}"))
}

/// What an exported memory must be to be restored.
fn check_record(r: &MemoryRecord) -> Result<()> {
    let m = &r.item;
    let what = |detail: String| format!("memory {}: {detail}", m.id);
    let scope = Scope {
        user_id: m.user_id.clone(),
        agent_id: m.agent_id.clone(),
        run_id: m.run_id.clone(),
    };
    scope.validate(true)?;
    if m.memory.trim().is_empty() {
        return Err(Error::invalid("memory", what("the text is empty".into())));
    }
    if m.hash != text_hash(&m.memory) {
        return Err(Error::invalid(
            "hash",
            what("is not the MD5 of the memory's text".into()),
        ));
    }
    if m.valid_to.is_some_and(|to| to < m.valid_from) {
        return Err(Error::invalid(
            "valid_to",
            what("ends before valid_from".into()),
        ));
    }
    if let Some(h) = r.history.iter().find(|h| h.memory_id != m.id) {
        return Err(Error::invalid(
            "history",
            what(format!(
                "history entry {} belongs to memory {}",
                h.id, h.memory_id
            )),
        ));
    }
    if let Some(e) = &r.embedding
        && e.vector.iter().any(|x| !x.is_finite())
    {
        return Err(Error::invalid(
            "embedding",
            what("the vector holds a value that is not a finite number".into()),
        ));
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

impl Memory {
    /// Moves every memory of the store to `embedder`: embeds each text again,
    /// stages the vectors in the store (so an interrupted run resumes where it
    /// stopped), and swaps them all in with one transaction at the end, when the
    /// new embedder is recorded. Writers that change a memory meanwhile are
    /// caught up before the swap. Servers still configured with the old embedder
    /// refuse to embed afterwards (an embedder mismatch) until they are
    /// restarted with the new one.
    /// ([`crate::open::reembed_with_config`] opens the configured embedder and
    /// a [`Memory`] that does not check it against the store.)
    pub async fn reembed(
        &self,
        embedder: &dyn Embedder,
        batch: usize,
        mut progress: impl FnMut(ReembedProgress),
    ) -> Result<ReembedReport> {
        let store = self.store();
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
}
