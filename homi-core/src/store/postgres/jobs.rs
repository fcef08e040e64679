//! [`JobStore`] on Postgres: one queue for every Homi process on the
//! database; claims use `FOR UPDATE SKIP LOCKED`.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::PostgresStore;
use crate::error::{Error, Result};
use crate::store::jobs::{Job, JobCounts, JobKind, JobStore, NewJob};

/// Why a job whose worker vanished on its last attempt is dead.
const LOST_ON_LAST_ATTEMPT: &str =
    "the worker running the last attempt stopped before finishing (its lease ran out)";

/// Writes a job (also inside other transactions, e.g. with a chat turn).
pub(super) async fn insert_job(
    conn: &mut sqlx::PgConnection,
    job: &NewJob,
    now: DateTime<Utc>,
) -> Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO homi_jobs (id, kind, user_id, payload, state, attempts, max_attempts, run_at, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6, $6, $6)",
    )
    .bind(id)
    .bind(job.kind.as_str())
    .bind(&job.user_id)
    .bind(sqlx::types::Json(&job.payload))
    .bind(i32::try_from(job.max_attempts).unwrap_or(i32::MAX))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(id)
}

#[async_trait]
impl JobStore for PostgresStore {
    async fn enqueue(&self, job: &NewJob, now: DateTime<Utc>) -> Result<Uuid> {
        let mut conn = self.pool.acquire().await?;
        insert_job(&mut conn, job, now).await
    }

    async fn claim(&self, now: DateTime<Utc>, lease: Duration) -> Result<Option<Job>> {
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::zero());
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE homi_jobs SET state = 'dead', payload = '{}'::jsonb, locked_until = NULL, \
             last_error = $1, updated_at = $2 \
             WHERE state = 'running' AND locked_until <= $2 AND attempts >= max_attempts",
        )
        .bind(LOST_ON_LAST_ATTEMPT)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // Lost leases first, then the oldest runnable job: two index range
        // reads (state, run_at) instead of one OR that reads and sorts every
        // queued job, which made each claim cost O(queue length).
        let row = sqlx::query(
            "UPDATE homi_jobs j SET state = 'running', attempts = j.attempts + 1, locked_until = $2, \
             updated_at = $1 WHERE j.id = COALESCE(\
               (SELECT id FROM homi_jobs WHERE state = 'running' AND locked_until <= $1 \
                LIMIT 1 FOR UPDATE SKIP LOCKED), \
               (SELECT id FROM homi_jobs WHERE state = 'queued' AND run_at <= $1 \
                ORDER BY run_at LIMIT 1 FOR UPDATE SKIP LOCKED)) \
             RETURNING j.id, j.kind, j.user_id, j.payload, j.attempts, j.max_attempts, j.created_at",
        )
        .bind(now)
        .bind(until)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let kind: String = row.try_get(1)?;
        let payload: sqlx::types::Json<serde_json::Value> = row.try_get(3)?;
        Ok(Some(Job {
            id: row.try_get(0)?,
            kind: JobKind::parse(&kind)
                .ok_or_else(|| Error::storage(format!("unknown job kind '{kind}'")))?,
            user_id: row.try_get(2)?,
            payload: payload.0,
            attempt: u32::try_from(row.try_get::<i32, _>(4)?).unwrap_or(u32::MAX),
            max_attempts: u32::try_from(row.try_get::<i32, _>(5)?).unwrap_or(1),
            created_at: row.try_get(6)?,
        }))
    }

    async fn complete(&self, id: Uuid, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE homi_jobs SET state = 'done', payload = '{}'::jsonb, locked_until = NULL, \
             last_error = NULL, updated_at = $1 WHERE id = $2",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn fail(
        &self,
        id: Uuid,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        match retry_at {
            Some(at) => sqlx::query(
                "UPDATE homi_jobs SET state = 'queued', run_at = $1, locked_until = NULL, \
                 last_error = $2, updated_at = $3 WHERE id = $4",
            )
            .bind(at)
            .bind(error)
            .bind(now)
            .bind(id),
            None => sqlx::query(
                "UPDATE homi_jobs SET state = 'dead', payload = '{}'::jsonb, locked_until = NULL, \
                 last_error = $1, updated_at = $2 WHERE id = $3",
            )
            .bind(error)
            .bind(now)
            .bind(id),
        }
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn counts(&self, user: Option<&str>) -> Result<JobCounts> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT state, COUNT(*), COUNT(*) FILTER (WHERE attempts > 0) FROM homi_jobs \
             WHERE ($1::text IS NULL OR user_id = $1) GROUP BY state",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        Ok(JobCounts::tally(rows))
    }
}
