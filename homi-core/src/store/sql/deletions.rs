//! "Forget everything" wins over work in flight, written once.
//!
//! A write that needs time before it reaches the store (embedding texts,
//! asking the model what to remember) takes a [`DeletionMark`] of its scope
//! first. Each delete-all bumps the epoch of one key of its scope and logs
//! its exact scope; the write, in its own transaction, checks that no
//! deletion covering its scope came after its mark, and writes nothing if
//! one did. On Postgres the write holds its keys' epoch rows `FOR SHARE`, so
//! a delete-all committing meanwhile is waited for and then seen; on SQLite
//! the write transaction holds the database.
//!
//! Keys are digests (`u:`, `a:`, `r:` and the MD5 of the id), so the tables
//! hold no user id. A deletion's key is its most specific id's (its user's,
//! else its agent's, else its run's); a write's keys are all of its scope's,
//! so every deletion that could cover the write shares a key with it. A
//! reset bumps the key `*`, which every write reads too.

use chrono::{DateTime, Utc};

use super::{Bind, Columns, Driver, Exec, bind_list};
use crate::error::{Error, Result};
use crate::model::Scope;
use crate::model::types::text_hash;
use crate::store::DeletionMark;

/// The key every write reads and a reset bumps.
pub(crate) const EVERYTHING: &str = "*";

/// How long a deletion stays in the log: longer than any work in flight
/// (a job's lease is renewed while it runs, a provider call has a deadline).
const KEPT: chrono::Duration = chrono::Duration::days(1);

fn digest(prefix: &str, id: &Option<String>) -> Option<String> {
    id.as_deref()
        .map(|id| format!("{prefix}:{}", text_hash(id)))
}

/// The digests of a scope's ids: user, agent, run.
fn digests(scope: &Scope) -> [Option<String>; 3] {
    [
        digest("u", &scope.user_id),
        digest("a", &scope.agent_id),
        digest("r", &scope.run_id),
    ]
}

/// The keys a write to `scope` is checked against.
fn write_keys(scope: &Scope) -> Vec<String> {
    std::iter::once(EVERYTHING.to_owned())
        .chain(digests(scope).into_iter().flatten())
        .collect()
}

/// The epochs of `keys` now (0 for a key never bumped).
async fn epochs<D: Driver>(
    c: &mut D::Conn,
    keys: &[String],
    lock: &str,
) -> Result<Vec<(String, i64)>> {
    let mut args = D::Args::default();
    let list = bind_list::<D>(&mut args, keys.iter().map(|k| Bind::Text(k.clone())));
    let sql = format!(
        "SELECT scope_key, CAST(epoch AS BIGINT) FROM homi_scope_epochs \
         WHERE scope_key IN ({list}){lock}"
    );
    let rows = c.all(sql, args).await?;
    let mut found = Vec::with_capacity(keys.len());
    for key in keys {
        let mut epoch = 0;
        for row in &rows {
            if row.text(0)? == *key {
                epoch = row.int(1)?;
            }
        }
        found.push((key.clone(), epoch));
    }
    Ok(found)
}

/// The mark a write to `scope` takes before its slow part.
pub(crate) async fn mark<D: Driver>(c: &mut D::Conn, scope: &Scope) -> Result<DeletionMark> {
    let keys = write_keys(scope);
    Ok(DeletionMark {
        scope: scope.clone(),
        epochs: epochs::<D>(c, &keys, "").await?,
    })
}

/// Records, inside a delete-all's transaction and before it deletes, that
/// `scope` (or everything, for `None`) is being deleted now.
pub(crate) async fn record<D: Driver>(
    c: &mut D::Conn,
    scope: Option<&Scope>,
    now: DateTime<Utc>,
) -> Result<()> {
    let ids = scope.map(digests).unwrap_or_default();
    let key = ids
        .iter()
        .flatten()
        .next()
        .cloned()
        .unwrap_or_else(|| EVERYTHING.to_owned());
    let ([k], args) = super::binds::<D, 1>([key.clone().into()]);
    let sql = format!(
        "INSERT INTO homi_scope_epochs (scope_key, epoch) VALUES ({k}, 1) \
         ON CONFLICT (scope_key) DO UPDATE SET epoch = homi_scope_epochs.epoch + 1 \
         RETURNING CAST(epoch AS BIGINT)"
    );
    let epoch = c
        .optional(sql, args)
        .await?
        .ok_or_else(|| Error::storage("a deletion's epoch was not recorded"))?
        .int(0)?;
    let [u, a, r] = ids;
    let (p, args) = super::binds::<D, 6>([
        key.into(),
        epoch.into(),
        u.into(),
        a.into(),
        r.into(),
        now.into(),
    ]);
    let sql = format!(
        "INSERT INTO homi_scope_deletions (scope_key, epoch, user_key, agent_key, run_key, deleted_at) \
         VALUES ({})",
        p.join(", ")
    );
    c.run(sql, args).await?;
    let ([old], args) = super::binds::<D, 1>([(now - KEPT).into()]);
    c.run(
        format!("DELETE FROM homi_scope_deletions WHERE deleted_at < {old}"),
        args,
    )
    .await?;
    Ok(())
}

/// Fails with [`Error::DeletedMeanwhile`], before anything is written, when a deletion that
/// covers the mark's scope came after the mark. Called first in a write's
/// transaction.
pub(crate) async fn check<D: Driver>(c: &mut D::Conn, since: &DeletionMark) -> Result<()> {
    let keys: Vec<String> = since.epochs.iter().map(|(k, _)| k.clone()).collect();
    // Make each key's row exist (on Postgres this waits for a delete-all
    // that is inserting it), then hold them until this write commits.
    for key in keys.iter().filter(|k| *k != EVERYTHING) {
        let ([k], args) = super::binds::<D, 1>([key.clone().into()]);
        let sql = format!(
            "INSERT INTO homi_scope_epochs (scope_key, epoch) VALUES ({k}, 0) \
             ON CONFLICT (scope_key) DO NOTHING"
        );
        c.run(sql, args).await?;
    }
    let lock = if D::LOCKS_ROWS {
        " ORDER BY scope_key FOR SHARE"
    } else {
        ""
    };
    let now = epochs::<D>(c, &keys, lock).await?;
    let [u, a, r] = digests(&since.scope);
    for ((key, then), (_, now)) in since.epochs.iter().zip(&now) {
        if now <= then {
            continue;
        }
        // A deletion of this key came since: does it cover this scope?
        let (p, args) = super::binds::<D, 5>([
            key.clone().into(),
            (*then).into(),
            u.clone().into(),
            a.clone().into(),
            r.clone().into(),
        ]);
        let sql = format!(
            "SELECT 1 FROM homi_scope_deletions WHERE scope_key = {} AND epoch > {} \
             AND (user_key IS NULL OR user_key = {}) AND (agent_key IS NULL OR agent_key = {}) \
             AND (run_key IS NULL OR run_key = {}) LIMIT 1",
            p[0], p[1], p[2], p[3], p[4]
        );
        if c.optional(sql, args).await?.is_some() {
            return Err(Error::DeletedMeanwhile);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_has_every_key_a_covering_deletion_could_have() {
        let write = Scope {
            user_id: Some("u1".into()),
            agent_id: Some("a1".into()),
            run_id: None,
        };
        let keys = write_keys(&write);
        assert_eq!(keys.len(), 3);
        assert_eq!(keys[0], EVERYTHING);
        // The deletions that could cover it: of the user, of the agent.
        for deletion in [Scope::user("u1"), Scope::agent("a1")] {
            let first = digests(&deletion)
                .into_iter()
                .flatten()
                .next()
                .unwrap_or_default();
            assert!(keys.contains(&first), "{deletion:?}");
        }
        assert!(
            !keys.iter().any(|k| k.contains("u1")),
            "ids are stored as digests"
        );
    }
}
