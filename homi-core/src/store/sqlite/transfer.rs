//! Whole-memory export and restore, and moving a store to another embedder
//! (`homi memory export|import|reembed`), on SQLite.

use std::collections::{HashMap, HashSet};

use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

use super::{
    Bind, COLUMNS, IN_CHUNK, SqliteDialect, SqliteStore, bind_all, bump_seq, decode_vec,
    encode_vec, item_from_row,
};
use crate::error::{Error, Result};
use crate::model::Access;
use crate::store::sql;
use crate::store::sql::memory::{HISTORY_COLUMNS, history_from_row};
use crate::store::{
    EmbedderInfo, MemoryRecord, Outcome, RecordEmbedding, ReembedBatch, ReembedItem, normalize,
};

/// Rows per multi-row INSERT while restoring (15 parameters each).
const RESTORE_ROWS: usize = 200;

/// The ids of `ids` that are memories of the store.
async fn existing_ids(conn: &mut sqlx::SqliteConnection, ids: &[Uuid]) -> Result<HashSet<Uuid>> {
    let mut found = HashSet::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let binds: Vec<Bind> = chunk.iter().map(|id| Bind::Text(id.to_string())).collect();
        let sql = format!(
            "SELECT id FROM homi_memories WHERE id IN ({})",
            vec!["?"; chunk.len()].join(", ")
        );
        for row in bind_all(sqlx::query(AssertSqlSafe(sql)), &binds)
            .fetch_all(&mut *conn)
            .await?
        {
            found.insert(super::parse_uuid(&row.try_get::<String, _>(0)?)?);
        }
    }
    Ok(found)
}

/// `homi_meta` key naming the embedder a re-embedding stages vectors for.
const TARGET_KEY: &str = "reembed_target";

fn target_value(t: &EmbedderInfo) -> String {
    format!("{}\u{1f}{}", t.model, t.dims)
}

/// Memories without a staged vector for their current text.
const PENDING: &str = "FROM homi_memories m LEFT JOIN homi_memory_reembed s INDEXED BY memory_reembed_hash \
     ON s.id = m.id WHERE s.id IS NULL OR s.hash <> m.hash";

impl SqliteStore {
    pub(super) async fn export_records(
        &self,
        access: &Access,
        after: Option<Uuid>,
        limit: usize,
        embeddings: bool,
    ) -> Result<Vec<MemoryRecord>> {
        let mut conn = self.pool.acquire().await?;
        // One snapshot for the page and its history.
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let mut binds = Vec::new();
        let w = sql::access_sql::<SqliteDialect>(access, "m", &mut binds);
        binds.push(Bind::Text(after.map(|a| a.to_string()).unwrap_or_default()));
        binds.push(Bind::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
        let (extra, join) = if embeddings {
            (
                ", e.embedding",
                " JOIN homi_memory_embeddings e ON e.rid = m.rid",
            )
        } else {
            ("", "")
        };
        let sql = format!(
            "SELECT {COLUMNS}{extra} FROM homi_memories m{join} WHERE {w} AND m.id > ? ORDER BY m.id LIMIT ?"
        );
        let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), &binds)
            .fetch_all(&mut *tx)
            .await?;
        let model = if embeddings {
            sql::memory::embedder::<SqliteDialect>(&mut tx, false)
                .await?
                .map(|e| e.model)
        } else {
            None
        };
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            let (_, item) = item_from_row(row)?;
            let embedding = match (&model, embeddings) {
                (Some(model), true) => Some(RecordEmbedding {
                    model: model.clone(),
                    vector: decode_vec(&row.try_get::<Vec<u8>, _>(15)?),
                }),
                _ => None,
            };
            records.push(MemoryRecord {
                item,
                history: Vec::new(),
                embedding,
            });
        }
        if !records.is_empty() {
            let ids: Vec<Bind> = records
                .iter()
                .map(|r| Bind::Text(r.item.id.to_string()))
                .collect();
            let sql = format!(
                "SELECT {HISTORY_COLUMNS} FROM homi_memory_history h WHERE h.memory_id IN ({}) ORDER BY h.rowid",
                vec!["?"; ids.len()].join(", ")
            );
            let mut by_id: HashMap<Uuid, usize> = HashMap::with_capacity(records.len());
            for (i, r) in records.iter().enumerate() {
                by_id.insert(r.item.id, i);
            }
            for row in bind_all(sqlx::query(AssertSqlSafe(sql)), &ids)
                .fetch_all(&mut *tx)
                .await?
            {
                let entry = history_from_row(&row)?;
                if let Some(&i) = by_id.get(&entry.memory_id) {
                    records[i].history.push(entry);
                }
            }
        }
        tx.rollback().await?;
        Ok(records)
    }

    /// The ids of `ids` that are memories of the store.
    pub(super) async fn ids_present(&self, ids: &[Uuid]) -> Result<HashSet<Uuid>> {
        let mut conn = self.pool.acquire().await?;
        existing_ids(&mut conn, ids).await
    }

    pub(super) async fn restore_records(
        &self,
        embedder: &EmbedderInfo,
        records: Vec<(MemoryRecord, Vec<f32>)>,
    ) -> Result<Vec<Outcome>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let Some(info) = sql::memory::embedder::<SqliteDialect>(&mut tx, false).await? else {
            return Err(Error::storage(
                "no embedder is recorded in the store; bind one before restoring",
            ));
        };
        info.must_match(embedder)?;
        if let Some((r, v)) = records.iter().find(|(_, v)| v.len() != info.dims) {
            return Err(Error::invalid(
                "embedding",
                format!(
                    "memory {} has a {}-dimension vector; the store holds {}",
                    r.item.id,
                    v.len(),
                    info
                ),
            ));
        }
        let seq = bump_seq(&mut tx).await?;
        let ids: Vec<Uuid> = records.iter().map(|(r, _)| r.item.id).collect();
        let present = existing_ids(&mut tx, &ids).await?;
        // Current texts already current in their exact scope (in the store,
        // or earlier in this batch) are duplicates.
        type Key = (String, Option<String>, Option<String>, Option<String>);
        let key = |m: &crate::model::MemoryItem| -> Key {
            (
                m.hash.clone(),
                m.user_id.clone(),
                m.agent_id.clone(),
                m.run_id.clone(),
            )
        };
        let hashes: Vec<Bind> = records
            .iter()
            .filter(|(r, _)| r.item.valid_to.is_none())
            .map(|(r, _)| Bind::Text(r.item.hash.clone()))
            .collect();
        let mut current: HashMap<Key, (Uuid, String)> = HashMap::new();
        for chunk in hashes.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT id, memory, hash, user_id, agent_id, run_id FROM homi_memories \
                 WHERE valid_to IS NULL AND hash IN ({})",
                vec!["?"; chunk.len()].join(", ")
            );
            for row in bind_all(sqlx::query(AssertSqlSafe(sql)), chunk)
                .fetch_all(&mut *tx)
                .await?
            {
                current.insert(
                    (
                        row.try_get(2)?,
                        row.try_get(3)?,
                        row.try_get(4)?,
                        row.try_get(5)?,
                    ),
                    (
                        super::parse_uuid(&row.try_get::<String, _>(0)?)?,
                        row.try_get(1)?,
                    ),
                );
            }
        }
        let mut outcomes = Vec::with_capacity(records.len());
        let mut fresh = Vec::with_capacity(records.len());
        for (record, vector) in records {
            let m = &record.item;
            if present.contains(&m.id) {
                outcomes.push(Outcome::Exists { id: m.id });
                continue;
            }
            if m.valid_to.is_none() {
                if let Some((id, text)) = current.get(&key(m)) {
                    outcomes.push(Outcome::Duplicate {
                        id: *id,
                        text: text.clone(),
                    });
                    continue;
                }
                current.insert(key(m), (m.id, m.memory.clone()));
            }
            outcomes.push(Outcome::Added {
                id: m.id,
                text: m.memory.clone(),
            });
            fresh.push((record, vector));
        }
        for chunk in fresh.chunks(RESTORE_ROWS) {
            let sql = format!(
                "INSERT INTO homi_memories (id, memory, hash, metadata, user_id, agent_id, run_id, actor_id, role, \
                 created_at, updated_at, valid_from, valid_to, superseded_by, seq) VALUES {} RETURNING rid, id",
                vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (r, _) in chunk {
                let m = &r.item;
                q = q
                    .bind(m.id.to_string())
                    .bind(&m.memory)
                    .bind(&m.hash)
                    .bind(serde_json::Value::Object(m.metadata.clone()).to_string())
                    .bind(&m.user_id)
                    .bind(&m.agent_id)
                    .bind(&m.run_id)
                    .bind(&m.actor_id)
                    .bind(&m.role)
                    .bind(m.created_at.timestamp_micros())
                    .bind(m.updated_at.timestamp_micros())
                    .bind(m.valid_from.timestamp_micros())
                    .bind(m.valid_to.map(|t| t.timestamp_micros()))
                    .bind(m.superseded_by.map(|u| u.to_string()))
                    .bind(seq);
            }
            let mut rid_of: HashMap<String, i64> = HashMap::with_capacity(chunk.len());
            for row in q.fetch_all(&mut *tx).await? {
                rid_of.insert(row.try_get(1)?, row.try_get(0)?);
            }
            let sql = format!(
                "INSERT INTO homi_memory_embeddings (rid, embedding) VALUES {}",
                vec!["(?, ?)"; chunk.len()].join(", ")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (r, vector) in chunk {
                let rid = *rid_of
                    .get(&r.item.id.to_string())
                    .ok_or_else(|| Error::storage("a restored memory returned no row id"))?;
                let mut v = vector.clone();
                normalize(&mut v);
                q = q.bind(rid).bind(encode_vec(&v));
            }
            q.execute(&mut *tx).await?;
            let history: Vec<(&crate::model::MemoryItem, &crate::model::HistoryEntry)> = chunk
                .iter()
                .flat_map(|(r, _)| r.history.iter().map(move |h| (&r.item, h)))
                .collect();
            for rows in history.chunks(RESTORE_ROWS) {
                let sql = format!(
                    "INSERT OR IGNORE INTO homi_memory_history (id, memory_id, old_memory, new_memory, event, \
                     created_at, updated_at, is_deleted, actor_id, role, user_id, agent_id, run_id) VALUES {}",
                    vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; rows.len()].join(", ")
                );
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for (m, h) in rows {
                    q = q
                        .bind(h.id.to_string())
                        .bind(m.id.to_string())
                        .bind(&h.old_memory)
                        .bind(&h.new_memory)
                        .bind(h.event.as_str())
                        .bind(h.created_at.timestamp_micros())
                        .bind(h.updated_at.map(|t| t.timestamp_micros()))
                        .bind(i64::from(h.is_deleted))
                        .bind(&h.actor_id)
                        .bind(&h.role)
                        .bind(&m.user_id)
                        .bind(&m.agent_id)
                        .bind(&m.run_id);
                }
                q.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    pub(super) async fn reembed_next_batch(
        &self,
        target: &EmbedderInfo,
        limit: usize,
    ) -> Result<ReembedBatch> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let staged_for: Option<String> =
            sqlx::query_scalar("SELECT value FROM homi_meta WHERE key = ?")
                .bind(TARGET_KEY)
                .fetch_optional(&mut *tx)
                .await?;
        let wanted = target_value(target);
        if staged_for.as_deref() != Some(wanted.as_str()) {
            sqlx::query("DELETE FROM homi_memory_reembed")
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT OR REPLACE INTO homi_meta (key, value) VALUES (?, ?)")
                .bind(TARGET_KEY)
                .bind(&wanted)
                .execute(&mut *tx)
                .await?;
        }
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM homi_memories")
            .fetch_one(&mut *tx)
            .await?;
        let pending: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) {PENDING}")))
            .fetch_one(&mut *tx)
            .await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT m.id, m.memory, m.hash {PENDING} ORDER BY m.id LIMIT ?"
        )))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let todo = rows
            .iter()
            .map(|r| {
                Ok(ReembedItem {
                    id: super::parse_uuid(&r.try_get::<String, _>(0)?)?,
                    text: r.try_get(1)?,
                    hash: r.try_get(2)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ReembedBatch {
            total: total.unsigned_abs(),
            done: (total - pending).unsigned_abs(),
            todo,
        })
    }

    async fn check_target(tx: &mut sqlx::SqliteConnection, target: &EmbedderInfo) -> Result<()> {
        let staged_for: Option<String> =
            sqlx::query_scalar("SELECT value FROM homi_meta WHERE key = ?")
                .bind(TARGET_KEY)
                .fetch_optional(&mut *tx)
                .await?;
        if staged_for.as_deref() == Some(target_value(target).as_str()) {
            Ok(())
        } else {
            Err(Error::Conflict(format!(
                "another re-embedding (to another model) started meanwhile; run it again for {}",
                target.model
            )))
        }
    }

    pub(super) async fn reembed_stage_vectors(
        &self,
        target: &EmbedderInfo,
        vectors: Vec<(Uuid, String, Vec<f32>)>,
    ) -> Result<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        Self::check_target(&mut tx, target).await?;
        // Only for a memory that still exists with that text: one deleted
        // meanwhile leaves nothing behind.
        for chunk in vectors.chunks(RESTORE_ROWS) {
            let sql = format!(
                "INSERT OR REPLACE INTO homi_memory_reembed (id, hash, embedding) \
                 SELECT m.id, m.hash, v.column3 FROM (VALUES {}) AS v \
                 JOIN homi_memories m ON m.id = v.column1 AND m.hash = v.column2",
                vec!["(?, ?, ?)"; chunk.len()].join(", ")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (id, hash, vector) in chunk {
                let mut v = vector.clone();
                normalize(&mut v);
                q = q.bind(id.to_string()).bind(hash).bind(encode_vec(&v));
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn reembed_swap(&self, target: &EmbedderInfo) -> Result<Option<EmbedderInfo>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        Self::check_target(&mut tx, target).await?;
        let pending: Option<i64> =
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT 1 {PENDING} LIMIT 1")))
                .fetch_optional(&mut *tx)
                .await?;
        if pending.is_some() {
            return Ok(None);
        }
        let sizes: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT length(s.embedding) FROM homi_memory_reembed s JOIN homi_memories m ON m.id = s.id",
        )
        .fetch_all(&mut *tx)
        .await?;
        let dims = match sizes.as_slice() {
            [] => {
                // No memory is left: the store holds no vectors, so it is
                // bound to no embedder (as after a reset); the next write
                // records the new one.
                for sql in [
                    "DELETE FROM homi_memory_reembed",
                    "DELETE FROM homi_meta WHERE key IN ('embedder_model', 'embedder_dims', 'reembed_target')",
                ] {
                    sqlx::query(sql).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                return Ok(Some(target.clone()));
            }
            [bytes] => usize::try_from(*bytes / 4).unwrap_or_default(),
            _ => {
                // Drop them: the next run starts over with one size.
                sqlx::query("DELETE FROM homi_memory_reembed")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                return Err(Error::Conflict(format!(
                    "{} gave vectors of different sizes across runs of the re-embedding; \
                     its staged vectors were dropped: run it again",
                    target.model
                )));
            }
        };
        sqlx::query(
            "UPDATE homi_memory_embeddings SET embedding = (SELECT s.embedding FROM homi_memories m \
             JOIN homi_memory_reembed s ON s.id = m.id WHERE m.rid = homi_memory_embeddings.rid)",
        )
        .execute(&mut *tx)
        .await?;
        let info = EmbedderInfo {
            model: target.model.clone(),
            dims,
        };
        sqlx::query(
            "INSERT OR REPLACE INTO homi_meta (key, value) VALUES ('embedder_model', ?), ('embedder_dims', ?)",
        )
        .bind(&info.model)
        .bind(info.dims.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM homi_memory_reembed")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM homi_meta WHERE key = ?")
            .bind(TARGET_KEY)
            .execute(&mut *tx)
            .await?;
        // Every cached vector is stale: caches reload in full.
        let seq = bump_seq(&mut tx).await?;
        sqlx::query("UPDATE homi_store_state SET wipe_seq = ? WHERE id = 1")
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(info))
    }
}
