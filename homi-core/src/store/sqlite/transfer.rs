//! Moving a store to another embedder (`homi memory reembed`) on SQLite:
//! vectors staged beside the memories, then swapped in at once.

use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::{SqliteDialect, SqliteStore, bump_seq, encode_vec};
use crate::error::{Error, Result};
use crate::store::sql;
use crate::store::{EmbedderInfo, normalize};

/// Vectors per multi-row statement while staging (3 parameters each).
const STAGE_ROWS: usize = 200;

impl SqliteStore {
    pub(super) async fn reembed_stage_vectors(
        &self,
        target: &EmbedderInfo,
        vectors: Vec<(Uuid, String, Vec<f32>)>,
    ) -> Result<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        sql::transfer::check_target::<SqliteDialect>(&mut tx, target).await?;
        // Only for a memory that still exists with that text: one deleted
        // meanwhile leaves nothing behind.
        for chunk in vectors.chunks(STAGE_ROWS) {
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
        sql::transfer::check_target::<SqliteDialect>(&mut tx, target).await?;
        let pending: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT 1 {} LIMIT 1",
            sql::transfer::pending_sql::<SqliteDialect>()
        )))
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
            .bind(sql::transfer::TARGET_KEY)
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
