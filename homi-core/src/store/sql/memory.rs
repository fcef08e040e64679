//! The memory store's deletions, history and reads, written once over a
//! [`MemoryDriver`]. Each runs inside the caller's transaction: the store
//! begins it (SQLite's `BEGIN IMMEDIATE`, Postgres' default) and commits.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::row::{item_at, memory_columns};
use super::{
    Bind, Columns, Driver, Exec, access_sql, bind_list, job_scope_sql, live_sql, readable_sql,
    scope_sql,
};
use crate::error::{Error, Result};
use crate::model::{Access, Event, HistoryEntry, MemoryItem, Scope};
use crate::store::{EmbedderInfo, ReadParams, normalize};

/// Ids per `IN (…)` list.
pub(crate) const IN_CHUNK: usize = 500;
/// History entries per multi-row insert (13 parameters each).
const ENTRIES_PER_INSERT: usize = 400;

/// What a database keeps beside the memories' rows. SQLite stamps each
/// write with a change number and records deletions, so that the vector
/// caches of every process can catch up; Postgres keeps nothing.
#[async_trait]
pub(crate) trait MemoryDriver: Driver {
    /// Whether a memory's vector is a column of its row (`embedding`), or a
    /// row of `homi_memory_embeddings` keyed by the memory's `rid`.
    const VECTOR_INLINE: bool;
    /// Whether memories carry the change number of their last write (`seq`).
    const STAMPED: bool;
    /// What a read of the recorded embedder appends to hold it until the
    /// transaction ends (a re-embedding's swap changes it).
    const SHARE_LOCK: &'static str;
    /// What a read of a memory about to change appends to lock its row.
    const ROW_LOCK: &'static str;
    /// Equality that holds between two NULLs.
    const SAME: &'static str;
    /// What a transaction that records the first embedder runs before it
    /// reads (nothing where the write transaction holds the database).
    const META_LOCK: &'static str;

    /// Starts a write's bookkeeping; returns the change number the write
    /// stamps on the rows it touches (0 where none is kept).
    async fn stamp(c: &mut Self::Conn) -> Result<i64>;

    /// Records that the write stamped `seq` deleted these memories' rows
    /// (each row starts with the driver's [`Driver::ROW_KEY`]): the vector
    /// caches of their scopes drop them, and no other scope's is touched.
    async fn forget(c: &mut Self::Conn, seq: i64, removed: &[Self::Row]) -> Result<()>;
}

/// One entry for a memory's history.
pub(crate) struct Entry<'a> {
    pub memory_id: Uuid,
    pub old: Option<&'a str>,
    pub new: Option<&'a str>,
    pub event: Event,
    pub is_deleted: bool,
    pub actor_id: Option<&'a str>,
    pub role: Option<&'a str>,
    /// Whose memory it is (the history is read by the memory's scope).
    pub owner: &'a Scope,
}

impl<'a> Entry<'a> {
    /// The one entry an explicitly deleted memory keeps: that it was
    /// deleted, and whose it was; no text.
    pub fn deletion(memory_id: Uuid, owner: &'a Scope) -> Self {
        Entry {
            memory_id,
            old: None,
            new: None,
            event: Event::Delete,
            is_deleted: true,
            actor_id: None,
            role: None,
            owner,
        }
    }
}

/// Appends `entries`, all made at `now`, to the history.
pub(crate) async fn insert_history<D: Driver>(
    c: &mut D::Conn,
    now: DateTime<Utc>,
    entries: &[Entry<'_>],
) -> Result<()> {
    for chunk in entries.chunks(ENTRIES_PER_INSERT) {
        let mut args = D::Args::default();
        let rows: Vec<String> = chunk
            .iter()
            .map(|e| {
                let values = bind_list::<D>(
                    &mut args,
                    [
                        Bind::Uuid(Uuid::new_v4()),
                        Bind::Uuid(e.memory_id),
                        Bind::OptText(e.old.map(str::to_owned)),
                        Bind::OptText(e.new.map(str::to_owned)),
                        Bind::Text(e.event.as_str().to_owned()),
                        Bind::Time(now),
                        Bind::Time(now),
                        Bind::Bool(e.is_deleted),
                        Bind::OptText(e.actor_id.map(str::to_owned)),
                        Bind::OptText(e.role.map(str::to_owned)),
                        Bind::OptText(e.owner.user_id.clone()),
                        Bind::OptText(e.owner.agent_id.clone()),
                        Bind::OptText(e.owner.run_id.clone()),
                    ],
                );
                format!("({values})")
            })
            .collect();
        let sql = format!(
            "INSERT INTO homi_memory_history (id, memory_id, old_memory, new_memory, event, created_at, \
             updated_at, is_deleted, actor_id, role, user_id, agent_id, run_id) VALUES {}",
            rows.join(", ")
        );
        c.run(sql, args).await?;
    }
    Ok(())
}

/// The history columns [`history_from_row`] reads, in its order.
pub(crate) const HISTORY_COLUMNS: &str = "h.id, h.memory_id, h.old_memory, h.new_memory, h.event, \
     h.created_at, h.updated_at, h.is_deleted, h.actor_id, h.role";

pub(crate) fn history_from_row(r: &impl Columns) -> Result<HistoryEntry> {
    let event = r.text(4)?;
    Ok(HistoryEntry {
        id: r.uuid(0)?,
        memory_id: r.uuid(1)?,
        old_memory: r.opt_text(2)?,
        new_memory: r.opt_text(3)?,
        event: Event::parse(&event)
            .ok_or_else(|| Error::storage(format!("unknown history event '{event}'")))?,
        created_at: r.time(5)?,
        updated_at: r.opt_time(6)?,
        is_deleted: r.flag(7)?,
        actor_id: r.opt_text(8)?,
        role: r.opt_text(9)?,
    })
}

/// The history of memory `id` that `access` reaches, oldest first.
pub(crate) async fn history<D: Driver>(
    c: &mut D::Conn,
    id: Uuid,
    access: &Access,
) -> Result<Vec<HistoryEntry>> {
    let mut args = D::Args::default();
    let p = D::bind(&mut args, Bind::Uuid(id));
    let w = access_sql::<D>(access, "h", &mut args);
    let sql = format!(
        "SELECT {HISTORY_COLUMNS} FROM homi_memory_history h WHERE h.memory_id = {p} AND {w} ORDER BY {}",
        D::HISTORY_ORDER
    );
    c.all(sql, args)
        .await?
        .iter()
        .map(history_from_row)
        .collect()
}

/// Drops the history and the pending re-embedding of the memories `ids`.
async fn forget_history<D: Driver>(c: &mut D::Conn, ids: &[Uuid]) -> Result<()> {
    for chunk in ids.chunks(IN_CHUNK) {
        for rows in [
            "homi_memory_history WHERE memory_id",
            "homi_memory_reembed WHERE id",
        ] {
            let mut args = D::Args::default();
            let ids = bind_list::<D>(&mut args, chunk.iter().map(|id| Bind::Uuid(*id)));
            c.run(format!("DELETE FROM {rows} IN ({ids})"), args)
                .await?;
        }
    }
    Ok(())
}

/// Deletes memory `id` if `access` reaches it. Its history is replaced by
/// a deletion marker: nothing of its text is kept.
pub(crate) async fn delete<D: MemoryDriver>(
    c: &mut D::Conn,
    id: Uuid,
    access: &Access,
) -> Result<bool> {
    let mut args = D::Args::default();
    let p = D::bind(&mut args, Bind::Uuid(id));
    let w = access_sql::<D>(access, "m", &mut args);
    let sql = format!(
        "DELETE FROM homi_memories AS m WHERE m.id = {p} AND {w} RETURNING {}, user_id, agent_id, run_id",
        D::ROW_KEY
    );
    let Some(row) = c.optional(sql, args).await? else {
        return Ok(false);
    };
    let seq = D::stamp(c).await?;
    D::forget(c, seq, std::slice::from_ref(&row)).await?;
    forget_history::<D>(c, &[id]).await?;
    let owner = row.scope(1)?;
    insert_history::<D>(c, Utc::now(), &[Entry::deletion(id, &owner)]).await?;
    Ok(true)
}

/// Deletes every memory of `scope` (and the extractions still to run into
/// it); returns how many memories there were and how many jobs it dropped.
pub(crate) async fn delete_scope<D: MemoryDriver>(
    c: &mut D::Conn,
    scope: &Scope,
) -> Result<(u64, u64)> {
    if scope.is_empty() {
        return Err(Error::invalid(
            "user_id",
            "at least one of user_id, agent_id or run_id is required",
        ));
    }
    // First (the lock order a write's check takes too): work in flight for
    // this scope must not write after this.
    super::deletions::record::<D>(c, Some(scope), Utc::now()).await?;
    let mut args = D::Args::default();
    let w = scope_sql::<D>(scope, "m", &mut args);
    let sql = format!(
        "DELETE FROM homi_memories AS m WHERE {w} RETURNING {}, id, user_id, agent_id, run_id",
        D::ROW_KEY
    );
    let rows = c.all(sql, args).await?;
    // Nothing deleted: no change to stamp, no cache to invalidate.
    if !rows.is_empty() {
        let seq = D::stamp(c).await?;
        D::forget(c, seq, &rows).await?;
        let ids = rows.iter().map(|r| r.uuid(1)).collect::<Result<Vec<_>>>()?;
        forget_history::<D>(c, &ids).await?;
        let owners = rows
            .iter()
            .map(|r| r.scope(2))
            .collect::<Result<Vec<_>>>()?;
        let markers: Vec<Entry> = ids
            .iter()
            .zip(&owners)
            .map(|(id, owner)| Entry::deletion(*id, owner))
            .collect();
        insert_history::<D>(c, Utc::now(), &markers).await?;
    }
    // Extractions not run yet would bring back what was just deleted (and
    // may be queued for a scope with no memory yet).
    let mut args = D::Args::default();
    let jobs = job_scope_sql::<D>(scope, &mut args);
    let sql = format!("DELETE FROM homi_jobs WHERE state IN ('queued', 'running') AND {jobs}");
    let dropped = c.run(sql, args).await?;
    Ok((rows.len() as u64, dropped))
}

/// The recorded embedder's rows in `homi_meta`, as `(key, value)`.
pub(crate) const EMBEDDER_SQL: &str =
    "SELECT key, value FROM homi_meta WHERE key IN ('embedder_model', 'embedder_dims')";

/// Memory `id`, if `access` reaches it.
pub(crate) async fn get<D: Driver>(
    c: &mut D::Conn,
    id: Uuid,
    access: &Access,
) -> Result<Option<MemoryItem>> {
    let mut args = D::Args::default();
    let p = D::bind(&mut args, Bind::Uuid(id));
    let w = access_sql::<D>(access, "m", &mut args);
    let sql = format!(
        "SELECT {} FROM homi_memories m WHERE m.id = {p} AND {w}",
        memory_columns!()
    );
    c.optional(sql, args)
        .await?
        .map(|r| item_at(&r, 0))
        .transpose()
}

/// The newest memories a read of `scope` with `params` sees.
pub(crate) async fn list<D: Driver>(
    c: &mut D::Conn,
    scope: &Scope,
    params: &ReadParams,
) -> Result<Vec<MemoryItem>> {
    let mut args = D::Args::default();
    let readable = readable_sql::<D>(scope, params, &mut args);
    // A page after a memory: older ones, and ones as old written before it
    // (the list's order). If that memory is gone, its equals come again
    // rather than being skipped.
    let after = match params.after {
        None => String::new(),
        Some((at, id)) => {
            // Bound in the order the text names them (SQLite's `?`).
            let t1 = D::bind(&mut args, at.into());
            let t2 = D::bind(&mut args, at.into());
            let i1 = D::bind(&mut args, id.into());
            let i2 = D::bind(&mut args, id.into());
            let key = D::ROW_KEY;
            format!(
                " AND (m.created_at < {t1} OR (m.created_at = {t2} AND (m.{key} < \
                 (SELECT x.{key} FROM homi_memories x WHERE x.id = {i1}) OR NOT EXISTS \
                 (SELECT 1 FROM homi_memories y WHERE y.id = {i2}))))"
            )
        }
    };
    let limit = D::bind(
        &mut args,
        Bind::Int(i64::try_from(params.limit).unwrap_or(i64::MAX)),
    );
    let sql = format!(
        "SELECT {} FROM homi_memories m WHERE {readable}{after} ORDER BY m.created_at DESC, m.{} DESC LIMIT {limit}",
        memory_columns!(),
        D::ROW_KEY
    );
    c.all(sql, args)
        .await?
        .iter()
        .map(|r| item_at(r, 0))
        .collect()
}

/// How many memories a read of `scope` with `params` sees.
pub(crate) async fn count<D: Driver>(
    c: &mut D::Conn,
    scope: &Scope,
    params: &ReadParams,
) -> Result<u64> {
    let mut args = D::Args::default();
    let readable = readable_sql::<D>(scope, params, &mut args);
    let sql = format!("SELECT count(*) FROM homi_memories m WHERE {readable}");
    let row = c.optional(sql, args).await?;
    Ok(row
        .map(|r| r.int(0))
        .transpose()?
        .unwrap_or(0)
        .unsigned_abs())
}

/// The current memories of exactly `scope` with one of `hashes`.
pub(crate) async fn find_by_hash<D: Driver>(
    c: &mut D::Conn,
    scope: &Scope,
    hashes: &[String],
) -> Result<Vec<MemoryItem>> {
    let mut out = Vec::new();
    for chunk in hashes.chunks(IN_CHUNK) {
        let mut args = D::Args::default();
        let w = scope_sql::<D>(scope, "m", &mut args);
        let live = live_sql::<D>("m", &mut args);
        let hashes = bind_list::<D>(&mut args, chunk.iter().map(|h| Bind::Text(h.clone())));
        let sql = format!(
            "SELECT {} FROM homi_memories m WHERE {w} AND {live} AND m.hash IN ({hashes})",
            memory_columns!()
        );
        for row in c.all(sql, args).await? {
            out.push(item_at(&row, 0)?);
        }
    }
    Ok(out)
}

/// The embedder recorded in [`EMBEDDER_SQL`]'s rows, if complete.
pub(crate) fn embedder_from_meta(meta: Vec<(String, String)>) -> Option<EmbedderInfo> {
    let mut model = None;
    let mut dims = None;
    for (key, value) in meta {
        match key.as_str() {
            "embedder_model" => model = Some(value),
            _ => dims = value.parse::<usize>().ok(),
        }
    }
    match (model, dims) {
        (Some(model), Some(dims)) => Some(EmbedderInfo { model, dims }),
        _ => None,
    }
}

/// The embedder recorded in the store, if any; with `lock`, held until the
/// transaction ends.
pub(crate) async fn embedder<D: MemoryDriver>(
    c: &mut D::Conn,
    lock: bool,
) -> Result<Option<EmbedderInfo>> {
    let lock = if lock { D::SHARE_LOCK } else { "" };
    let rows = c
        .all(format!("{EMBEDDER_SQL}{lock}"), D::Args::default())
        .await?;
    let meta = rows
        .iter()
        .map(|r| Ok((r.text(0)?, r.text(1)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(embedder_from_meta(meta))
}

pub(crate) fn check_vector(embedding: &[f32], dims: usize) -> Result<()> {
    if embedding.len() == dims {
        return Ok(());
    }
    Err(Error::invalid(
        "embedding",
        format!("has {} dimensions, the store holds {dims}", embedding.len()),
    ))
}

pub(crate) fn normalized(v: &[f32]) -> Vec<f32> {
    let mut v = v.to_vec();
    normalize(&mut v);
    v
}
