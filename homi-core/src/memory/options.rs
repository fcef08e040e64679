//! The options and results of the Memory API: what `add`, `search` and
//! `list` take and give back, and what a call cost.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Event, MemoryItem, Metadata};
use crate::error::{Error, Result};
use crate::model::Filter;
use crate::store::Outcome;

/// One entry of `add`'s results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddEvent {
    /// The memory concerned.
    pub id: Uuid,
    /// Its text now (for `DELETE`, the superseded text).
    pub memory: String,
    /// What happened.
    pub event: Event,
    /// The text before an `UPDATE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_memory: Option<String>,
    /// For `DELETE`: the memory that replaced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<Uuid>,
}

impl AddEvent {
    fn new(id: Uuid, memory: String, event: Event) -> AddEvent {
        AddEvent {
            id,
            memory,
            event,
            previous_memory: None,
            superseded_by: None,
        }
    }

    /// The events of what the store did with one change (none for a record
    /// that was already there).
    pub(crate) fn of(outcome: Outcome) -> Vec<AddEvent> {
        match outcome {
            Outcome::Exists { .. } | Outcome::Gone { .. } => Vec::new(),
            Outcome::Added { id, text } => vec![AddEvent::new(id, text, Event::Add)],
            Outcome::Duplicate { id, text } => vec![AddEvent::new(id, text, Event::None)],
            Outcome::Updated {
                id,
                old_text,
                new_text,
            } => vec![AddEvent {
                previous_memory: Some(old_text),
                ..AddEvent::new(id, new_text, Event::Update)
            }],
            Outcome::Superseded {
                id,
                old_text,
                replacement,
                replacement_text,
            } => vec![
                AddEvent {
                    superseded_by: Some(replacement),
                    ..AddEvent::new(id, old_text, Event::Delete)
                },
                AddEvent::new(replacement, replacement_text, Event::Add),
            ],
        }
    }
}

/// What an operation cost.
///
/// ```
/// let u = homi_core::Usage { chat_calls: 1, embedding_calls: 2, prompt_tokens: 300, completion_tokens: 40, ..Default::default() };
/// assert_eq!(u.model_calls(), 3);
/// assert_eq!(u.total_tokens(), 340);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    /// Chat model calls (retries of a call not counted twice; a repair call counts).
    pub chat_calls: u32,
    /// Embeddings requests.
    pub embedding_calls: u32,
    /// Chat input tokens.
    pub prompt_tokens: u64,
    /// Chat output tokens.
    pub completion_tokens: u64,
    /// Embedding input tokens.
    pub embedding_tokens: u64,
    /// Wall time of the whole operation, in milliseconds.
    pub duration_ms: f64,
    /// Of that, milliseconds spent waiting for the provider (chat model and
    /// embedder); the rest is Homi's own time.
    #[serde(default)]
    pub provider_ms: f64,
}

impl Usage {
    /// All model calls (chat and embeddings).
    pub fn model_calls(&self) -> u32 {
        self.chat_calls + self.embedding_calls
    }
    /// All tokens.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens + self.embedding_tokens
    }
}

/// The answer of `add`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddResult {
    /// One entry per fact.
    pub results: Vec<AddEvent>,
    /// What it cost.
    pub usage: Usage,
}

/// The answer of `search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    /// Memories, closest first.
    pub results: Vec<MemoryItem>,
    /// What it cost.
    pub usage: Usage,
}

/// Options of `add`.
///
/// ```
/// use homi_core::AddOptions;
/// let meta = serde_json::json!({"source": "onboarding"}).as_object().unwrap().clone();
/// let opts = AddOptions::raw().metadata(meta);       // store messages verbatim, with metadata
/// assert!(!opts.infer);
/// assert!(AddOptions::default().infer);               // extract facts with the model
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AddOptions {
    /// Extract facts with the chat model (`true`, default) or store each
    /// non-system message verbatim (`false`).
    pub infer: bool,
    /// Metadata for every memory written.
    pub metadata: Option<Metadata>,
    /// When the messages were said (mem0's `timestamp=`): the memories'
    /// `created_at` and the start of their validity window. `None`: now.
    pub timestamp: Option<DateTime<Utc>>,
    /// Extraction instructions for this call (mem0's `prompt=`), in place
    /// of the configured ones ([`crate::config::MemoryConfig::extraction_instructions`]).
    pub instructions: Option<String>,
    /// mem0's `memory_type="procedural_memory"`: with an `agent_id` in the
    /// scope, the chat model summarises the messages as the agent's
    /// procedure so far (what it did, step by step, with results), stored as
    /// one memory whose metadata says `memory_type: procedural_memory`.
    pub procedural: bool,
    /// When the memories stop holding (mem0's `expiration_date`): the end of
    /// their validity window. Past it they leave `search`, `get_all` and
    /// `count` unless `show_expired` is asked for; `get` and `as_of` reads
    /// still see them. `None`: they hold until superseded or deleted.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Default for AddOptions {
    fn default() -> Self {
        Self {
            infer: true,
            metadata: None,
            timestamp: None,
            instructions: None,
            procedural: false,
            expires_at: None,
        }
    }
}

impl AddOptions {
    /// Stores messages verbatim, without the chat model.
    pub fn raw() -> Self {
        Self {
            infer: false,
            ..Self::default()
        }
    }
    /// Sets when the messages were said (see [`parse_timestamp`](crate::model::types::parse_timestamp)).
    pub fn timestamp(mut self, at: DateTime<Utc>) -> Self {
        self.timestamp = Some(at);
        self
    }
    /// Sets `infer`.
    pub fn infer(mut self, infer: bool) -> Self {
        self.infer = infer;
        self
    }
    /// Sets the metadata.
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = Some(metadata);
        self
    }
    /// Summarises the messages as the agent's procedure (see [`AddOptions::procedural`]).
    pub fn procedural(mut self, procedural: bool) -> Self {
        self.procedural = procedural;
        self
    }
    /// Sets when the memories expire (see [`AddOptions::expires_at`]).
    pub fn expires_at(mut self, at: DateTime<Utc>) -> Self {
        self.expires_at = Some(at);
        self
    }
    /// Sets this call's extraction instructions (see [`AddOptions::instructions`]).
    pub fn instructions(mut self, instructions: impl Into<String>) -> Self {
        let text = instructions.into();
        self.instructions = (!text.trim().is_empty()).then_some(text);
        self
    }
}

/// A change to one memory ([`crate::Memory::edit`]): its text, its metadata
/// and its expiry, any of them.
///
/// ```
/// use homi_core::MemoryEdit;
/// let tomorrow = chrono::Utc::now() + chrono::Duration::days(1);
/// let meta = serde_json::json!({"topic": "travel"}).as_object().unwrap().clone();
/// let edit = MemoryEdit::default().merge_metadata(meta).expires_at(Some(tomorrow));
/// assert!(edit.text.is_none() && edit.merge_metadata);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct MemoryEdit {
    /// The new text (embedded again); `None` keeps it.
    pub text: Option<String>,
    /// Metadata: merged over the stored keys with `merge_metadata`, else
    /// replacing them; `None` keeps it.
    pub metadata: Option<Metadata>,
    /// Merge `metadata` instead of replacing.
    pub merge_metadata: bool,
    /// A new expiry (see [`AddOptions::expires_at`]): `Some(None)` lifts it,
    /// `None` keeps it.
    pub expires_at: Option<Option<DateTime<Utc>>>,
}

impl MemoryEdit {
    /// Sets the new text.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }
    /// Replaces the metadata.
    pub fn replace_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = Some(metadata);
        self.merge_metadata = false;
        self
    }
    /// Merges these keys into the metadata.
    pub fn merge_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = Some(metadata);
        self.merge_metadata = true;
        self
    }
    /// Sets (`Some`) or lifts (`None`) the expiry.
    pub fn expires_at(mut self, at: Option<DateTime<Utc>>) -> Self {
        self.expires_at = Some(at);
        self
    }
}

/// Default `limit` of `search` and `get_all`, as in mem0.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest accepted `limit`.
pub const MAX_LIMIT: usize = 10_000;

/// Options of `search`.
///
/// ```
/// use homi_core::{Filter, SearchOptions};
/// let yesterday = chrono::Utc::now() - chrono::Duration::days(1);
/// let opts = SearchOptions::default()
///     .limit(5)
///     .threshold(0.6)
///     .filters(Filter::eq("category", "food"))
///     .as_of(yesterday);                              // what was true then
/// assert_eq!(opts.limit, 5);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SearchOptions {
    /// At most this many results (default 100).
    pub limit: usize,
    /// Metadata filters.
    pub filters: Option<Filter>,
    /// Only results with at least this score.
    pub threshold: Option<f32>,
    /// Search what was valid at this time (superseded memories included).
    pub as_of: Option<DateTime<Utc>>,
    /// Also return superseded memories.
    pub include_superseded: bool,
    /// How memories are found: by meaning and words (default), meaning
    /// alone, or words alone.
    pub mode: SearchMode,
    /// Each result says how its score was made (`score_details`).
    pub explain: bool,
    /// With a reranker configured, the chat model scores each result and
    /// the results are ordered by that (`rerank_score`); without one,
    /// nothing changes (as in mem0).
    pub rerank: bool,
    /// Also return memories past their expiry ([`AddOptions::expires_at`]).
    pub show_expired: bool,
    /// The day relative dates in the query are read from ("yesterday",
    /// "last week", "3 days ago", "last month"…; mem0's `reference_date`):
    /// memories said within the day or days they name rank higher, as for a
    /// date the query spells out (hybrid mode, the default; see
    /// [`crate::memory::rank::relative_dates`]). `None`: relative dates are
    /// not read.
    pub reference_date: Option<NaiveDate>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            filters: None,
            threshold: None,
            as_of: None,
            include_superseded: false,
            mode: SearchMode::Hybrid,
            explain: false,
            rerank: false,
            show_expired: false,
            reference_date: None,
        }
    }
}

/// How `search` finds memories.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SearchMode {
    /// The keyword score and the semantic score, fused (the default).
    #[default]
    Hybrid,
    /// Vector similarity to the query's embedding alone.
    Semantic,
    /// Full-text relevance alone (needs no embedder).
    Keyword,
}

impl SearchMode {
    /// The wire name: `hybrid`, `semantic` or `keyword`.
    pub fn as_str(self) -> &'static str {
        match self {
            SearchMode::Hybrid => "hybrid",
            SearchMode::Semantic => "semantic",
            SearchMode::Keyword => "keyword",
        }
    }
}

impl std::str::FromStr for SearchMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "hybrid" => Ok(SearchMode::Hybrid),
            "semantic" | "vector" => Ok(SearchMode::Semantic),
            "keyword" | "fulltext" | "bm25" => Ok(SearchMode::Keyword),
            other => Err(Error::invalid(
                "mode",
                format!("'{other}' is not a search mode: use hybrid, semantic or keyword"),
            )),
        }
    }
}

impl SearchOptions {
    /// Also returns expired memories (see [`SearchOptions::show_expired`]).
    pub fn show_expired(mut self, yes: bool) -> Self {
        self.show_expired = yes;
        self
    }
    /// Reads relative dates in the query from this day (see [`SearchOptions::reference_date`]).
    pub fn reference_date(mut self, day: NaiveDate) -> Self {
        self.reference_date = Some(day);
        self
    }
    /// Each result says how its score was made (`score_details`).
    pub fn explain(mut self, explain: bool) -> Self {
        self.explain = explain;
        self
    }
    /// Reranks with the configured reranker (see [`SearchOptions::rerank`]).
    pub fn rerank(mut self, rerank: bool) -> Self {
        self.rerank = rerank;
        self
    }
    /// Sets how memories are found.
    pub fn mode(mut self, mode: SearchMode) -> Self {
        self.mode = mode;
        self
    }
    /// Sets the limit.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
    /// Sets the filters.
    pub fn filters(mut self, filters: Filter) -> Self {
        self.filters = Some(filters);
        self
    }
    /// Sets the score threshold.
    pub fn threshold(mut self, threshold: f32) -> Self {
        self.threshold = Some(threshold);
        self
    }
    /// Reads as of this time.
    pub fn as_of(mut self, at: DateTime<Utc>) -> Self {
        self.as_of = Some(at);
        self
    }
    /// Includes superseded memories.
    pub fn include_superseded(mut self, yes: bool) -> Self {
        self.include_superseded = yes;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        check_limit(self.limit)?;
        if let Some(t) = self.threshold
            && !(0.0..=1.0).contains(&t)
        {
            return Err(Error::invalid(
                "threshold",
                format!("{t} is not within [0, 1]"),
            ));
        }
        Ok(())
    }
}

/// Options of `get_all`.
///
/// ```
/// use homi_core::ListOptions;
/// let opts = ListOptions::default().limit(1000).include_superseded(true);
/// assert!(opts.include_superseded);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ListOptions {
    /// At most this many (default 100), newest first.
    pub limit: usize,
    /// Metadata filters.
    pub filters: Option<Filter>,
    /// What was valid at this time.
    pub as_of: Option<DateTime<Utc>>,
    /// Also list superseded memories.
    pub include_superseded: bool,
    /// Also list memories past their expiry ([`AddOptions::expires_at`]).
    pub show_expired: bool,
}

impl Default for ListOptions {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            filters: None,
            as_of: None,
            include_superseded: false,
            show_expired: false,
        }
    }
}

impl ListOptions {
    /// Sets the limit.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
    /// Sets the filters.
    pub fn filters(mut self, filters: Filter) -> Self {
        self.filters = Some(filters);
        self
    }
    /// Reads as of this time.
    pub fn as_of(mut self, at: DateTime<Utc>) -> Self {
        self.as_of = Some(at);
        self
    }
    /// Includes superseded memories.
    pub fn include_superseded(mut self, yes: bool) -> Self {
        self.include_superseded = yes;
        self
    }
    /// Includes expired memories (see [`ListOptions::show_expired`]).
    pub fn show_expired(mut self, yes: bool) -> Self {
        self.show_expired = yes;
        self
    }
}

pub(crate) fn check_limit(limit: usize) -> Result<()> {
    if limit == 0 || limit > MAX_LIMIT {
        return Err(Error::invalid(
            "limit",
            format!("{limit} is out of range (1..={MAX_LIMIT})"),
        ));
    }
    Ok(())
}

/// One page of a listing ([`crate::Memory::list_page`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct MemoryPage {
    /// The memories, newest first.
    pub results: Vec<crate::model::MemoryItem>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A page's cursor: the last memory's time and id, URL-safe.
pub(crate) fn encode_cursor(last: &crate::model::MemoryItem) -> String {
    use base64::Engine as _;
    let raw = format!(
        "{}/{}",
        last.created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        last.id
    );
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// The memory a cursor names, or an error naming `cursor`.
pub(crate) fn decode_cursor(cursor: &str) -> crate::Result<(DateTime<Utc>, uuid::Uuid)> {
    use base64::Engine as _;
    let bad = || {
        crate::Error::invalid(
            "cursor",
            "is not a cursor of this listing (use next_cursor as given)",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (at, id) = raw.split_once('/').ok_or_else(bad)?;
    let at = DateTime::parse_from_rfc3339(at)
        .map_err(|_| bad())?
        .to_utc();
    let id = uuid::Uuid::parse_str(id).map_err(|_| bad())?;
    Ok((at, id))
}
