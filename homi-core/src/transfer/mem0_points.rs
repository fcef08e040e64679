//! mem0's memories as its Python reads them: the points of its vector store
//! (`{id, vector, payload}`) and the rows of its `history.db`. mem0's
//! embedded stores (Qdrant's local mode, Chroma, FAISS) keep pickled Python
//! objects, so the Python package reads them with the user's own client
//! library and hands the rows here; the mapping to Homi's records, and the
//! import, are the core's.
//!
//! A point's payload maps as in the Postgres import: `data` is the text,
//! `user_id`, `agent_id`, `run_id`, `actor_id`, `role`, `created_at` and
//! `updated_at` their fields, every other key metadata (mem0's own
//! `text_lemmatized`, a search aid, is left out). Ids are kept, so a second
//! import adds nothing. A memory's history rows come along; mem0's history
//! of memories it deleted does not (Homi keeps no text of a deleted memory).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{IMPORT_BATCH, ImportReport};
use crate::error::{Error, Result};
use crate::memory::{Event, HistoryEntry, Memory, MemoryItem, Metadata, Scope, text_hash};
use crate::store::{MemoryRecord, RecordEmbedding};

/// Payload keys that are a memory's fields, not its metadata.
const FIELDS: [&str; 10] = [
    "data",
    "hash",
    "user_id",
    "agent_id",
    "run_id",
    "actor_id",
    "role",
    "created_at",
    "updated_at",
    "text_lemmatized",
];

/// A time as mem0 writes it: ISO 8601, with an offset or (taken as UTC) without.
pub(crate) fn parse_time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let s = v?.as_str()?;
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()
        .map(|n| n.and_utc())
}

/// A payload's text value, trimmed, when it has one.
pub(crate) fn string_of(payload: &Metadata, key: &str) -> Option<String> {
    payload
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// mem0's id as a UUID (mem0's are; another string gets a stable one).
pub(crate) fn uuid_of(id: &str) -> Uuid {
    Uuid::parse_str(id).unwrap_or_else(|_| Uuid::new_v5(&Uuid::NAMESPACE_OID, id.as_bytes()))
}

fn id_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One history row of mem0's, for the memory `memory_id`.
fn history_entry(row: &Value, memory_id: Uuid) -> Option<HistoryEntry> {
    let event = match row.get("event").and_then(Value::as_str)? {
        "ADD" => Event::Add,
        "UPDATE" => Event::Update,
        "DELETE" => Event::Delete,
        "NONE" => Event::None,
        _ => return None,
    };
    let text = |k: &str| row.get(k).and_then(Value::as_str).map(str::to_owned);
    let id = id_text(row.get("id")).map(|i| uuid_of(&i))?;
    Some(HistoryEntry {
        id,
        memory_id,
        old_memory: text("old_memory"),
        new_memory: text("new_memory"),
        event,
        created_at: parse_time(row.get("created_at"))?,
        updated_at: parse_time(row.get("updated_at")),
        is_deleted: matches!(row.get("is_deleted"), Some(Value::Bool(true)))
            || row.get("is_deleted").and_then(Value::as_i64) == Some(1),
        actor_id: text("actor_id"),
        role: text("role"),
    })
}

/// mem0's points and history rows as Homi's records (vectors made by
/// `embedder_model`), and how many points cannot be memories (no text, no
/// scope).
pub fn mem0_records(
    points: &[Value],
    history: &[Value],
    embedder_model: &str,
) -> (Vec<MemoryRecord>, u64) {
    let mut by_memory: HashMap<String, Vec<&Value>> = HashMap::new();
    for row in history {
        if let Some(m) = id_text(row.get("memory_id")) {
            by_memory.entry(m).or_default().push(row);
        }
    }
    let mut invalid = 0;
    let mut records = Vec::with_capacity(points.len());
    for point in points {
        match record(point, &by_memory, embedder_model) {
            Some(r) => records.push(r),
            None => invalid += 1,
        }
    }
    (records, invalid)
}

fn record(
    point: &Value,
    history: &HashMap<String, Vec<&Value>>,
    embedder_model: &str,
) -> Option<MemoryRecord> {
    let raw_id = id_text(point.get("id"))?;
    let Value::Object(payload) = point.get("payload")? else {
        return None;
    };
    let text = payload.get("data").and_then(Value::as_str)?.to_owned();
    if text.trim().is_empty() {
        return None;
    }
    let scope = Scope {
        user_id: string_of(payload, "user_id"),
        agent_id: string_of(payload, "agent_id"),
        run_id: string_of(payload, "run_id"),
    };
    if scope.is_empty() || scope.validate(true).is_err() {
        return None;
    }
    let id = uuid_of(&raw_id);
    let created_at = parse_time(payload.get("created_at")).unwrap_or_else(Utc::now);
    let updated_at = parse_time(payload.get("updated_at")).unwrap_or(created_at);
    let metadata: Metadata = payload
        .iter()
        .filter(|(k, _)| !FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut entries: Vec<HistoryEntry> = history
        .get(&raw_id)
        .into_iter()
        .flatten()
        .filter_map(|row| history_entry(row, id))
        .collect();
    entries.sort_by_key(|h| h.created_at);
    if entries.is_empty() {
        // mem0 without a history row for it: its creation, as Homi records one.
        entries.push(HistoryEntry {
            id: Uuid::new_v5(&id, b"mem0 ADD"),
            memory_id: id,
            old_memory: None,
            new_memory: Some(text.clone()),
            event: Event::Add,
            created_at,
            updated_at: None,
            is_deleted: false,
            actor_id: string_of(payload, "actor_id"),
            role: string_of(payload, "role"),
        });
    }
    let embedding = point
        .get("vector")
        .and_then(Value::as_array)
        .map(|v| {
            v.iter()
                .filter_map(Value::as_f64)
                .map(|x| x as f32)
                .collect::<Vec<f32>>()
        })
        .filter(|v| !v.is_empty())
        .map(|mut vector| {
            // Homi keeps unit vectors; mem0's stores may not.
            let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                vector.iter_mut().for_each(|x| *x /= norm);
            }
            RecordEmbedding {
                model: embedder_model.to_owned(),
                vector,
            }
        });
    Some(MemoryRecord {
        item: MemoryItem {
            id,
            hash: text_hash(&text),
            memory: text,
            metadata,
            score: None,
            score_details: None,
            rerank_score: None,
            created_at,
            updated_at,
            user_id: scope.user_id,
            agent_id: scope.agent_id,
            run_id: scope.run_id,
            actor_id: string_of(payload, "actor_id"),
            role: string_of(payload, "role"),
            valid_from: created_at,
            valid_to: None,
            superseded_by: None,
        },
        history: entries,
        embedding,
    })
}

/// Where mem0 keeps the history of a store configured with `mem0_config`:
/// its `history_db_path`, else mem0's default `$MEM0_DIR/history.db` or
/// `~/.mem0/history.db` (`env` answers `MEM0_DIR` and `HOME`).
pub fn mem0_history_path(
    mem0_config: &Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> std::path::PathBuf {
    use std::path::PathBuf;
    match mem0_config.get("history_db_path").and_then(Value::as_str) {
        Some(p) => PathBuf::from(p),
        None => env("MEM0_DIR")
            .map(PathBuf::from)
            .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".mem0")))
            .unwrap_or_default()
            .join("history.db"),
    }
}

/// The rows of mem0's `history.db` (its `history` table), as
/// [`Memory::import_mem0_points`] takes them; none when the file or the
/// table is not there.
#[cfg(feature = "sqlite")]
pub fn read_mem0_history(path: &std::path::Path) -> Result<Vec<Value>> {
    use rusqlite::types::ValueRef;
    if !path.exists() {
        return Ok(Vec::new());
    }
    let failed = |e: rusqlite::Error| {
        Error::invalid(
            "history",
            format!("cannot read mem0's {}: {e}", path.display()),
        )
    };
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(failed)?;
    let has_table: bool = db
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'history'",
            [],
            |r| r.get(0),
        )
        .map_err(failed)?;
    if !has_table {
        return Ok(Vec::new());
    }
    let mut statement = db.prepare("SELECT * FROM history").map_err(failed)?;
    let names: Vec<String> = statement
        .column_names()
        .iter()
        .map(|n| (*n).to_owned())
        .collect();
    let rows = statement
        .query_map([], |row| {
            let mut out = serde_json::Map::new();
            for (i, name) in names.iter().enumerate() {
                let v = match row.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => Value::from(n),
                    ValueRef::Real(x) => Value::from(x),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        Value::String(String::from_utf8_lossy(t).into_owned())
                    }
                };
                out.insert(name.clone(), v);
            }
            Ok(Value::Object(out))
        })
        .map_err(failed)?;
    rows.collect::<std::result::Result<Vec<_>, _>>()
        .map_err(failed)
}

impl Memory {
    /// Imports mem0's memories as its Python reads them: the points of its
    /// vector store (`{"id", "vector", "payload"}`) and its `history.db`
    /// rows (`data` the text; `user_id`, `agent_id`, `run_id`, `actor_id`,
    /// `role`, `created_at`, `updated_at` their fields; every other key
    /// metadata; a point without a text or a scope is counted `invalid`),
    /// the vectors made by
    /// `embedder_model` (used when it is this store's embedder; the texts are
    /// embedded again otherwise). Calls `progress(points done, points)`.
    /// Idempotent: ids are kept, and points imported before count as
    /// `already_present`.
    pub async fn import_mem0_points(
        &self,
        points: &[Value],
        history: &[Value],
        embedder_model: &str,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<ImportReport> {
        if embedder_model.trim().is_empty() {
            return Err(Error::invalid(
                "embedder_model",
                "name the model that made mem0's vectors",
            ));
        }
        let (records, invalid) = mem0_records(points, history, embedder_model);
        let mut report = ImportReport {
            invalid,
            ..ImportReport::default()
        };
        report.read = points.len() as u64;
        let total = points.len() as u64;
        let mut done = invalid;
        progress(done, total);
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            let batch: Vec<MemoryRecord> = records.by_ref().take(IMPORT_BATCH).collect();
            let n = batch.len() as u64;
            let restored = self.restore(batch).await?;
            report.embedded += restored.embedded as u64;
            for o in &restored.outcomes {
                report.count(o);
            }
            done += n;
            progress(done, total);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn a_point_and_its_history_become_a_record() {
        let id = "0b8a2c4e-1111-4222-8333-944455556666";
        let points = [
            json!({"id": id, "vector": [3.0, 4.0], "payload": {
                "data": "Likes tea", "hash": "x", "user_id": "alice", "text_lemmatized": "like tea",
                "created_at": "2025-01-02T03:04:05.123456-08:00", "updated_at": "2025-01-03T00:00:00+00:00",
                "topic": "drinks"}}),
            json!({"id": "no-text", "payload": {"user_id": "alice"}}),
            json!({"id": "no-scope", "payload": {"data": "Floating"}}),
        ];
        let history = [
            json!({"id": "a1f0e2d4-0000-4000-8000-000000000001", "memory_id": id, "old_memory": null,
                   "new_memory": "Likes coffee", "event": "ADD", "created_at": "2025-01-02T03:04:05.123456-08:00",
                   "updated_at": null, "is_deleted": 0, "actor_id": null, "role": null}),
            json!({"id": "a1f0e2d4-0000-4000-8000-000000000002", "memory_id": id, "old_memory": "Likes coffee",
                   "new_memory": "Likes tea", "event": "UPDATE", "created_at": "2025-01-03T00:00:00+00:00",
                   "updated_at": "2025-01-03T00:00:00+00:00", "is_deleted": 0, "actor_id": null, "role": null}),
            json!({"id": "a1f0e2d4-0000-4000-8000-000000000003", "memory_id": "gone", "event": "DELETE",
                   "created_at": "2025-01-03T00:00:00+00:00", "is_deleted": 1}),
        ];
        let (records, invalid) = mem0_records(&points, &history, "text-embedding-3-small");
        assert_eq!((records.len(), invalid), (1, 2));
        let r = &records[0];
        assert_eq!(r.item.id.to_string(), id);
        assert_eq!(r.item.memory, "Likes tea");
        assert_eq!(r.item.hash, text_hash("Likes tea"));
        assert_eq!(
            r.item.metadata,
            json!({"topic": "drinks"}).as_object().unwrap().clone()
        );
        assert_eq!(
            r.item.created_at.to_rfc3339(),
            "2025-01-02T11:04:05.123456+00:00"
        );
        let events: Vec<Event> = r.history.iter().map(|h| h.event).collect();
        assert_eq!(events, [Event::Add, Event::Update]);
        let v = &r.embedding.as_ref().unwrap().vector;
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    }
}
