//! The memory store's write operations and its history, written once over a
//! [`MemoryDriver`]. Each runs inside the caller's transaction: the store
//! begins it (SQLite's `BEGIN IMMEDIATE`, Postgres' default) and commits.

use std::collections::HashMap;
use std::collections::hash_map::Entry as Slot;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{
    Bind, Columns, Driver, Exec, access_sql, bind_list, job_scope_sql, readable_sql, scope_sql,
};
use crate::error::{Error, Result};
use crate::model::{Access, Event, HistoryEntry, MemoryItem, Metadata, Scope};
use crate::store::{Change, EmbedderInfo, NewMemory, Outcome, ReadParams, normalize};

/// Ids per `IN (…)` list.
pub(crate) const IN_CHUNK: usize = 500;
/// History entries per multi-row insert (13 parameters each).
const ENTRIES_PER_INSERT: usize = 400;
/// Memories per multi-row insert (at most 14 parameters each).
const ROWS_PER_INSERT: usize = 400;

/// Memories a write deleted, as the driver's bookkeeping hears of them.
pub(crate) enum Removed<'a, R> {
    /// These rows; each starts with the driver's [`Driver::ROW_KEY`].
    Rows(#[cfg_attr(not(feature = "sqlite"), allow(dead_code))] &'a [R]),
    /// Every memory of a scope.
    Scope,
}

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

    /// Starts a write's bookkeeping; returns the change number the write
    /// stamps on the rows it touches (0 where none is kept).
    async fn stamp(c: &mut Self::Conn) -> Result<i64>;

    /// Records that the write stamped `seq` deleted memories.
    async fn forget(c: &mut Self::Conn, seq: i64, removed: Removed<'_, Self::Row>) -> Result<()>;
}

/// A memory's columns as [`item_at`] reads them, from the memories `m` (a
/// macro, for `concat!`).
macro_rules! memory_columns {
    () => {
        "m.id, m.memory, m.hash, m.metadata, m.user_id, m.agent_id, m.run_id, m.actor_id, m.role, \
         m.created_at, m.updated_at, m.valid_from, m.valid_to, m.superseded_by"
    };
}
pub(crate) use memory_columns;

/// The memory in [`memory_columns!`] from column `i` on.
pub(crate) fn item_at(row: &(impl Columns + ?Sized), i: usize) -> Result<MemoryItem> {
    let metadata = match row.json(i + 3)? {
        Value::Object(m) => m,
        _ => Metadata::new(),
    };
    Ok(MemoryItem {
        id: row.uuid(i)?,
        memory: row.text(i + 1)?,
        hash: row.text(i + 2)?,
        metadata,
        score: None,
        user_id: row.opt_text(i + 4)?,
        agent_id: row.opt_text(i + 5)?,
        run_id: row.opt_text(i + 6)?,
        actor_id: row.opt_text(i + 7)?,
        role: row.opt_text(i + 8)?,
        created_at: row.time(i + 9)?,
        updated_at: row.time(i + 10)?,
        valid_from: row.time(i + 11)?,
        valid_to: row.opt_time(i + 12)?,
        superseded_by: row.opt_uuid(i + 13)?,
    })
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
    D::forget(c, seq, Removed::Rows(std::slice::from_ref(&row))).await?;
    forget_history::<D>(c, &[id]).await?;
    let owner = row.scope(1)?;
    insert_history::<D>(c, Utc::now(), &[Entry::deletion(id, &owner)]).await?;
    Ok(true)
}

/// Deletes every memory of `scope` (and the extractions still to run into
/// it); returns how many memories there were.
pub(crate) async fn delete_scope<D: MemoryDriver>(c: &mut D::Conn, scope: &Scope) -> Result<u64> {
    if scope.is_empty() {
        return Err(Error::invalid(
            "user_id",
            "at least one of user_id, agent_id or run_id is required",
        ));
    }
    let mut args = D::Args::default();
    let w = scope_sql::<D>(scope, "m", &mut args);
    let sql = format!(
        "DELETE FROM homi_memories AS m WHERE {w} RETURNING {}, id, user_id, agent_id, run_id",
        D::ROW_KEY
    );
    let rows = c.all(sql, args).await?;
    let seq = D::stamp(c).await?;
    D::forget(c, seq, Removed::Scope).await?;
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
    // Extractions not run yet would bring back what was just deleted.
    let mut args = D::Args::default();
    let jobs = job_scope_sql::<D>(scope, &mut args);
    let sql = format!("DELETE FROM homi_jobs WHERE state IN ('queued', 'running') AND {jobs}");
    c.run(sql, args).await?;
    Ok(rows.len() as u64)
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
    let limit = D::bind(
        &mut args,
        Bind::Int(i64::try_from(params.limit).unwrap_or(i64::MAX)),
    );
    let sql = format!(
        "SELECT {} FROM homi_memories m WHERE {readable} ORDER BY m.created_at DESC, m.{} DESC LIMIT {limit}",
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
        let hashes = bind_list::<D>(&mut args, chunk.iter().map(|h| Bind::Text(h.clone())));
        let sql = format!(
            "SELECT {} FROM homi_memories m WHERE {w} AND m.valid_to IS NULL AND m.hash IN ({hashes})",
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

/// Applies `changes` in order, in one transaction, to the memories `access`
/// reaches; returns one outcome per change.
pub(crate) async fn apply<D: MemoryDriver>(
    c: &mut D::Conn,
    access: &Access,
    embedder: Option<&EmbedderInfo>,
    changes: Vec<Change>,
) -> Result<Vec<Outcome>> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    // Read (and on Postgres locked) before any memory: a re-embedding's swap
    // waits for this change, or this change sees its result.
    let Some(info) = self::embedder::<D>(c, true).await? else {
        return Err(Error::storage(
            "no embedder is recorded in the store; bind one before writing",
        ));
    };
    if let Some(e) = embedder {
        info.must_match(e)?;
    }
    let w = Write {
        seq: D::stamp(c).await?,
        now: Utc::now(),
        dims: info.dims,
    };
    let mut outcomes = Vec::with_capacity(changes.len());
    let mut changes = changes.into_iter().peekable();
    while let Some(change) = changes.next() {
        match change {
            Change::Add(first) => {
                // Consecutive adds go in multi-row statements.
                let mut batch = vec![first];
                while let Some(Change::Add(_)) = changes.peek() {
                    if let Some(Change::Add(m)) = changes.next() {
                        batch.push(m);
                    }
                }
                let refs: Vec<&NewMemory> = batch.iter().collect();
                outcomes.extend(insert::<D>(c, &w, &refs, None).await?);
            }
            Change::Update {
                id,
                text,
                hash,
                embedding,
                metadata,
                replace_metadata,
                actor_id,
                role,
            } => {
                let mut args = D::Args::default();
                let p = D::bind(&mut args, Bind::Uuid(id));
                let scope = access_sql::<D>(access, "m", &mut args);
                let sql = format!(
                    "SELECT {}, m.memory, m.hash, m.metadata, m.user_id, m.agent_id, m.run_id \
                     FROM homi_memories m WHERE m.id = {p} AND {scope}{}",
                    D::ROW_KEY,
                    D::ROW_LOCK
                );
                let Some(row) = c.optional(sql, args).await? else {
                    // Gone meanwhile: the text is written as a new memory of
                    // the scope (nowhere without one).
                    let Some(scope) = access.scope() else {
                        return Err(Error::not_found(format!("memory {id}")));
                    };
                    let m = NewMemory {
                        id: Uuid::new_v4(),
                        text,
                        hash,
                        metadata: metadata.unwrap_or_default(),
                        scope: scope.clone(),
                        actor_id,
                        role,
                        embedding,
                        said_at: None,
                    };
                    outcomes.extend(insert::<D>(c, &w, &[&m], None).await?);
                    continue;
                };
                let old_text = row.text(1)?;
                let old_hash = row.text(2)?;
                let owner = row.scope(4)?;
                if old_hash == hash && metadata.is_none() {
                    outcomes.push(Outcome::Duplicate { id, text: old_text });
                    continue;
                }
                // Another current memory of the same scope already says this.
                if old_hash != hash
                    && let Some((other, other_text)) =
                        current_with_hash::<D>(c, &hash, &owner, Some(id)).await?
                {
                    outcomes.push(Outcome::Duplicate {
                        id: other,
                        text: other_text,
                    });
                    continue;
                }
                check_vector(&embedding, w.dims)?;
                let mut meta = match row.json(3)? {
                    Value::Object(m) if !replace_metadata => m,
                    _ => Metadata::new(),
                };
                if let Some(new_meta) = metadata {
                    meta.extend(new_meta);
                }
                let vector = normalized(&embedding);
                let mut sets = vec![
                    ("memory = {}", Bind::Text(text.clone())),
                    ("hash = {}", Bind::Text(hash)),
                    ("metadata = {}", Bind::Json(Value::Object(meta))),
                    ("updated_at = {}", Bind::Time(w.now)),
                    (
                        "actor_id = COALESCE({}, actor_id)",
                        Bind::OptText(actor_id.clone()),
                    ),
                    ("role = COALESCE({}, role)", Bind::OptText(role.clone())),
                ];
                if D::VECTOR_INLINE {
                    sets.push(("embedding = {}", Bind::Vector(vector.clone())));
                }
                update_memory::<D>(c, &w, id, sets).await?;
                if !D::VECTOR_INLINE {
                    let mut args = D::Args::default();
                    let v = D::bind(&mut args, Bind::Vector(vector));
                    let rid = D::bind(&mut args, Bind::Int(row.int(0)?));
                    let sql = format!(
                        "UPDATE homi_memory_embeddings SET embedding = {v} WHERE rid = {rid}"
                    );
                    c.run(sql, args).await?;
                }
                let entry = Entry {
                    memory_id: id,
                    old: Some(&old_text),
                    new: Some(&text),
                    event: Event::Update,
                    is_deleted: false,
                    actor_id: actor_id.as_deref(),
                    role: role.as_deref(),
                    owner: &owner,
                };
                insert_history::<D>(c, w.now, &[entry]).await?;
                outcomes.push(Outcome::Updated {
                    id,
                    old_text,
                    new_text: text,
                });
            }
            Change::Import {
                memory: m,
                created_at,
                updated_at,
            } => {
                let mut args = D::Args::default();
                let p = D::bind(&mut args, Bind::Uuid(m.id));
                let sql = format!("SELECT 1 FROM homi_memories WHERE id = {p}");
                if c.optional(sql, args).await?.is_some() {
                    outcomes.push(Outcome::Exists { id: m.id });
                } else {
                    let times = Some((created_at, updated_at));
                    outcomes.extend(insert::<D>(c, &w, &[&m], times).await?);
                }
            }
            Change::Supersede { id, replacement } => {
                let mut args = D::Args::default();
                let p = D::bind(&mut args, Bind::Uuid(id));
                let scope = access_sql::<D>(access, "m", &mut args);
                let sql = format!(
                    "SELECT m.memory, m.user_id, m.agent_id, m.run_id FROM homi_memories m \
                     WHERE m.id = {p} AND m.valid_to IS NULL AND {scope}{}",
                    D::ROW_LOCK
                );
                let row = c.optional(sql, args).await?;
                let added = one(insert::<D>(c, &w, &[&replacement], None).await?)?;
                let (new_id, new_text) = match &added {
                    Outcome::Added { id, text } | Outcome::Duplicate { id, text } => {
                        (*id, text.clone())
                    }
                    _ => (replacement.id, replacement.text.clone()),
                };
                let Some(row) = row.filter(|_| new_id != id) else {
                    outcomes.push(added);
                    continue;
                };
                let old_text = row.text(0)?;
                let owner = row.scope(1)?;
                let sets = vec![
                    ("valid_to = {}", Bind::Time(w.now)),
                    ("superseded_by = {}", Bind::Uuid(new_id)),
                    ("updated_at = {}", Bind::Time(w.now)),
                ];
                update_memory::<D>(c, &w, id, sets).await?;
                let entry = Entry {
                    memory_id: id,
                    old: Some(&old_text),
                    new: None,
                    event: Event::Delete,
                    is_deleted: false,
                    actor_id: replacement.actor_id.as_deref(),
                    role: replacement.role.as_deref(),
                    owner: &owner,
                };
                insert_history::<D>(c, w.now, &[entry]).await?;
                outcomes.push(Outcome::Superseded {
                    id,
                    old_text,
                    replacement: new_id,
                    replacement_text: new_text,
                });
            }
        }
    }
    Ok(outcomes)
}

/// What every row one write changes shares.
struct Write {
    /// The write's change number ([`MemoryDriver::stamp`]).
    seq: i64,
    now: DateTime<Utc>,
    /// The store's vector dimension.
    dims: usize,
}

/// Sets columns of memory `id`, each `(template, value)` with the value's
/// placeholder for `{}`; stamps the row with the write where rows carry it.
async fn update_memory<D: MemoryDriver>(
    c: &mut D::Conn,
    w: &Write,
    id: Uuid,
    mut sets: Vec<(&str, Bind)>,
) -> Result<()> {
    if D::STAMPED {
        sets.push(("seq = {}", Bind::Int(w.seq)));
    }
    let mut args = D::Args::default();
    let sets: Vec<String> = sets
        .into_iter()
        .map(|(template, value)| template.replace("{}", &D::bind(&mut args, value)))
        .collect();
    let p = D::bind(&mut args, Bind::Uuid(id));
    let sql = format!(
        "UPDATE homi_memories SET {} WHERE id = {p}",
        sets.join(", ")
    );
    c.run(sql, args).await?;
    Ok(())
}

fn one(mut outcomes: Vec<Outcome>) -> Result<Outcome> {
    outcomes
        .pop()
        .ok_or_else(|| Error::storage("an insert produced no outcome"))
}

/// A memory's text in its exact scope.
pub(crate) type Said = (String, Option<String>, Option<String>, Option<String>);

pub(crate) fn said(hash: &str, s: &Scope) -> Said {
    (
        hash.to_owned(),
        s.user_id.clone(),
        s.agent_id.clone(),
        s.run_id.clone(),
    )
}

/// The current memories with one of these hashes, by hash and exact scope.
pub(crate) async fn current_hashes<'a, D: Driver>(
    c: &mut D::Conn,
    hashes: impl Iterator<Item = &'a str>,
) -> Result<HashMap<Said, (Uuid, String)>> {
    let mut hashes: Vec<&str> = hashes.collect();
    hashes.sort_unstable();
    hashes.dedup();
    let mut known = HashMap::new();
    for chunk in hashes.chunks(IN_CHUNK) {
        let mut args = D::Args::default();
        let hashes = bind_list::<D>(&mut args, chunk.iter().map(|h| Bind::Text((*h).to_owned())));
        let sql = format!(
            "SELECT id, memory, hash, user_id, agent_id, run_id FROM homi_memories \
             WHERE valid_to IS NULL AND hash IN ({hashes})"
        );
        for row in c.all(sql, args).await? {
            let s = row.scope(3)?;
            let key = (row.text(2)?, s.user_id, s.agent_id, s.run_id);
            known.insert(key, (row.uuid(0)?, row.text(1)?));
        }
    }
    Ok(known)
}

/// A current memory with this hash in exactly this scope, other than `except`.
async fn current_with_hash<D: MemoryDriver>(
    c: &mut D::Conn,
    hash: &str,
    scope: &Scope,
    except: Option<Uuid>,
) -> Result<Option<(Uuid, String)>> {
    let mut args = D::Args::default();
    let same = D::SAME;
    let h = D::bind(&mut args, Bind::Text(hash.to_owned()));
    let u = D::bind(&mut args, Bind::OptText(scope.user_id.clone()));
    let a = D::bind(&mut args, Bind::OptText(scope.agent_id.clone()));
    let r = D::bind(&mut args, Bind::OptText(scope.run_id.clone()));
    let except = match except {
        Some(id) => format!(" AND id <> {}", D::bind(&mut args, Bind::Uuid(id))),
        None => String::new(),
    };
    let sql = format!(
        "SELECT id, memory FROM homi_memories WHERE hash = {h} AND user_id {same} {u} \
         AND agent_id {same} {a} AND run_id {same} {r} AND valid_to IS NULL{except} LIMIT 1"
    );
    match c.optional(sql, args).await? {
        Some(row) => Ok(Some((row.uuid(0)?, row.text(1)?))),
        None => Ok(None),
    }
}

/// Inserts memories with multi-row statements, each with an `ADD` entry in
/// its history. A memory whose text is already current in its exact scope
/// (in the store, or earlier in the batch) is a `Duplicate` and is not
/// written; on Postgres a partial unique index also settles a race with
/// another writer. `imported` gives the rows' creation and last change
/// times (else: when said, or now).
async fn insert<D: MemoryDriver>(
    c: &mut D::Conn,
    w: &Write,
    ms: &[&NewMemory],
    imported: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Result<Vec<Outcome>> {
    for m in ms {
        check_vector(&m.embedding, w.dims)?;
    }
    let mut known = current_hashes::<D>(c, ms.iter().map(|m| m.hash.as_str())).await?;
    let mut outcomes: Vec<Option<Outcome>> = vec![None; ms.len()];
    let mut fresh: Vec<usize> = Vec::new();
    for (i, m) in ms.iter().enumerate() {
        match known.entry(said(&m.hash, &m.scope)) {
            Slot::Occupied(e) => {
                let (id, text) = e.get().clone();
                outcomes[i] = Some(Outcome::Duplicate { id, text });
            }
            Slot::Vacant(e) => {
                e.insert((m.id, m.text.clone()));
                fresh.push(i);
            }
        }
    }
    let mut columns = String::from(
        "id, memory, hash, metadata, user_id, agent_id, run_id, actor_id, role, created_at, updated_at, valid_from",
    );
    if D::VECTOR_INLINE {
        columns.push_str(", embedding");
    }
    if D::STAMPED {
        columns.push_str(", seq");
    }
    for chunk in fresh.chunks(ROWS_PER_INSERT) {
        let mut args = D::Args::default();
        let rows: Vec<String> = chunk
            .iter()
            .map(|&i| {
                let m = ms[i];
                let (created, updated) = imported.unwrap_or((m.said_at.unwrap_or(w.now), w.now));
                let mut values = vec![
                    Bind::Uuid(m.id),
                    Bind::Text(m.text.clone()),
                    Bind::Text(m.hash.clone()),
                    Bind::Json(Value::Object(m.metadata.clone())),
                    Bind::OptText(m.scope.user_id.clone()),
                    Bind::OptText(m.scope.agent_id.clone()),
                    Bind::OptText(m.scope.run_id.clone()),
                    Bind::OptText(m.actor_id.clone()),
                    Bind::OptText(m.role.clone()),
                    Bind::Time(created),
                    Bind::Time(updated),
                    Bind::Time(created),
                ];
                if D::VECTOR_INLINE {
                    values.push(Bind::Vector(normalized(&m.embedding)));
                }
                if D::STAMPED {
                    values.push(Bind::Int(w.seq));
                }
                format!("({})", bind_list::<D>(&mut args, values))
            })
            .collect();
        let sql = format!(
            "INSERT INTO homi_memories ({columns}) VALUES {} ON CONFLICT DO NOTHING RETURNING id, {}",
            rows.join(", "),
            D::ROW_KEY
        );
        let mut inserted = HashMap::with_capacity(chunk.len());
        for row in c.all(sql, args).await? {
            inserted.insert(row.uuid(0)?, row);
        }
        if !D::VECTOR_INLINE && !inserted.is_empty() {
            let mut args = D::Args::default();
            let mut rows = Vec::with_capacity(inserted.len());
            for &i in chunk {
                if let Some(row) = inserted.get(&ms[i].id) {
                    let values = [
                        Bind::Int(row.int(1)?),
                        Bind::Vector(normalized(&ms[i].embedding)),
                    ];
                    rows.push(format!("({})", bind_list::<D>(&mut args, values)));
                }
            }
            let sql = format!(
                "INSERT INTO homi_memory_embeddings (rid, embedding) VALUES {}",
                rows.join(", ")
            );
            c.run(sql, args).await?;
        }
        let mut entries = Vec::with_capacity(inserted.len());
        for &i in chunk {
            let m = ms[i];
            if inserted.contains_key(&m.id) {
                entries.push(Entry {
                    memory_id: m.id,
                    old: None,
                    new: Some(&m.text),
                    event: Event::Add,
                    is_deleted: false,
                    actor_id: m.actor_id.as_deref(),
                    role: m.role.as_deref(),
                    owner: &m.scope,
                });
                outcomes[i] = Some(Outcome::Added {
                    id: m.id,
                    text: m.text.clone(),
                });
            } else {
                // Another writer made the same memory current meanwhile.
                outcomes[i] = Some(
                    match current_with_hash::<D>(c, &m.hash, &m.scope, None).await? {
                        Some((id, text)) => Outcome::Duplicate { id, text },
                        None => {
                            return Err(Error::storage(
                                "an insert conflicted with a memory that cannot be found",
                            ));
                        }
                    },
                );
            }
        }
        let logged = imported.map_or(w.now, |(created, _)| created);
        insert_history::<D>(c, logged, &entries).await?;
    }
    outcomes
        .into_iter()
        .map(|o| o.ok_or_else(|| Error::storage("a memory was neither inserted nor found")))
        .collect()
}
