//! Moving a store to another embedder (`homi memory reembed`) on Postgres:
//! vectors staged beside the memories, then swapped in at once.

use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::{Args, Bind, PgDialect, PostgresStore, bind_all, build_vector_index_concurrently};
use crate::error::{Error, Result};
use crate::store::sql;
use crate::store::{EmbedderInfo, normalize};

/// Vectors per multi-row statement while staging (3 parameters each).
const STAGE_ROWS: usize = 200;

impl PostgresStore {
    pub(super) async fn reembed_stage_vectors(
        &self,
        target: &EmbedderInfo,
        vectors: Vec<(Uuid, String, Vec<f32>)>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sql::transfer::check_target::<PgDialect>(&mut tx, target).await?;
        // Only for a memory that still exists with that text (one deleted
        // meanwhile leaves nothing behind); those rows are locked meanwhile.
        let ids: Vec<Uuid> = vectors.iter().map(|(id, _, _)| *id).collect();
        sqlx::query("SELECT id FROM homi_memories WHERE id = ANY($1) ORDER BY id FOR KEY SHARE")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
        for chunk in vectors.chunks(STAGE_ROWS) {
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
        sql::transfer::check_target::<PgDialect>(&mut tx, target).await?;
        // No memory may change while the vectors are swapped.
        sqlx::query("LOCK TABLE homi_memories IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let pending: Option<i32> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT 1 {} LIMIT 1",
            sql::transfer::pending_sql::<PgDialect>()
        )))
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
            .bind(sql::transfer::TARGET_KEY)
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
