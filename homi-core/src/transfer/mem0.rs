//! Copying an existing mem0 collection from Postgres into Homi.
//!
//! Two layouts are read: mem0's own pgvector store
//! (`{collection}(id uuid, vector vector, payload jsonb)`) and the
//! Supabase/vecs store (`vecs."{collection}"(id, vec vector, metadata jsonb)`).
//! Payload keys `data`, `hash`, `user_id`, `agent_id`, `run_id`, `actor_id`,
//! `role`, `created_at`, `updated_at` map to Homi's fields; every other key is
//! kept as metadata. Ids, timestamps, scopes and vectors are kept, so running
//! an import again adds nothing.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

use super::{ImportReport, Mem0Layout};
use crate::error::{Error, Result};
use crate::memory::{Access, Memory, Metadata, Scope, text_hash};
use crate::store::{Change, EmbedderInfo, NewMemory};

/// The mem0 collection to copy.
#[derive(Debug, Clone)]
pub struct Mem0Source {
    /// `postgres://…` of the database holding the collection.
    pub url: String,
    /// mem0's `collection_name`.
    pub collection: String,
    /// The layout; `None` looks for `vecs.{collection}` first, then `{collection}`.
    pub layout: Option<Mem0Layout>,
    /// The embedding model that made the vectors (recorded in Homi's store).
    pub embedder_model: String,
}

impl Mem0Source {
    /// The embedding model a collection's vectors are taken to come from
    /// when the caller does not say: the one `config` embeds with now.
    pub fn default_embedder_model(config: &crate::Config) -> String {
        config
            .embedder
            .model_for(crate::provider::effective_embedder(config))
            .to_owned()
    }
}

const PAGE: i64 = 1000;
const KNOWN_KEYS: [&str; 9] = [
    "data",
    "hash",
    "user_id",
    "agent_id",
    "run_id",
    "actor_id",
    "role",
    "created_at",
    "updated_at",
];

fn check_collection(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "collection_name",
            format!("'{name}' is not a plain identifier (letters, digits, underscores)"),
        ))
    }
}

fn parse_time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let s = v?.as_str()?;
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    // Naive ISO timestamps (no offset) are taken as UTC.
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

fn string_of(payload: &Metadata, key: &str) -> Option<String> {
    payload
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// One mem0 row as a Homi import, or `None` when it cannot be one.
fn to_change(id: &str, vector: Vec<f32>, payload: Value) -> Option<Change> {
    let Value::Object(payload) = payload else {
        return None;
    };
    let text = payload.get("data").and_then(Value::as_str)?.to_owned();
    if text.trim().is_empty() {
        return None;
    }
    let scope = Scope {
        user_id: string_of(&payload, "user_id"),
        agent_id: string_of(&payload, "agent_id"),
        run_id: string_of(&payload, "run_id"),
    };
    if scope.is_empty() || scope.validate(true).is_err() {
        return None;
    }
    let id =
        Uuid::from_str(id).unwrap_or_else(|_| Uuid::new_v5(&Uuid::NAMESPACE_OID, id.as_bytes()));
    let created_at = parse_time(payload.get("created_at")).unwrap_or_else(Utc::now);
    let updated_at = parse_time(payload.get("updated_at")).unwrap_or(created_at);
    let metadata: Metadata = payload
        .iter()
        .filter(|(k, _)| !KNOWN_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Some(Change::Import {
        memory: NewMemory {
            id,
            hash: text_hash(&text),
            text,
            metadata,
            scope,
            actor_id: string_of(&payload, "actor_id"),
            role: string_of(&payload, "role"),
            embedding: vector,
            said_at: None,
        },
        created_at,
        updated_at,
    })
}

impl Memory {
    /// Copies a mem0 collection into this Memory's store, calling
    /// `progress(rows read, rows in the collection)` after each page of 1,000
    /// rows (for a progress bar). Idempotent: ids are kept, and rows already
    /// imported are counted as `already_present`. The vectors come along, made
    /// by `source.embedder_model`, which the store records.
    pub async fn import_mem0(
        &self,
        source: &Mem0Source,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<ImportReport> {
        let store = self.store();
        check_collection(&source.collection)?;
        let connect = PgConnectOptions::from_str(&source.url)
            .map_err(|e| Error::invalid("url", format!("not a valid Postgres URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(connect)
            .await
            .map_err(|e| {
                Error::Storage(format!("cannot connect to the mem0 database: {e}").into())
            })?;
        let exists = |schema: &'static str| {
            let pool = pool.clone();
            let name = source.collection.clone();
            async move {
                let sql = if schema.is_empty() {
                    "SELECT to_regclass(quote_ident($1)) IS NOT NULL"
                } else {
                    "SELECT to_regclass('vecs.' || quote_ident($1)) IS NOT NULL"
                };
                sqlx::query_scalar::<_, bool>(sql)
                    .bind(name)
                    .fetch_one(&pool)
                    .await
            }
        };
        let layout = match source.layout {
            Some(l) => l,
            None if exists("vecs").await? => Mem0Layout::Vecs,
            None if exists("").await? => Mem0Layout::Pgvector,
            None => {
                return Err(Error::not_found(format!(
                    "mem0 collection '{0}' (looked for vecs.\"{0}\" and \"{0}\")",
                    source.collection
                )));
            }
        };
        let c = &source.collection;
        let sql = match layout {
            Mem0Layout::Pgvector => format!(
                "SELECT id::text AS id, vector AS v, payload AS p FROM \"{c}\" WHERE id::text > $1 ORDER BY id::text LIMIT {PAGE}"
            ),
            Mem0Layout::Vecs => format!(
                "SELECT id::text AS id, vec AS v, metadata AS p FROM vecs.\"{c}\" WHERE id::text > $1 ORDER BY id::text LIMIT {PAGE}"
            ),
        };
        let table = match layout {
            Mem0Layout::Pgvector => format!("\"{c}\""),
            Mem0Layout::Vecs => format!("vecs.\"{c}\""),
        };
        let total: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&pool)
            .await?;
        let total = total.unsigned_abs();
        progress(0, total);
        let mut report = ImportReport {
            layout: Some(layout),
            ..ImportReport::default()
        };
        let mut after = String::new();
        let mut bound: Option<EmbedderInfo> = None;
        loop {
            let rows = sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(&after)
                .fetch_all(&pool)
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.try_get("id")?;
            let mut changes = Vec::with_capacity(rows.len());
            for row in &rows {
                report.read += 1;
                let id: String = row.try_get("id")?;
                let vector: pgvector::Vector = row.try_get("v")?;
                let payload: Option<sqlx::types::Json<Value>> = row.try_get("p")?;
                match to_change(
                    &id,
                    vector.to_vec(),
                    payload.map(|p| p.0).unwrap_or(Value::Null),
                ) {
                    Some(change) => changes.push(change),
                    None => {
                        report.invalid += 1;
                        tracing::warn!(id = %id, "mem0 row without a text or a scope id; not imported");
                    }
                }
            }
            if bound.is_none()
                && let Some(Change::Import { memory, .. }) = changes.first()
            {
                let info = EmbedderInfo {
                    model: source.embedder_model.clone(),
                    dims: memory.embedding.len(),
                };
                store.bind_embedder(&info).await?;
                bound = Some(info);
            }
            for outcome in store
                .apply(&Access::Any, bound.as_ref(), None, changes)
                .await?
            {
                report.count(&outcome);
            }
            progress(report.read, total.max(report.read));
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    #[test]
    fn payload_maps_to_a_memory() {
        let change = to_change(
            "0b6c1c9e-1a7e-4d3e-9a55-3f4f1b2c3d4e",
            vec![1.0, 0.0],
            json!({"data": "Likes tea", "hash": "x", "user_id": "alice", "created_at": "2024-07-20T10:22:33.123456-07:00", "category": "food"}),
        )
        .unwrap();
        let Change::Import {
            memory,
            created_at,
            updated_at,
        } = change
        else {
            panic!("not an import")
        };
        assert_eq!(memory.text, "Likes tea");
        assert_eq!(memory.hash, text_hash("Likes tea"));
        assert_eq!(memory.scope, Scope::user("alice"));
        assert_eq!(
            memory.metadata,
            json!({"category": "food"}).as_object().unwrap().clone()
        );
        assert_eq!(created_at.to_rfc3339(), "2024-07-20T17:22:33.123456+00:00");
        assert_eq!(updated_at, created_at);
        assert!(to_change("x", vec![1.0], json!({"data": "no scope"})).is_none());
        assert!(to_change("x", vec![1.0], json!({"user_id": "u"})).is_none());
        // Ids that are not UUIDs get a stable one.
        let id_of = |c: Change| match c {
            Change::Import { memory, .. } => memory.id,
            _ => panic!("not an import"),
        };
        let a = id_of(to_change("abc", vec![1.0], json!({"data": "t", "user_id": "u"})).unwrap());
        let b = id_of(to_change("abc", vec![1.0], json!({"data": "t", "user_id": "u"})).unwrap());
        assert_eq!(a, b);
    }

    #[test]
    fn collection_names_are_plain_identifiers() {
        assert!(check_collection("mem0_memories").is_ok());
        assert!(check_collection("x\"; DROP TABLE y; --").is_err());
        assert!(check_collection("").is_err());
    }
}
