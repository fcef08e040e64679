//! Whole-memory export and restore, and moving a store to another embedder
//! (`homi memory export|import|reembed`), on Postgres.

use std::collections::{HashMap, HashSet};

use pgvector::Vector;
use sqlx::{AssertSqlSafe, PgConnection, Row};
use uuid::Uuid;

use super::{
    Args, Bind, COLUMNS, PgDialect, PostgresStore, bind_all, build_vector_index_concurrently,
    item_from_row,
};
use crate::error::{Error, Result};
use crate::model::Access;
use crate::store::sql;
use crate::store::sql::memory::history_from_row;
use crate::store::{
    EmbedderInfo, MemoryRecord, Outcome, RecordEmbedding, ReembedBatch, ReembedItem, normalize,
};

/// Memories per multi-row INSERT while restoring (15 parameters each).
const RESTORE_ROWS: usize = 200;
/// History rows per multi-row INSERT (13 parameters each, below Postgres'
/// 65,535).
const HISTORY_ROWS: usize = 4000;

/// `homi_meta` key naming the embedder a re-embedding stages vectors for.
const TARGET_KEY: &str = "reembed_target";

fn target_value(t: &EmbedderInfo) -> String {
    format!("{}\u{1f}{}", t.model, t.dims)
}

/// Memories without a staged vector for their current text.
const PENDING: &str = "FROM homi_memories m LEFT JOIN homi_memory_reembed s ON s.id = m.id \
     WHERE s.id IS NULL OR s.hash <> m.hash";

/// Takes the re-embedding lock (one re-embedding step at a time) and checks
/// the staged target.
async fn check_target(tx: &mut PgConnection, target: &EmbedderInfo) -> Result<()> {
    let staged_for: Option<String> =
        sqlx::query_scalar("SELECT value FROM homi_meta WHERE key = $1 FOR UPDATE")
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

impl PostgresStore {
    pub(super) async fn export_records(
        &self,
        access: &Access,
        after: Option<Uuid>,
        limit: usize,
        embeddings: bool,
    ) -> Result<Vec<MemoryRecord>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let mut args = Args::default();
        let w = sql::access_sql::<PgDialect>(access, "m", &mut args);
        let a = args.push(Bind::OptUuid(after));
        let l = args.push(Bind::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
        let extra = if embeddings { ", m.embedding" } else { "" };
        let sql = format!(
            "SELECT {COLUMNS}{extra} FROM homi_memories m WHERE {w} AND ({a}::uuid IS NULL OR m.id > {a}) ORDER BY m.id LIMIT {l}"
        );
        let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), &args)
            .fetch_all(&mut *tx)
            .await?;
        let model = if embeddings {
            sql::memory::embedder::<PgDialect>(&mut tx, false)
                .await?
                .map(|e| e.model)
        } else {
            None
        };
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            let embedding = match &model {
                Some(model) => Some(RecordEmbedding {
                    model: model.clone(),
                    vector: row.try_get::<Vector, _>("embedding")?.to_vec(),
                }),
                None => None,
            };
            records.push(MemoryRecord {
                item: item_from_row(row)?,
                history: Vec::new(),
                embedding,
            });
        }
        if !records.is_empty() {
            let ids: Vec<Uuid> = records.iter().map(|r| r.item.id).collect();
            let mut by_id: HashMap<Uuid, usize> = HashMap::with_capacity(ids.len());
            for (i, id) in ids.iter().enumerate() {
                by_id.insert(*id, i);
            }
            let rows = sqlx::query(
                "SELECT h.id, h.memory_id, h.old_memory, h.new_memory, h.event, h.created_at, h.updated_at, \
                 h.is_deleted, h.actor_id, h.role FROM homi_memory_history h WHERE h.memory_id = ANY($1) \
                 ORDER BY h.memory_id, h.pos",
            )
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
            for row in &rows {
                let entry = history_from_row(row)?;
                if let Some(&i) = by_id.get(&entry.memory_id) {
                    records[i].history.push(entry);
                }
            }
        }
        tx.commit().await?;
        Ok(records)
    }

    /// The ids of `ids` that are memories of the store.
    pub(super) async fn ids_present(&self, ids: &[Uuid]) -> Result<HashSet<Uuid>> {
        let rows: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM homi_memories WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().collect())
    }

    pub(super) async fn restore_records(
        &self,
        embedder: &EmbedderInfo,
        records: Vec<(MemoryRecord, Vec<f32>)>,
    ) -> Result<Vec<Outcome>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        // Locked first, as `apply` does: a re-embedding's swap waits for this.
        let Some(info) = sql::memory::embedder::<PgDialect>(&mut tx, true).await? else {
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
        let ids: Vec<Uuid> = records.iter().map(|(r, _)| r.item.id).collect();
        let present: HashSet<Uuid> =
            sqlx::query_scalar::<_, Uuid>("SELECT id FROM homi_memories WHERE id = ANY($1)")
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
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
        let hashes: Vec<String> = records
            .iter()
            .filter(|(r, _)| r.item.valid_to.is_none())
            .map(|(r, _)| r.item.hash.clone())
            .collect();
        let mut current: HashMap<Key, (Uuid, String)> = HashMap::new();
        for row in sqlx::query(
            "SELECT id, memory, hash, user_id, agent_id, run_id FROM homi_memories \
             WHERE valid_to IS NULL AND hash = ANY($1)",
        )
        .bind(&hashes)
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
                (row.try_get(0)?, row.try_get(1)?),
            );
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
            fresh.push((outcomes.len() - 1, record, vector));
        }
        for chunk in fresh.chunks(RESTORE_ROWS) {
            let mut args = Args::default();
            let mut rows = Vec::with_capacity(chunk.len());
            for (_, r, vector) in chunk {
                let m = &r.item;
                let mut v = vector.clone();
                normalize(&mut v);
                let cells = [
                    Bind::Uuid(m.id),
                    Bind::Text(m.memory.clone()),
                    Bind::Text(m.hash.clone()),
                    Bind::Json(serde_json::Value::Object(m.metadata.clone())),
                    Bind::OptText(m.user_id.clone()),
                    Bind::OptText(m.agent_id.clone()),
                    Bind::OptText(m.run_id.clone()),
                    Bind::OptText(m.actor_id.clone()),
                    Bind::OptText(m.role.clone()),
                    Bind::Time(m.created_at),
                    Bind::Time(m.updated_at),
                    Bind::Time(m.valid_from),
                    Bind::OptTime(m.valid_to),
                    Bind::OptUuid(m.superseded_by),
                    Bind::Vector(v),
                ]
                .into_iter()
                .map(|b| args.push(b))
                .collect::<Vec<_>>();
                rows.push(format!("({})", cells.join(", ")));
            }
            // A row skipped here lost a race with another writer (same id,
            // or the same current text in its scope): the unique indexes.
            let sql = format!(
                "INSERT INTO homi_memories (id, memory, hash, metadata, user_id, agent_id, run_id, actor_id, role, \
                 created_at, updated_at, valid_from, valid_to, superseded_by, embedding) VALUES {} \
                 ON CONFLICT DO NOTHING RETURNING id",
                rows.join(", ")
            );
            let inserted: HashSet<Uuid> = bind_all(sqlx::query(AssertSqlSafe(sql)), &args)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| row.try_get::<Uuid, _>(0))
                .collect::<std::result::Result<_, _>>()?;
            for (at, r, _) in chunk {
                if inserted.contains(&r.item.id) {
                    continue;
                }
                let m = &r.item;
                let other = sqlx::query(
                    "SELECT id, memory FROM homi_memories WHERE id = $1 OR (hash = $2 \
                     AND user_id IS NOT DISTINCT FROM $3 AND agent_id IS NOT DISTINCT FROM $4 \
                     AND run_id IS NOT DISTINCT FROM $5 AND valid_to IS NULL) ORDER BY id = $1 DESC LIMIT 1",
                )
                .bind(m.id)
                .bind(&m.hash)
                .bind(&m.user_id)
                .bind(&m.agent_id)
                .bind(&m.run_id)
                .fetch_optional(&mut *tx)
                .await?;
                outcomes[*at] = match other {
                    Some(row) if row.try_get::<Uuid, _>(0)? != m.id => Outcome::Duplicate {
                        id: row.try_get(0)?,
                        text: row.try_get(1)?,
                    },
                    _ => Outcome::Exists { id: m.id },
                };
            }
            let history: Vec<(&crate::model::MemoryItem, &crate::model::HistoryEntry)> = chunk
                .iter()
                .filter(|(_, r, _)| inserted.contains(&r.item.id))
                .flat_map(|(_, r, _)| r.history.iter().map(move |h| (&r.item, h)))
                .collect();
            // In order (`pos` keeps it), 13 parameters a row.
            for part in history.chunks(HISTORY_ROWS) {
                let mut args = Args::default();
                let mut rows = Vec::with_capacity(part.len());
                for (m, h) in part {
                    let cells = [
                        Bind::Uuid(h.id),
                        Bind::Uuid(m.id),
                        Bind::OptText(h.old_memory.clone()),
                        Bind::OptText(h.new_memory.clone()),
                        Bind::Text(h.event.as_str().to_owned()),
                        Bind::Time(h.created_at),
                        Bind::OptTime(h.updated_at),
                        Bind::Bool(h.is_deleted),
                        Bind::OptText(h.actor_id.clone()),
                        Bind::OptText(h.role.clone()),
                        Bind::OptText(m.user_id.clone()),
                        Bind::OptText(m.agent_id.clone()),
                        Bind::OptText(m.run_id.clone()),
                    ]
                    .into_iter()
                    .map(|b| args.push(b))
                    .collect::<Vec<_>>();
                    rows.push(format!("({})", cells.join(", ")));
                }
                let sql = format!(
                    "INSERT INTO homi_memory_history (id, memory_id, old_memory, new_memory, event, created_at, \
                     updated_at, is_deleted, actor_id, role, user_id, agent_id, run_id) VALUES {} \
                     ON CONFLICT (id) DO NOTHING",
                    rows.join(", ")
                );
                bind_all(sqlx::query(AssertSqlSafe(sql)), &args)
                    .execute(&mut *tx)
                    .await?;
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
        let mut tx = self.pool.begin().await?;
        let wanted = target_value(target);
        // Upsert-and-lock the target row; a new target starts over.
        let previous: Option<String> =
            sqlx::query_scalar("SELECT value FROM homi_meta WHERE key = $1 FOR UPDATE")
                .bind(TARGET_KEY)
                .fetch_optional(&mut *tx)
                .await?;
        if previous.as_deref() != Some(wanted.as_str()) {
            sqlx::query("DELETE FROM homi_memory_reembed")
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO homi_meta (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            )
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
            "SELECT m.id, m.memory, m.hash {PENDING} ORDER BY m.id LIMIT $1"
        )))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let todo = rows
            .iter()
            .map(|r| {
                Ok(ReembedItem {
                    id: r.try_get(0)?,
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

    pub(super) async fn reembed_stage_vectors(
        &self,
        target: &EmbedderInfo,
        vectors: Vec<(Uuid, String, Vec<f32>)>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        check_target(&mut tx, target).await?;
        // Only for a memory that still exists with that text (one deleted
        // meanwhile leaves nothing behind); those rows are locked meanwhile.
        let ids: Vec<Uuid> = vectors.iter().map(|(id, _, _)| *id).collect();
        sqlx::query("SELECT id FROM homi_memories WHERE id = ANY($1) ORDER BY id FOR KEY SHARE")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
        for chunk in vectors.chunks(RESTORE_ROWS) {
            let mut args = Args::default();
            let mut rows = Vec::with_capacity(chunk.len());
            for (id, hash, vector) in chunk {
                let mut v = vector.clone();
                normalize(&mut v);
                let id = args.push(Bind::Uuid(*id));
                let hash = args.text(hash.clone());
                let e = args.push(Bind::Vector(v));
                rows.push(format!("({id}::uuid, {hash}::text, {e}::vector)"));
            }
            let sql = format!(
                "INSERT INTO homi_memory_reembed (id, hash, embedding) \
                 SELECT m.id, m.hash, v.e FROM (VALUES {}) AS v(id, hash, e) \
                 JOIN homi_memories m ON m.id = v.id AND m.hash = v.hash \
                 ON CONFLICT (id) DO UPDATE SET hash = EXCLUDED.hash, embedding = EXCLUDED.embedding",
                rows.join(", ")
            );
            bind_all(sqlx::query(AssertSqlSafe(sql)), &args)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn reembed_swap(&self, target: &EmbedderInfo) -> Result<Option<EmbedderInfo>> {
        let mut tx = self.pool.begin().await?;
        // Lock order: the embedder's rows first, as every writer of vectors
        // takes them (`apply`, `restore`): writes in flight finish first, and
        // later ones see the new embedder and refuse their old vectors.
        sqlx::query(
            "SELECT key FROM homi_meta WHERE key IN ('embedder_model', 'embedder_dims') \
             ORDER BY key FOR UPDATE",
        )
        .fetch_all(&mut *tx)
        .await?;
        check_target(&mut tx, target).await?;
        // No memory may change while the vectors are swapped.
        sqlx::query("LOCK TABLE homi_memories IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let pending: Option<i32> =
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT 1 {PENDING} LIMIT 1")))
                .fetch_optional(&mut *tx)
                .await?;
        if pending.is_some() {
            return Ok(None);
        }
        let sizes: Vec<i32> = sqlx::query_scalar(
            "SELECT DISTINCT vector_dims(s.embedding) FROM homi_memory_reembed s \
             JOIN homi_memories m ON m.id = s.id",
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
                    "DROP INDEX IF EXISTS homi_memories_embedding_hnsw",
                ] {
                    sqlx::query(sql).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                return Ok(Some(target.clone()));
            }
            [d] => usize::try_from(*d).unwrap_or_default(),
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
        // The index is on the old dimension's cast.
        sqlx::query("DROP INDEX IF EXISTS homi_memories_embedding_hnsw")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE homi_memories m SET embedding = s.embedding FROM homi_memory_reembed s WHERE s.id = m.id",
        )
        .execute(&mut *tx)
        .await?;
        let info = EmbedderInfo {
            model: target.model.clone(),
            dims,
        };
        sqlx::query(
            "INSERT INTO homi_meta (key, value) VALUES ('embedder_model', $1), ('embedder_dims', $2) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        )
        .bind(&info.model)
        .bind(info.dims.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM homi_memory_reembed")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM homi_meta WHERE key = $1")
            .bind(TARGET_KEY)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        // After the commit, concurrently: a plain build would also read the
        // replaced row versions (of the old size) while any snapshot sees them.
        if let Err(e) = build_vector_index_concurrently(&self.pool).await {
            tracing::warn!(
                error = %e,
                "the vector index for the new embedder could not be built; searches scan \
                 exactly until the next open of the store builds it"
            );
        }
        Ok(Some(info))
    }
}
