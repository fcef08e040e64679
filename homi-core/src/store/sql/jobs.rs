//! [`JobStore`] on any SQL store, written once: the durable job queue. On
//! Postgres, claims skip rows another process holds (`FOR UPDATE SKIP
//! LOCKED`), so every Homi process on the database shares one queue.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{Bind, Columns, Dialect, Driver, Exec, SqlStore, binds};
use crate::error::{Error, Result};
use crate::store::jobs::{Job, JobCounts, JobKind, JobStore, NewJob};

/// Why a job whose worker vanished on its last attempt is dead.
const LOST_ON_LAST_ATTEMPT: &str =
    "the worker running the last attempt stopped before finishing (its lease ran out)";

/// Writes a job (also inside other transactions, e.g. with a chat turn).
pub(crate) async fn insert_job<D: Driver>(
    c: &mut D::Conn,
    job: &NewJob,
    now: DateTime<Utc>,
) -> Result<Uuid> {
    let id = Uuid::new_v4();
    let (p, args) = binds::<D, 8>([
        id.into(),
        job.kind.as_str().into(),
        job.user_id.clone().into(),
        Bind::Json(job.payload.clone()),
        i64::from(job.max_attempts).into(),
        job.not_before.unwrap_or(now).into(),
        now.into(),
        now.into(),
    ]);
    let sql = format!(
        "INSERT INTO homi_jobs (id, kind, user_id, payload, max_attempts, run_at, created_at, updated_at, \
         state, attempts) VALUES ({}, 'queued', 0)",
        p.join(", ")
    );
    c.run(sql, args).await?;
    Ok(id)
}

/// `FOR UPDATE SKIP LOCKED` on a driver that locks rows.
fn skip_locked<D: Driver>() -> &'static str {
    if D::LOCKS_ROWS {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    }
}

fn job_from_row(row: &impl Columns) -> Result<Job> {
    let kind = row.text(1)?;
    Ok(Job {
        id: row.uuid(0)?,
        kind: JobKind::parse(&kind)
            .ok_or_else(|| Error::storage(format!("unknown job kind '{kind}'")))?,
        user_id: row.opt_text(2)?,
        payload: row.json(3)?,
        attempt: u32::try_from(row.int(4)?).unwrap_or(u32::MAX),
        max_attempts: u32::try_from(row.int(5)?).unwrap_or(1),
        created_at: row.time(6)?,
        lease: row.uuid(7)?,
    })
}

#[async_trait]
impl<S: SqlStore> JobStore for S {
    async fn enqueue(&self, job: &NewJob, now: DateTime<Utc>) -> Result<Uuid> {
        let mut c = self.writer().await?;
        let id = insert_job::<S::D>(&mut c, job, now).await?;
        Ok(id)
    }

    async fn claim(&self, now: DateTime<Utc>, lease: Duration) -> Result<Option<Job>> {
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::zero());
        let mut tx = self.write().await?;
        // One claim at a time across processes: two claims must not both
        // see a user without a running job.
        if !S::D::CLAIM_LOCK.is_empty() {
            tx.run(S::D::CLAIM_LOCK.to_owned(), Default::default())
                .await?;
        }
        let ([p, e, t1, t2], args) = binds::<S::D, 4>([
            Bind::Json(Value::Object(Default::default())),
            LOST_ON_LAST_ATTEMPT.into(),
            now.into(),
            now.into(),
        ]);
        let sql = format!(
            "UPDATE homi_jobs SET state = 'dead', payload = {p}, locked_until = NULL, last_error = {e}, \
             updated_at = {t1} WHERE state = 'running' AND locked_until <= {t2} AND attempts >= max_attempts"
        );
        tx.run(sql, args).await?;
        // Lost leases first, then the oldest runnable job of a user with
        // none running: index range reads (state, run_at), and the running
        // jobs of a user through their own small index, instead of one OR
        // that reads and sorts every queued job. A user's backlog is passed
        // over, so it holds one worker at most.
        let ([u, k, t, lost, due, live], args) = binds::<S::D, 6>([
            until.into(),
            Uuid::new_v4().into(),
            now.into(),
            now.into(),
            now.into(),
            now.into(),
        ]);
        let skip = skip_locked::<S::D>();
        let sql = format!(
            "UPDATE homi_jobs SET state = 'running', attempts = attempts + 1, locked_until = {u}, \
             lease_token = {k}, updated_at = {t} WHERE id = COALESCE(\
               (SELECT id FROM homi_jobs WHERE state = 'running' AND locked_until <= {lost} LIMIT 1{skip}), \
               (SELECT id FROM homi_jobs q WHERE state = 'queued' AND run_at <= {due} \
                AND NOT EXISTS (SELECT 1 FROM homi_jobs r WHERE r.state = 'running' \
                  AND r.user_id = q.user_id AND r.locked_until > {live}) \
                ORDER BY run_at LIMIT 1{skip})) \
             RETURNING id, kind, user_id, payload, CAST(attempts AS BIGINT), \
             CAST(max_attempts AS BIGINT), created_at, lease_token"
        );
        let row = tx.optional(sql, args).await?;
        tx.commit().await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn renew(
        &self,
        id: Uuid,
        lease_token: Uuid,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<bool> {
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::zero());
        let mut c = self.writer().await?;
        let ([u, t, i, k], args) =
            binds::<S::D, 4>([until.into(), now.into(), id.into(), lease_token.into()]);
        let sql = format!(
            "UPDATE homi_jobs SET locked_until = {u}, updated_at = {t} \
             WHERE id = {i} AND state = 'running' AND lease_token = {k}"
        );
        Ok(c.run(sql, args).await? > 0)
    }

    async fn complete(&self, id: Uuid, lease_token: Uuid, now: DateTime<Utc>) -> Result<bool> {
        let mut c = self.writer().await?;
        let ([p, t, i, k], args) = binds::<S::D, 4>([
            Bind::Json(Value::Object(Default::default())),
            now.into(),
            id.into(),
            lease_token.into(),
        ]);
        let sql = format!(
            "UPDATE homi_jobs SET state = 'done', payload = {p}, locked_until = NULL, last_error = NULL, \
             updated_at = {t} WHERE id = {i} AND state = 'running' AND lease_token = {k}"
        );
        Ok(c.run(sql, args).await? > 0)
    }

    async fn fail(
        &self,
        id: Uuid,
        lease_token: Uuid,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut c = self.writer().await?;
        let (change, mut args) = match retry_at {
            Some(at) => {
                let ([r], args) = binds::<S::D, 1>([at.into()]);
                (format!("state = 'queued', run_at = {r}"), args)
            }
            // Nothing of a dead job's input is kept.
            None => {
                let ([p], args) = binds::<S::D, 1>([Bind::Json(Value::Object(Default::default()))]);
                (format!("state = 'dead', payload = {p}"), args)
            }
        };
        let e = S::D::bind(&mut args, error.into());
        let t = S::D::bind(&mut args, now.into());
        let i = S::D::bind(&mut args, id.into());
        let k = S::D::bind(&mut args, lease_token.into());
        let sql = format!(
            "UPDATE homi_jobs SET {change}, locked_until = NULL, last_error = {e}, updated_at = {t} \
             WHERE id = {i} AND state = 'running' AND lease_token = {k}"
        );
        Ok(c.run(sql, args).await? > 0)
    }

    async fn hurry(&self, id: Uuid, now: DateTime<Utc>) -> Result<()> {
        let mut c = self.writer().await?;
        let ([t, i, later], args) = binds::<S::D, 3>([now.into(), id.into(), now.into()]);
        let sql = format!(
            "UPDATE homi_jobs SET run_at = {t} WHERE id = {i} AND state = 'queued' AND run_at > {later}"
        );
        c.run(sql, args).await?;
        Ok(())
    }

    async fn backlog(&self) -> Result<JobCounts> {
        let sql = "SELECT state, COUNT(*), SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END) \
                   FROM homi_jobs WHERE state IN ('queued', 'running') GROUP BY state"
            .to_owned();
        let mut c = self.read().await?;
        let rows = c.all(sql, Default::default()).await?;
        let rows = rows
            .iter()
            .map(|r| Ok((r.text(0)?, r.int(1)?, r.int(2)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(JobCounts::tally(rows))
    }

    async fn prune(&self, done_before: DateTime<Utc>, dead_before: DateTime<Utc>) -> Result<u64> {
        let mut c = self.writer().await?;
        let ([d, x], args) = binds::<S::D, 2>([done_before.into(), dead_before.into()]);
        let sql = format!(
            "DELETE FROM homi_jobs WHERE (state = 'done' AND updated_at < {d}) \
             OR (state = 'dead' AND updated_at < {x})"
        );
        c.run(sql, args).await
    }

    async fn counts(&self, user: Option<&str>) -> Result<JobCounts> {
        let mut args = Default::default();
        let whose = match user {
            Some(u) => format!("WHERE user_id = {} ", S::D::bind(&mut args, u.into())),
            None => String::new(),
        };
        let sql = format!(
            "SELECT state, COUNT(*), SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END) FROM homi_jobs \
             {whose}GROUP BY state"
        );
        let mut c = self.read().await?;
        let rows = c.all(sql, args).await?;
        let rows = rows
            .iter()
            .map(|r| Ok((r.text(0)?, r.int(1)?, r.int(2)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(JobCounts::tally(rows))
    }
}
