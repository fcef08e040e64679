//! The memory store's port: the [`Store`] trait the Memory client calls, and
//! the rows it takes and gives back. Every method takes the caller's scope
//! (or, for operations on ids, its [`Access`]) and filters by it in SQL; an
//! empty scope matches nothing.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::Result;
use crate::model::{Access, Filter, HistoryEntry, MemoryItem, Metadata, Scope};

/// The embedder a store's vectors were made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedderInfo {
    /// Model name.
    pub model: String,
    /// Vector size.
    pub dims: usize,
}

impl EmbedderInfo {
    /// `Ok` when `configured` is this (the stored) embedder, otherwise the
    /// `EmbedderMismatch` that names both.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn must_match(&self, configured: &EmbedderInfo) -> Result<()> {
        if self == configured {
            Ok(())
        } else {
            Err(crate::Error::EmbedderMismatch {
                stored: self.to_string(),
                configured: configured.to_string(),
            })
        }
    }
}

impl std::fmt::Display for EmbedderInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} dims)", self.model, self.dims)
    }
}

/// A memory to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMemory {
    /// Its id.
    pub id: Uuid,
    /// The statement.
    pub text: String,
    /// MD5 of the statement.
    pub hash: String,
    /// Metadata.
    pub metadata: Metadata,
    /// Owner ids.
    pub scope: Scope,
    /// Who said it.
    pub actor_id: Option<String>,
    /// Role of the source message.
    pub role: Option<String>,
    /// Its embedding (any length matching the store's dimension; normalised by the store).
    pub embedding: Vec<f32>,
    /// When it was said (`timestamp=` on add): its `created_at` and the start
    /// of its validity window. `None` is the time of the write.
    pub said_at: Option<DateTime<Utc>>,
    /// When it stops holding (the end of its validity window, mem0's
    /// `expiration_date`); `None` while it holds until superseded.
    pub expires_at: Option<DateTime<Utc>>,
}

/// One change, applied by [`Store::apply`] with the others in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Insert, unless a current memory with the same hash exists in its scope.
    Add(NewMemory),
    /// Replace a memory's text (same id); history keeps the old text. When the
    /// target is gone (deleted meanwhile), the text is added as a new memory.
    Update {
        /// Target.
        id: Uuid,
        /// New text.
        text: String,
        /// Its hash.
        hash: String,
        /// Its embedding; `None` keeps the stored one (the text is unchanged).
        embedding: Option<Vec<f32>>,
        /// Metadata keys to set (merged over the existing metadata); `None` keeps it.
        metadata: Option<Metadata>,
        /// Replace the metadata instead of merging.
        replace_metadata: bool,
        /// Who.
        actor_id: Option<String>,
        /// Role.
        role: Option<String>,
        /// A new end of its validity window: `Some(None)` lifts an expiry,
        /// `None` leaves it as it is. Refused for a superseded memory.
        expires: Option<Option<DateTime<Utc>>>,
    },
    /// Close the target's validity window and point it at `replacement`, which
    /// is inserted. When the target is no longer current, only the replacement
    /// is inserted.
    Supersede {
        /// Target.
        id: Uuid,
        /// What replaces it.
        replacement: NewMemory,
    },
    /// Insert a memory from elsewhere, keeping its id and timestamps; skipped
    /// when the id exists ([`Outcome::Exists`]) or its text is already current
    /// in its scope ([`Outcome::Duplicate`]).
    Import {
        /// The memory (its `id` is kept).
        memory: NewMemory,
        /// Its original creation time.
        created_at: DateTime<Utc>,
        /// Its original last change.
        updated_at: DateTime<Utc>,
    },
}

/// The deletions a write's scope had seen when its work began: taken with
/// [`Store::deletion_mark`] before the slow part of a write (embedding,
/// the model's decisions) and given to [`Store::apply`], which then writes
/// nothing if a delete-all covering the scope came since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletionMark {
    pub(crate) scope: Scope,
    pub(crate) epochs: Vec<(String, i64)>,
}

/// What happened to one [`Change`].
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Not inserted: a memory with this id exists (an import ran before).
    Exists {
        /// The id.
        id: Uuid,
    },
    /// Inserted.
    Added {
        /// The new memory.
        id: Uuid,
        /// Its text.
        text: String,
    },
    /// Not inserted: a current memory with this hash exists in the scope.
    Duplicate {
        /// The existing memory.
        id: Uuid,
        /// Its text.
        text: String,
    },
    /// Not written: the memory to update is gone (deleted meanwhile); an
    /// update never brings a deleted memory back.
    Gone {
        /// The memory.
        id: Uuid,
    },
    /// Text replaced.
    Updated {
        /// The memory.
        id: Uuid,
        /// Text before.
        old_text: String,
        /// Text now.
        new_text: String,
    },
    /// Target superseded by a new memory.
    Superseded {
        /// The old memory.
        id: Uuid,
        /// Its text.
        old_text: String,
        /// The replacement.
        replacement: Uuid,
        /// The replacement's text.
        replacement_text: String,
    },
}

/// A memory whole — text, scopes, validity window, metadata, history and
/// optionally its vector — as [`Store::export`] reads it and
/// [`Store::restore`] writes it back. One line of `homi memory export`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MemoryRecord {
    /// The memory (its `score` is never set).
    #[serde(flatten)]
    pub item: MemoryItem,
    /// Its changes, oldest first.
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// Its vector and the model that made it, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<RecordEmbedding>,
}

/// A memory's vector and the embedding model that made it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecordEmbedding {
    /// The embedding model.
    pub model: String,
    /// The vector, as stored (unit length).
    pub vector: Vec<f32>,
}

/// A memory waiting for its vector from the new embedder ([`Store::reembed_next`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReembedItem {
    /// The memory.
    pub id: Uuid,
    /// Its text.
    pub text: String,
    /// Its hash: a vector staged for an older text is not used.
    pub hash: String,
}

/// Where a re-embedding stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReembedBatch {
    /// Memories in the store.
    pub total: u64,
    /// Memories whose new vector is staged (from this run or an interrupted one).
    pub done: u64,
    /// The next memories to embed (empty when every memory has its new vector).
    pub todo: Vec<ReembedItem>,
}

/// A memory with its place among the memories of its scope, from
/// [`Store::neighbourhood`].
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbour {
    /// The memory; `score` is its semantic score for the query.
    pub item: MemoryItem,
    /// The memory written just before it (asked-for ids only).
    pub before: Option<Uuid>,
    /// The memory written just after it (asked-for ids only).
    pub after: Option<Uuid>,
}

/// What a hybrid search ranks, from [`Store::hybrid_candidates`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HybridCandidates {
    /// The keyword candidates, best first, with the store's raw keyword
    /// relevance (as [`Store::keyword_search`] scores them).
    pub keyword: Vec<(Uuid, f32)>,
    /// The candidates of both rankings and the memories written around them,
    /// each once, with its semantic score (as [`Store::neighbourhood`]).
    pub loaded: Vec<Neighbour>,
}

/// [`Store::hybrid_candidates`] by its definition: a semantic and a keyword
/// search, then the neighbourhood of their results.
pub async fn composed_hybrid_candidates<S: Store + ?Sized>(
    store: &S,
    scope: &Scope,
    query: &[f32],
    terms: &[String],
    params: &ReadParams,
) -> Result<HybridCandidates> {
    let (semantic, keyword) = futures::try_join!(
        store.search(scope, query, params),
        store.keyword_search(scope, terms, params)
    )?;
    let mut ids: Vec<Uuid> = semantic.iter().chain(&keyword).map(|m| m.id).collect();
    ids.sort_unstable();
    ids.dedup();
    let loaded = store.neighbourhood(scope, &ids, query, params).await?;
    Ok(HybridCandidates {
        keyword: keyword
            .iter()
            .map(|m| (m.id, m.score.unwrap_or(0.0)))
            .collect(),
        loaded,
    })
}

/// What `search` and `list` look at.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadParams {
    /// At most this many.
    pub limit: usize,
    /// Metadata filters.
    pub filter: Option<Filter>,
    /// What was valid at this time (overrides `include_superseded`).
    pub as_of: Option<DateTime<Utc>>,
    /// Superseded memories too.
    pub include_superseded: bool,
    /// Memories past their expiry too (mem0's `show_expired`).
    pub show_expired: bool,
    /// Minimum score (search).
    pub threshold: Option<f32>,
    /// `list` only: memories listed after this one (its `created_at` and
    /// id), for paging; newest first.
    pub after: Option<(DateTime<Utc>, uuid::Uuid)>,
}

/// The store: memories, their embeddings and history, and store metadata.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// The embedder recorded in the store, if any memory was ever written.
    async fn embedder(&self) -> Result<Option<EmbedderInfo>>;

    /// Records the embedder, or fails with `EmbedderMismatch` if another one is recorded.
    async fn bind_embedder(&self, info: &EmbedderInfo) -> Result<()>;

    /// Current memories of `scope` whose hash is in `hashes`.
    async fn find_by_hash(&self, scope: &Scope, hashes: &[String]) -> Result<Vec<MemoryItem>>;

    /// The memories of `scope` closest to `query`, best first, `score` set.
    async fn search(
        &self,
        scope: &Scope,
        query: &[f32],
        params: &ReadParams,
    ) -> Result<Vec<MemoryItem>>;

    /// The memories of `scope` whose text holds any of `terms` (lower-case
    /// words, see [`crate::model::keywords`]), best full-text match first.
    /// `score` is the BM25 relevance computed over the scope, each stemmed
    /// word once per memory, with [`crate::model::keywords::BM25_K1`] and
    /// `BM25_B` (on SQLite from the scope's in-memory index, on Postgres in
    /// SQL): higher is better, and it only means something relative to the
    /// other results of the same call. `params.threshold` is not applied.
    async fn keyword_search(
        &self,
        scope: &Scope,
        terms: &[String],
        params: &ReadParams,
    ) -> Result<Vec<MemoryItem>>;

    /// The memories `ids` of `scope` and, for each, the memories written just
    /// before and just after it in `scope` among those `params` reads
    /// (validity and filters), each once, with its semantic score for `query`
    /// (unit length; the score is 0 when the sizes differ). Ids not in
    /// `scope` are left out.
    async fn neighbourhood(
        &self,
        scope: &Scope,
        ids: &[Uuid],
        query: &[f32],
        params: &ReadParams,
    ) -> Result<Vec<Neighbour>>;

    /// Everything a hybrid search of `scope` ranks: the best `params.limit`
    /// of each ranking ([`Store::search`] for `query`, [`Store::keyword_search`]
    /// for `terms`) and their [`Store::neighbourhood`]. A store may answer it
    /// in fewer reads; this composition is the definition.
    async fn hybrid_candidates(
        &self,
        scope: &Scope,
        query: &[f32],
        terms: &[String],
        params: &ReadParams,
    ) -> Result<HybridCandidates> {
        composed_hybrid_candidates(self, scope, query, terms, params).await
    }

    /// One memory, if `access` reaches it.
    async fn get(&self, id: Uuid, access: &Access) -> Result<Option<MemoryItem>>;

    /// Memories of `scope`, newest first.
    async fn list(&self, scope: &Scope, params: &ReadParams) -> Result<Vec<MemoryItem>>;

    /// How many memories of `scope` a [`Store::list`] with these parameters
    /// would return without a limit (`params.limit` is ignored).
    async fn count(&self, scope: &Scope, params: &ReadParams) -> Result<u64>;

    /// The mark a write to `scope` takes before its slow part.
    async fn deletion_mark(&self, scope: &Scope) -> Result<DeletionMark>;

    /// Applies changes in one transaction, writing history. Update and
    /// supersede targets must be reached by `access`. With `embedder`, the
    /// vectors were made by it: the change fails with `EmbedderMismatch`
    /// (nothing written) if the store was moved to another embedder meanwhile.
    /// With `since`, it fails with `Conflict` (nothing written) if a
    /// delete-all covering the mark's scope came after the mark.
    async fn apply(
        &self,
        access: &Access,
        embedder: Option<&EmbedderInfo>,
        since: Option<&DeletionMark>,
        changes: Vec<Change>,
    ) -> Result<Vec<Outcome>>;

    /// Deletes one memory, its embedding and the texts of its history. Returns
    /// whether it existed where `access` reaches.
    async fn delete(&self, id: Uuid, access: &Access) -> Result<bool>;

    /// Deletes every memory of `scope` (all of them, superseded included).
    async fn delete_scope(&self, scope: &Scope) -> Result<u64>;

    /// A memory's history, oldest first, if `access` reaches it.
    async fn history(&self, id: Uuid, access: &Access) -> Result<Vec<HistoryEntry>>;

    /// Deletes everything, the recorded embedder included.
    async fn reset(&self) -> Result<()>;

    /// Up to `limit` memories `access` reaches (superseded ones included)
    /// with their history, ordered by id, after `after`; with their vectors
    /// when `embeddings` is set.
    async fn export(
        &self,
        access: &Access,
        after: Option<Uuid>,
        limit: usize,
        embeddings: bool,
    ) -> Result<Vec<MemoryRecord>>;

    /// The ids of `ids` that are memories of the store (any scope).
    async fn existing_ids(&self, ids: &[Uuid]) -> Result<std::collections::HashSet<Uuid>>;

    /// Writes records back as they were (ids, timestamps, validity windows,
    /// history), each with its vector made by `embedder` (which must be the
    /// recorded one), in one transaction. A record whose id exists is skipped
    /// ([`Outcome::Exists`]); a current record whose text is already current
    /// under another id in its scope too ([`Outcome::Duplicate`]).
    async fn restore(
        &self,
        embedder: &EmbedderInfo,
        records: Vec<(MemoryRecord, Vec<f32>)>,
    ) -> Result<Vec<Outcome>>;

    /// Starts or resumes moving every memory to the embedder `target`: the
    /// progress, and the next `limit` memories without a staged vector. A
    /// different target than the one staged so far starts over.
    async fn reembed_next(&self, target: &EmbedderInfo, limit: usize) -> Result<ReembedBatch>;

    /// Stages new vectors (`(id, hash the vector was made from, vector)`) for `target`.
    async fn reembed_stage(
        &self,
        target: &EmbedderInfo,
        vectors: Vec<(Uuid, String, Vec<f32>)>,
    ) -> Result<()>;

    /// Swaps every memory to its staged vector and records the new embedder
    /// (with the vectors' dimension), in one transaction. `None` (and no
    /// change) if some memory has no staged vector for its current text.
    async fn reembed_finish(&self, target: &EmbedderInfo) -> Result<Option<EmbedderInfo>>;

    /// The conversations kept in the same database, if this store has them.
    #[cfg(feature = "chat")]
    fn chat_store(
        self: std::sync::Arc<Self>,
    ) -> Option<std::sync::Arc<dyn super::chat::ChatStore>> {
        None
    }

    /// The durable job queue kept in the same database, if this store has one.
    fn job_store(self: std::sync::Arc<Self>) -> Option<std::sync::Arc<dyn super::jobs::JobStore>> {
        None
    }

    /// The users' daily spend kept in the same database, if this store has it.
    fn usage_store(
        self: std::sync::Arc<Self>,
    ) -> Option<std::sync::Arc<dyn super::usage::UsageStore>> {
        None
    }
}

/// Cosine similarity in [-1, 1] to Homi's score in [0, 1].
pub fn score_from_cosine(cos: f32) -> f32 {
    ((1.0 + cos) / 2.0).clamp(0.0, 1.0)
}

/// Normalises a vector to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    // A vector already of unit length is left bit for bit as it is, so an
    // exported vector comes back exactly.
    if norm > 0.0 && norm.is_finite() && (norm - 1.0).abs() > 1e-6 {
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
}
