//! [`JobStore`] on SQLite: the durable job queue in the same file as the memories.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::{SqliteStore, parse_uuid, to_time};
use crate::error::{Error, Result};
use crate::store::jobs::{Job, JobCounts, JobKind, JobStore, NewJob};

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// Why a job whose worker vanished on its last attempt is dead.
const LOST_ON_LAST_ATTEMPT: &str =
    "the worker running the last attempt stopped before finishing (its lease ran out)";

/// Writes a job (also inside other transactions, e.g. with a chat turn).
pub(super) async fn insert_job(
    conn: &mut sqlx::SqliteConnection,
    job: &NewJob,
    now: DateTime<Utc>,
) -> Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO homi_jobs (id, kind, user_id, payload, state, attempts, max_attempts, run_at, \
         created_at, updated_at) VALUES (?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?)",
    )
    .bind(id.to_string())
    .bind(job.kind.as_str())
    .bind(&job.user_id)
    .bind(job.payload.to_string())
    .bind(i64::from(job.max_attempts))
    .bind(micros(now))
    .bind(micros(now))
    .bind(micros(now))
    .execute(conn)
    .await?;
    Ok(id)
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn enqueue(&self, job: &NewJob, now: DateTime<Utc>) -> Result<Uuid> {
        let mut conn = self.writer.acquire().await?;
        insert_job(&mut conn, job, now).await
    }

    async fn claim(&self, now: DateTime<Utc>, lease: Duration) -> Result<Option<Job>> {
        let now_us = micros(now);
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::zero());
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "UPDATE homi_jobs SET state = 'dead', payload = '{}', locked_until = NULL, last_error = ?, \
             updated_at = ? WHERE state = 'running' AND locked_until <= ? AND attempts >= max_attempts",
        )
        .bind(LOST_ON_LAST_ATTEMPT)
        .bind(now_us)
        .bind(now_us)
        .execute(&mut *tx)
        .await?;
        // Lost leases first, then the oldest runnable job: two index range
        // reads (state, run_at) instead of one OR that reads and sorts every
        // queued job, which made each claim cost O(queue length).
        let row = sqlx::query(
            "UPDATE homi_jobs SET state = 'running', attempts = attempts + 1, locked_until = ?, updated_at = ? \
             WHERE id = COALESCE(\
               (SELECT id FROM homi_jobs WHERE state = 'running' AND locked_until <= ? LIMIT 1), \
               (SELECT id FROM homi_jobs WHERE state = 'queued' AND run_at <= ? ORDER BY run_at LIMIT 1)) \
             RETURNING id, kind, user_id, payload, attempts, max_attempts, created_at",
        )
        .bind(micros(until))
        .bind(now_us)
        .bind(now_us)
        .bind(now_us)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let kind: String = row.try_get(1)?;
        let payload: String = row.try_get(3)?;
        Ok(Some(Job {
            id: parse_uuid(&row.try_get::<String, _>(0)?)?,
            kind: JobKind::parse(&kind)
                .ok_or_else(|| Error::storage(format!("unknown job kind '{kind}'")))?,
            user_id: row.try_get(2)?,
            payload: serde_json::from_str(&payload)
                .map_err(|e| Error::storage(format!("corrupt job payload: {e}")))?,
            attempt: u32::try_from(row.try_get::<i64, _>(4)?).unwrap_or(u32::MAX),
            max_attempts: u32::try_from(row.try_get::<i64, _>(5)?).unwrap_or(1),
            created_at: to_time(row.try_get(6)?),
        }))
    }

    async fn complete(&self, id: Uuid, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE homi_jobs SET state = 'done', payload = '{}', locked_until = NULL, last_error = NULL, \
             updated_at = ? WHERE id = ?",
        )
        .bind(micros(now))
        .bind(id.to_string())
        .execute(&self.writer)
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
        let q = match retry_at {
            Some(at) => sqlx::query(
                "UPDATE homi_jobs SET state = 'queued', run_at = ?, locked_until = NULL, last_error = ?, \
                 updated_at = ? WHERE id = ?",
            )
            .bind(micros(at)),
            None => sqlx::query(
                "UPDATE homi_jobs SET state = 'dead', payload = '{}', locked_until = NULL, last_error = ?, \
                 updated_at = ? WHERE id = ?",
            ),
        };
        q.bind(error)
            .bind(micros(now))
            .bind(id.to_string())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn counts(&self, user: Option<&str>) -> Result<JobCounts> {
        let rows: Vec<(String, i64, i64)> = match user {
            None => {
                sqlx::query_as("SELECT state, COUNT(*), SUM(attempts > 0) FROM homi_jobs GROUP BY state")
                    .fetch_all(&self.pool)
                    .await?
            }
            Some(u) => sqlx::query_as(
                "SELECT state, COUNT(*), SUM(attempts > 0) FROM homi_jobs WHERE user_id = ? GROUP BY state",
            )
            .bind(u)
            .fetch_all(&self.pool)
            .await?,
        };
        Ok(JobCounts::tally(rows))
    }
}
