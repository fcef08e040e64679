//! Copying an existing mem0 collection from Postgres into Homi.
//!
//! Two layouts are read: mem0's own pgvector store
//! (`{collection}(id uuid, vector vector, payload jsonb)`) and the
//! Supabase/vecs store (`vecs."{collection}"(id, vec vector, metadata jsonb)`).
//! Each row is read as the point mem0's Python would read, and imported as
//! `Memory::import_mem0_points` maps points, with the history rows of mem0's
//! `history.db` that the caller read. Ids, timestamps, scopes and vectors
//! are kept, so running an import again adds nothing.

use std::str::FromStr;

use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Row};

use super::{ImportReport, Mem0Layout};
use crate::error::{Error, Result};
use crate::memory::Memory;

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
    /// mem0's history rows (its `history.db`, as `read_mem0_history` reads
    /// them): each imported memory keeps its own.
    pub history: Vec<Value>,
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

impl Mem0Source {
    /// The collection a mem0 configuration (the dict given to mem0's
    /// `Memory.from_config`) names in Postgres: its `vector_store` (`pgvector`
    /// with a `connection_string` or its parts, or `supabase`), its
    /// `collection_name` (mem0's default `mem0`), the embedder that made its
    /// vectors, and its history (`history_db_path`, else mem0's default
    /// `$MEM0_DIR/history.db` or `~/.mem0/history.db`, through `env`).
    #[cfg(feature = "sqlite")]
    pub fn from_mem0_config(value: &Value, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let top = value.as_object().ok_or_else(|| {
            Error::invalid("config", "must be mem0's configuration (a JSON object)")
        })?;
        let store = top.get("vector_store").cloned().unwrap_or(Value::Null);
        let provider = store
            .get("provider")
            .and_then(Value::as_str)
            .unwrap_or("qdrant");
        if !matches!(provider, "pgvector" | "supabase") {
            return Err(Error::invalid(
                "vector_store.provider",
                format!(
                    "'{provider}': this import reads mem0's pgvector and Supabase stores; mem0's \
                     Qdrant store (its default) is pickled Python, read by the Python package: \
                     homi.import_mem0(config)"
                ),
            ));
        }
        // Homi's own reading of the section gives the URL.
        let url = crate::Config::default()
            .apply_mem0(&serde_json::json!({"vector_store": store}))?
            .database_url;
        let collection = store
            .pointer("/config/collection_name")
            .and_then(Value::as_str)
            .unwrap_or("mem0")
            .to_owned();
        let history_path = super::mem0_history_path(value, env);
        Ok(Self {
            url,
            collection,
            layout: None,
            embedder_model: crate::mem0_config::mem0_embedding_model(value)?,
            history: super::read_mem0_history(&history_path)?,
        })
    }
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
        loop {
            let rows = sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(&after)
                .fetch_all(&pool)
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.try_get("id")?;
            // Each row as the point mem0's Python would read: one mapping,
            // whichever store it comes from.
            let mut points = Vec::with_capacity(rows.len());
            for row in &rows {
                let id: String = row.try_get("id")?;
                let vector: pgvector::Vector = row.try_get("v")?;
                let payload: Option<sqlx::types::Json<Value>> = row.try_get("p")?;
                points.push(serde_json::json!({
                    "id": id,
                    "vector": vector.to_vec(),
                    "payload": payload.map(|p| p.0).unwrap_or(Value::Null),
                }));
            }
            let page = self
                .import_mem0_points(&points, &source.history, &source.embedder_model, |_, _| {})
                .await?;
            report.read += page.read;
            report.imported += page.imported;
            report.already_present += page.already_present;
            report.duplicates += page.duplicates;
            report.embedded += page.embedded;
            report.invalid += page.invalid;
            progress(report.read, total.max(report.read));
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn collection_names_are_plain_identifiers() {
        assert!(check_collection("mem0_memories").is_ok());
        assert!(check_collection("x\"; DROP TABLE y; --").is_err());
        assert!(check_collection("").is_err());
    }
}
