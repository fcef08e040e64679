//! The shapes of the Memory API: scopes, memories, events, options, results.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::filter::Filter;
use crate::error::{Error, Result};

/// Metadata attached to a memory: a JSON object.
pub type Metadata = Map<String, Value>;

/// Whose memories: a user, an agent, a run (or a combination). Every query is
/// filtered by the scope in SQL; a memory is in a scope when it carries every
/// id the scope names.
///
/// ```
/// use homi_core::Scope;
/// let s = Scope::user("alice").with_agent("travel-bot");
/// assert_eq!(s.user_id.as_deref(), Some("alice"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scope {
    /// The user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The run (one session of an agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

const MAX_ID_LEN: usize = 255;

impl Scope {
    /// A user's memories.
    pub fn user(id: impl Into<String>) -> Self {
        Self {
            user_id: Some(id.into()),
            ..Self::default()
        }
    }
    /// An agent's memories.
    pub fn agent(id: impl Into<String>) -> Self {
        Self {
            agent_id: Some(id.into()),
            ..Self::default()
        }
    }
    /// A run's memories.
    pub fn run(id: impl Into<String>) -> Self {
        Self {
            run_id: Some(id.into()),
            ..Self::default()
        }
    }
    /// Also require this user.
    pub fn with_user(mut self, id: impl Into<String>) -> Self {
        self.user_id = Some(id.into());
        self
    }
    /// Also require this agent.
    pub fn with_agent(mut self, id: impl Into<String>) -> Self {
        self.agent_id = Some(id.into());
        self
    }
    /// Also require this run.
    pub fn with_run(mut self, id: impl Into<String>) -> Self {
        self.run_id = Some(id.into());
        self
    }

    /// No restriction. Accepted only by the operations on one memory id (`get`,
    /// `update`, `delete`, `history`), for callers trusted with every scope;
    /// `add`, `search`, `get_all` and `delete_all` refuse it.
    pub fn any() -> Self {
        Self::default()
    }

    /// Whether no id is given.
    pub fn is_empty(&self) -> bool {
        self.user_id.is_none() && self.agent_id.is_none() && self.run_id.is_none()
    }

    /// Checks each given id; with `required`, at least one must be given.
    pub(crate) fn validate(&self, required: bool) -> Result<()> {
        for (name, v) in [
            ("user_id", &self.user_id),
            ("agent_id", &self.agent_id),
            ("run_id", &self.run_id),
        ] {
            if let Some(v) = v {
                if v.trim().is_empty() {
                    return Err(Error::invalid(name, "must not be empty"));
                }
                if v.len() > MAX_ID_LEN {
                    return Err(Error::invalid(
                        name,
                        format!("is longer than {MAX_ID_LEN} bytes"),
                    ));
                }
                if v.chars().any(char::is_control) {
                    return Err(Error::invalid(name, "contains control characters"));
                }
            }
        }
        if required && self.is_empty() {
            return Err(Error::invalid(
                "user_id",
                "at least one of user_id, agent_id or run_id is required",
            ));
        }
        Ok(())
    }

    /// Fills ids this scope lacks from `other`; a conflicting id is an error.
    pub fn merge(mut self, other: Scope) -> Result<Scope> {
        for (name, mine, theirs) in [
            ("user_id", &mut self.user_id, other.user_id),
            ("agent_id", &mut self.agent_id, other.agent_id),
            ("run_id", &mut self.run_id, other.run_id),
        ] {
            match (mine.as_ref(), theirs) {
                (Some(a), Some(b)) if *a != b => {
                    return Err(Error::invalid(
                        name,
                        format!("given twice with different values ('{a}' and '{b}')"),
                    ));
                }
                (None, Some(b)) => *mine = Some(b),
                _ => {}
            }
        }
        Ok(self)
    }
}

/// One stored memory, as returned by `get`, `get_all` and `search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemoryItem {
    /// Its id.
    pub id: Uuid,
    /// The statement.
    pub memory: String,
    /// MD5 of the statement, hex.
    pub hash: String,
    /// Free-form metadata.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Metadata,
    /// Similarity to the query in [0, 1], higher is closer (search only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Owner ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Agent id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Run id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Who said it (the message's `name`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
    /// The role of the message it came from (`infer=false` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Since when it holds.
    pub valid_from: DateTime<Utc>,
    /// Until when it held; `None` while current.
    pub valid_to: Option<DateTime<Utc>>,
    /// The memory that replaced it, when superseded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<Uuid>,
}

impl MemoryItem {
    /// Whether it is current (not superseded).
    pub fn is_current(&self) -> bool {
        self.valid_to.is_none()
    }
}

/// What `add` did with one fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Event {
    /// A new memory.
    Add,
    /// An existing memory's text changed (same id).
    Update,
    /// An existing memory was contradicted and superseded (or explicitly deleted,
    /// in history).
    Delete,
    /// Nothing to do: already known.
    None,
}

impl Event {
    /// `ADD`, `UPDATE`, `DELETE` or `NONE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Add => "ADD",
            Event::Update => "UPDATE",
            Event::Delete => "DELETE",
            Event::None => "NONE",
        }
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn parse(s: &str) -> Option<Event> {
        match s {
            "ADD" => Some(Event::Add),
            "UPDATE" => Some(Event::Update),
            "DELETE" => Some(Event::Delete),
            "NONE" => Some(Event::None),
            _ => None,
        }
    }
}

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

/// One change of a memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryEntry {
    /// Entry id.
    pub id: Uuid,
    /// The memory.
    pub memory_id: Uuid,
    /// Text before (none for `ADD`, and none once explicitly deleted).
    pub old_memory: Option<String>,
    /// Text after.
    pub new_memory: Option<String>,
    /// `ADD`, `UPDATE` or `DELETE`.
    pub event: Event,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When the entry was last changed.
    pub updated_at: Option<DateTime<Utc>>,
    /// Whether the memory was deleted by this change.
    pub is_deleted: bool,
    /// Who.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
    /// Role of the message behind the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
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
}

impl Default for AddOptions {
    fn default() -> Self {
        Self {
            infer: true,
            metadata: None,
            timestamp: None,
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
    /// Sets when the messages were said (see [`parse_timestamp`]).
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

/// Reads a time given as an ISO 8601 / RFC 3339 string (`2023-05-08T13:56:00Z`;
/// without an offset it is UTC; a date alone is its midnight) or as Unix
/// seconds (`1683554160`, fractions allowed). `field` names the input in the error.
///
/// ```
/// use homi_core::memory::parse_timestamp;
/// let a = parse_timestamp("timestamp", "2023-05-08T13:56:00+00:00").unwrap();
/// assert_eq!(parse_timestamp("timestamp", "1683554160").unwrap(), a);
/// assert_eq!(parse_timestamp("timestamp", "2023-05-08 13:56").unwrap(), a);
/// assert!(parse_timestamp("timestamp", "8 May").is_err());
/// ```
pub fn parse_timestamp(field: &str, value: &str) -> Result<DateTime<Utc>> {
    let v = value.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(v, f) {
            return Ok(t.and_utc());
        }
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(v, f) {
            return Ok(t.with_timezone(&Utc));
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    if let Ok(secs) = v.parse::<f64>() {
        return unix_seconds(field, secs);
    }
    Err(Error::invalid(
        field,
        format!("'{value}' is not a time: give ISO 8601 (2023-05-08T13:56:00Z) or Unix seconds"),
    ))
}

/// A time from Unix seconds (`field` names the input in the error).
pub fn unix_seconds(field: &str, secs: f64) -> Result<DateTime<Utc>> {
    if !secs.is_finite() {
        return Err(Error::invalid(field, "is not a finite number of seconds"));
    }
    let micros = (secs * 1e6).round();
    if micros.abs() >= 8.0e18 {
        return Err(Error::invalid(
            field,
            format!("{secs} seconds is out of range"),
        ));
    }
    DateTime::from_timestamp_micros(micros as i64)
        .ok_or_else(|| Error::invalid(field, format!("{secs} seconds is out of range")))
}

impl SearchOptions {
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
}

impl Default for ListOptions {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            filters: None,
            as_of: None,
            include_superseded: false,
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

/// Parses a memory id.
pub fn parse_memory_id(id: &str) -> Result<Uuid> {
    Uuid::parse_str(id.trim())
        .map_err(|_| Error::invalid("memory_id", format!("'{id}' is not a UUID")))
}

/// MD5 of a text, lower-case hex (mem0's `hash`).
pub fn text_hash(text: &str) -> String {
    format!("{:x}", md5::compute(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn scope_validation() {
        assert!(Scope::any().validate(true).is_err());
        assert!(Scope::any().validate(false).is_ok());
        let e = Scope::user("  ").validate(true).unwrap_err();
        assert!(e.to_string().contains("user_id"));
        assert!(Scope::agent("a").validate(true).is_ok());
    }

    #[test]
    fn scope_merge_detects_conflicts() {
        let s = Scope::user("a").merge(Scope::agent("b")).unwrap();
        assert_eq!(s, Scope::user("a").with_agent("b"));
        assert!(Scope::user("a").merge(Scope::user("b")).is_err());
    }

    #[test]
    fn hash_is_md5_hex() {
        assert_eq!(text_hash(""), "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn event_names() {
        assert_eq!(serde_json::to_string(&Event::Delete).unwrap(), "\"DELETE\"");
        assert_eq!(Event::parse("NONE"), Some(Event::None));
    }
}
