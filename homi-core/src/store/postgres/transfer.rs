//! Whole-memory export and restore, and moving a store to another embedder
//! (`homi memory export|import|reembed`), on Postgres.

use std::collections::HashMap;

use pgvector::Vector;
use sqlx::{AssertSqlSafe, PgConnection, Row};
use uuid::Uuid;

use super::{
    Args, Bind, COLUMNS, PostgresStore, bind_all, build_vector_index_concurrently,
    history_from_row, item_from_row, read_embedder, read_embedder_locked, scope_sql,
};
use crate::error::{Error, Result};
use crate::memory::Scope;
use crate::store::{
    EmbedderInfo, MemoryRecord, Outcome, RecordEmbedding, ReembedBatch, ReembedItem, normalize,
};

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
        scope: &Scope,
        after: Option<Uuid>,
        limit: usize,
        embeddings: bool,
    ) -> Result<Vec<MemoryRecord>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let mut args = Args::default();
        let w = scope_sql(scope, "m", &mut args);
        let a = args.push(Bind::OptUuid(after));
        let l = args.push(Bind::I64(i64::try_from(limit).unwrap_or(i64::MAX)));
        let extra = if embeddings { ", m.embedding" } else { "" };
        let sql = format!(
            "SELECT {COLUMNS}{extra} FROM homi_memories m WHERE {w} AND ({a}::uuid IS NULL OR m.id > {a}) ORDER BY m.id LIMIT {l}"
        );
        let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), &args)
            .fetch_all(&mut *tx)
            .await?;
        let model = if embeddings {
            read_embedder(&mut tx).await?.map(|e| e.model)
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
        let Some(info) = read_embedder_locked(&mut tx).await? else {
            return Err(Error::storage(
                "no embedder is recorded in the store; bind one before restoring",
            ));
        };
        info.must_match(embedder)?;
        let mut outcomes = Vec::with_capacity(records.len());
        for (record, mut vector) in records {
            let m = &record.item;
            if vector.len() != info.dims {
                return Err(Error::invalid(
                    "embedding",
                    format!(
                        "memory {} has a {}-dimension vector; the store holds {}",
                        m.id,
                        vector.len(),
                        info
                    ),
                ));
            }
            normalize(&mut vector);
            // Skipped when the id exists, or (for a current memory) when its
            // text is current in its scope under another id: the unique index.
            let inserted = sqlx::query(
                "INSERT INTO homi_memories (id, memory, hash, metadata, user_id, agent_id, run_id, actor_id, role, \
                 created_at, updated_at, valid_from, valid_to, superseded_by, embedding) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
                 ON CONFLICT DO NOTHING RETURNING id",
            )
            .bind(m.id)
            .bind(&m.memory)
            .bind(&m.hash)
            .bind(sqlx::types::Json(&m.metadata))
            .bind(&m.user_id)
            .bind(&m.agent_id)
            .bind(&m.run_id)
            .bind(&m.actor_id)
            .bind(&m.role)
            .bind(m.created_at)
            .bind(m.updated_at)
            .bind(m.valid_from)
            .bind(m.valid_to)
            .bind(m.superseded_by)
            .bind(Vector::from(vector))
            .fetch_optional(&mut *tx)
            .await?;
            if inserted.is_none() {
                let exists = sqlx::query("SELECT 1 FROM homi_memories WHERE id = $1")
                    .bind(m.id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if exists.is_some() {
                    outcomes.push(Outcome::Exists { id: m.id });
                    continue;
                }
                let row = sqlx::query(
                    "SELECT id, memory FROM homi_memories WHERE hash = $1 AND user_id IS NOT DISTINCT FROM $2 \
                     AND agent_id IS NOT DISTINCT FROM $3 AND run_id IS NOT DISTINCT FROM $4 AND valid_to IS NULL",
                )
                .bind(&m.hash)
                .bind(&m.user_id)
                .bind(&m.agent_id)
                .bind(&m.run_id)
                .fetch_one(&mut *tx)
                .await?;
                outcomes.push(Outcome::Duplicate {
                    id: row.try_get(0)?,
                    text: row.try_get(1)?,
                });
                continue;
            }
            for h in &record.history {
                sqlx::query(
                    "INSERT INTO homi_memory_history (id, memory_id, old_memory, new_memory, event, created_at, \
                     updated_at, is_deleted, actor_id, role, user_id, agent_id, run_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (id) DO NOTHING",
                )
                .bind(h.id)
                .bind(m.id)
                .bind(&h.old_memory)
                .bind(&h.new_memory)
                .bind(h.event.as_str())
                .bind(h.created_at)
                .bind(h.updated_at)
                .bind(h.is_deleted)
                .bind(&h.actor_id)
                .bind(&h.role)
                .bind(&m.user_id)
                .bind(&m.agent_id)
                .bind(&m.run_id)
                .execute(&mut *tx)
                .await?;
            }
            outcomes.push(Outcome::Added {
                id: m.id,
                text: m.memory.clone(),
            });
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
        for (id, hash, mut vector) in vectors {
            normalize(&mut vector);
            // Only for a memory that still exists with that text (one deleted
            // meanwhile leaves nothing behind); its row is locked meanwhile.
            let current = sqlx::query(
                "SELECT 1 FROM homi_memories WHERE id = $1 AND hash = $2 FOR KEY SHARE",
            )
            .bind(id)
            .bind(&hash)
            .fetch_optional(&mut *tx)
            .await?;
            if current.is_none() {
                continue;
            }
            sqlx::query(
                "INSERT INTO homi_memory_reembed (id, hash, embedding) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET hash = EXCLUDED.hash, embedding = EXCLUDED.embedding",
            )
            .bind(id)
            .bind(hash)
            .bind(Vector::from(vector))
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
