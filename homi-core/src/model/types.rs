//! What a memory is: its scope, its text and metadata, its history, and the
//! parsing of the ids and times that name them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

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

/// Whose memories an operation on memory ids may reach: one scope, or —
/// said on purpose — every scope.
///
/// An empty [`Scope`] never means "everyone": an operation given one refuses
/// it, and in SQL it matches nothing. Only [`Access::Any`] reaches every
/// user's memories; the doors use it where the caller is trusted with all of
/// them (an operator's `homi memory export`, mem0's global memory ids in the
/// Python package), never from a request's data.
///
/// ```
/// use homi_core::{Access, Scope};
/// let alice: Access = Scope::user("alice").into();
/// assert_eq!(alice.scope(), Some(&Scope::user("alice")));
/// assert_eq!(Access::Any.scope(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// The memories of this scope only (at least one id given).
    Scope(Scope),
    /// Every scope's memories.
    Any,
}

impl Access {
    /// The scope it is restricted to (`None` for [`Access::Any`]).
    pub fn scope(&self) -> Option<&Scope> {
        match self {
            Access::Scope(s) => Some(s),
            Access::Any => None,
        }
    }

    /// Checks the scope's ids; a scope without any is an error.
    pub(crate) fn validate(&self) -> Result<()> {
        match self {
            Access::Scope(s) => s.validate(true),
            Access::Any => Ok(()),
        }
    }
}

impl From<Scope> for Access {
    fn from(scope: Scope) -> Self {
        Access::Scope(scope)
    }
}

impl From<&Scope> for Access {
    fn from(scope: &Scope) -> Self {
        Access::Scope(scope.clone())
    }
}

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

/// Checks that a validity window starting at `from` ends, if it does,
/// after it starts (an expiry before that would hide the memory from the
/// start).
pub(crate) fn check_window_end(from: DateTime<Utc>, end: Option<DateTime<Utc>>) -> Result<()> {
    match end {
        Some(t) if t <= from => Err(Error::invalid(
            "expiration_date",
            format!(
                "the memory would stop holding ({}) before it starts ({}), so it would never be shown",
                iso_utc(&t),
                iso_utc(&from)
            ),
        )),
        _ => Ok(()),
    }
}

/// A UTC time as Python's `datetime.isoformat()` writes it (mem0's
/// timestamps): `+00:00`, and microseconds when there are any
/// (`2024-07-20T17:22:33.123456+00:00`), which `datetime.fromisoformat` reads
/// on every Python 3.
///
/// ```
/// use homi_core::model::types::iso_utc;
/// let t = chrono::DateTime::parse_from_rfc3339("2024-07-20T17:22:33.123456789Z").unwrap().to_utc();
/// assert_eq!(iso_utc(&t), "2024-07-20T17:22:33.123456+00:00");
/// assert_eq!(iso_utc(&t.with_nanosecond(0).unwrap()), "2024-07-20T17:22:33+00:00");
/// # use chrono::Timelike;
/// ```
pub fn iso_utc(t: &DateTime<Utc>) -> String {
    let format = if t.timestamp_subsec_micros() == 0 {
        chrono::SecondsFormat::Secs
    } else {
        chrono::SecondsFormat::Micros
    };
    t.to_rfc3339_opts(format, false)
}

/// Serde for [`iso_utc`] times (any RFC 3339 time reads back).
mod iso {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::iso_utc(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        DateTime::<Utc>::deserialize(d)
    }
}

/// [`iso`] for an optional time (`null` when absent).
mod iso_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::iso_utc(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<DateTime<Utc>>::deserialize(d)
    }
}

/// How a search result's score was made (see README's "How search ranks"):
/// the parts a search mode uses are set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScoreDetails {
    /// Meaning: the cosine similarity to the query clamped to [0, 1]
    /// (hybrid), or the semantic score `(1 + cos) / 2` (semantic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semantic: Option<f32>,
    /// Words: the memory's keyword relevance over the query's best (0 when
    /// it holds none of the words).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyword: Option<f32>,
    /// Hybrid: `0.6 · semantic + 0.4 · keyword`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<f32>,
    /// Hybrid: the better base score of the memories written just before and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neighbour: Option<f32>,
    /// Hybrid: 0.6 when the query names another speaker, else 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker_factor: Option<f32>,
    /// Hybrid: whether the memory was said on the day or in the month the
    /// query names (absent when it names none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_match: Option<bool>,
    /// The score, as returned: the parts fused.
    pub fused: f32,
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
    /// How the score was made (a search with `explain`; mem0's `score_details`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_details: Option<ScoreDetails>,
    /// The chat model's relevance score in [0, 1] (a search with `rerank`
    /// and a reranker configured; mem0's `rerank_score`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerank_score: Option<f32>,
    /// When it was created.
    #[serde(with = "iso")]
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    #[serde(with = "iso")]
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
    #[serde(with = "iso")]
    pub valid_from: DateTime<Utc>,
    /// When it stopped holding (superseded) or stops (its expiry); `None`
    /// while it holds without an end.
    #[serde(default, with = "iso_opt")]
    pub valid_to: Option<DateTime<Utc>>,
    /// The memory that replaced it, when superseded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<Uuid>,
}

impl MemoryItem {
    /// Whether it holds now: not superseded, and not past its expiry.
    pub fn is_current(&self) -> bool {
        self.superseded_by.is_none() && self.valid_to.is_none_or(|t| t > Utc::now())
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
    #[serde(with = "iso")]
    pub created_at: DateTime<Utc>,
    /// When the entry was last changed.
    #[serde(default, with = "iso_opt")]
    pub updated_at: Option<DateTime<Utc>>,
    /// Whether the memory was deleted by this change.
    pub is_deleted: bool,
    /// Who (`null` when unknown, as in mem0's history).
    #[serde(default)]
    pub actor_id: Option<String>,
    /// Role of the message behind the change (`null` when unknown).
    #[serde(default)]
    pub role: Option<String>,
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
        assert!(Scope::default().validate(true).is_err());
        assert!(Scope::default().validate(false).is_ok());
        let e = Access::from(Scope::default()).validate().unwrap_err();
        assert!(e.to_string().contains("user_id"), "{e}");
        assert!(Access::Any.validate().is_ok());
        assert!(Access::from(Scope::run("r")).validate().is_ok());
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
