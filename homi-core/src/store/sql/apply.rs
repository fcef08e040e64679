//! The memory store's write transaction, written once over a
//! [`MemoryDriver`]: `apply` (adds in multi-row statements, updates with
//! their duplicate and hash checks, supersedes, imports) and the row writer
//! that restore shares.

use std::collections::hash_map::Entry as Slot;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::memory::{
    Entry, IN_CHUNK, MemoryDriver, check_vector, embedder, insert_history, normalized,
};
use super::{Bind, Columns, Driver, Exec, access_sql, bind_list, live_sql, row};
use crate::error::{Error, Result};
use crate::model::{Access, Event, MemoryItem, Metadata, Scope};
use crate::store::{Change, EmbedderInfo, NewMemory, Outcome};

/// Memories per multi-row insert (at most 16 parameters each).
const ROWS_PER_INSERT: usize = 400;

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
                expires,
            } => {
                let mut args = D::Args::default();
                let p = D::bind(&mut args, Bind::Uuid(id));
                let scope = access_sql::<D>(access, "m", &mut args);
                let sql = format!(
                    "SELECT {}, m.memory, m.hash, m.metadata, m.user_id, m.agent_id, m.run_id, \
                     m.superseded_by IS NOT NULL, m.valid_from, m.valid_to \
                     FROM homi_memories m WHERE m.id = {p} AND {scope}{}",
                    D::ROW_KEY,
                    D::ROW_LOCK
                );
                let Some(row) = c.optional(sql, args).await? else {
                    // Deleted meanwhile: an update never brings it back.
                    outcomes.push(Outcome::Gone { id });
                    continue;
                };
                let old_text = row.text(1)?;
                let old_hash = row.text(2)?;
                let owner = row.scope(4)?;
                let ends = row.opt_time(9)?;
                if let Some(new_end) = expires {
                    check_expiry(id, row.flag(7)?, row.time(8)?, new_end)?;
                }
                let new_end = expires.unwrap_or(ends);
                let live = |end: Option<DateTime<Utc>>| end.is_none_or(|t| t > w.now);
                if old_hash == hash && metadata.is_none() && new_end == ends {
                    outcomes.push(Outcome::Duplicate { id, text: old_text });
                    continue;
                }
                // Another live memory of the same scope already says this
                // (the new text, or the text of an expired memory revived).
                if (old_hash != hash || (!live(ends) && live(new_end)))
                    && let Some((other, other_text)) =
                        current_with_hash::<D>(c, &hash, &owner, Some(id)).await?
                {
                    outcomes.push(Outcome::Duplicate {
                        id: other,
                        text: other_text,
                    });
                    continue;
                }
                let mut meta = match row.json(3)? {
                    Value::Object(m) if !replace_metadata => m,
                    _ => Metadata::new(),
                };
                if let Some(new_meta) = metadata {
                    meta.extend(new_meta);
                }
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
                if let Some(end) = expires {
                    sets.push(("valid_to = {}", Bind::OptTime(end)));
                }
                let vector = match &embedding {
                    Some(e) => {
                        check_vector(e, w.dims)?;
                        Some(normalized(e))
                    }
                    None => None,
                };
                if let (true, Some(v)) = (D::VECTOR_INLINE, &vector) {
                    sets.push(("embedding = {}", Bind::Vector(v.clone())));
                }
                update_memory::<D>(c, &w, id, sets).await?;
                if let (false, Some(v)) = (D::VECTOR_INLINE, vector) {
                    let mut args = D::Args::default();
                    let v = D::bind(&mut args, Bind::Vector(v));
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

/// Whether memory `id` (superseded or not, valid from `from`) may be given
/// a new end of its validity window.
fn check_expiry(
    id: Uuid,
    superseded: bool,
    from: DateTime<Utc>,
    end: Option<DateTime<Utc>>,
) -> Result<()> {
    if superseded {
        return Err(Error::Conflict(format!(
            "memory {id} was superseded: its validity window is closed and cannot be given an expiry"
        )));
    }
    crate::model::types::check_window_end(from, end)
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
        // Bound in the order the SQL names them (SQLite's `?` are positional).
        let live = live_sql::<D>("", &mut args);
        let hashes = bind_list::<D>(&mut args, chunk.iter().map(|h| Bind::Text((*h).to_owned())));
        let sql = format!(
            "SELECT id, memory, hash, user_id, agent_id, run_id FROM homi_memories \
             WHERE {live} AND hash IN ({hashes})"
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
pub(crate) async fn current_with_hash<D: MemoryDriver>(
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
    let live = live_sql::<D>("", &mut args);
    let except = match except {
        Some(id) => format!(" AND id <> {}", D::bind(&mut args, Bind::Uuid(id))),
        None => String::new(),
    };
    let sql = format!(
        "SELECT id, memory FROM homi_memories WHERE hash = {h} AND user_id {same} {u} \
         AND agent_id {same} {a} AND run_id {same} {r} AND {live}{except} LIMIT 1"
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
        let from = imported.map_or(m.said_at.unwrap_or(w.now), |(created, _)| created);
        crate::model::types::check_window_end(from, m.expires_at)?;
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
    let rows: Vec<(MemoryItem, &[f32])> = fresh
        .iter()
        .map(|&i| {
            let m = ms[i];
            let (created, updated) = imported.unwrap_or((m.said_at.unwrap_or(w.now), w.now));
            (row::added(m, created, updated), m.embedding.as_slice())
        })
        .collect();
    let inserted = insert_rows::<D>(c, w.seq, &rows).await?;
    let mut entries = Vec::with_capacity(inserted.len());
    for &i in &fresh {
        let m = ms[i];
        if inserted.contains(&m.id) {
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
    outcomes
        .into_iter()
        .map(|o| o.ok_or_else(|| Error::storage("a memory was neither inserted nor found")))
        .collect()
}

/// Writes memories' rows and vectors with multi-row statements, stamped
/// `seq`. A row a unique index refuses (its id, or its text current in its
/// scope, written by another writer meanwhile) is skipped; returns the ids
/// written.
pub(crate) async fn insert_rows<D: MemoryDriver>(
    c: &mut D::Conn,
    seq: i64,
    rows: &[(MemoryItem, &[f32])],
) -> Result<HashSet<Uuid>> {
    let mut columns = row::insert_columns();
    if D::VECTOR_INLINE {
        columns.push_str(", embedding");
    }
    if D::STAMPED {
        columns.push_str(", seq");
    }
    let mut written = HashSet::with_capacity(rows.len());
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut args = D::Args::default();
        let values: Vec<String> = chunk
            .iter()
            .map(|(m, vector)| {
                let mut values = row::item_binds(m);
                if D::VECTOR_INLINE {
                    values.push(Bind::Vector(normalized(vector)));
                }
                if D::STAMPED {
                    values.push(Bind::Int(seq));
                }
                format!("({})", bind_list::<D>(&mut args, values))
            })
            .collect();
        let sql = format!(
            "INSERT INTO homi_memories ({columns}) VALUES {} ON CONFLICT DO NOTHING RETURNING id, {}",
            values.join(", "),
            D::ROW_KEY
        );
        let mut inserted = HashMap::with_capacity(chunk.len());
        for row in c.all(sql, args).await? {
            inserted.insert(row.uuid(0)?, row);
        }
        if !D::VECTOR_INLINE && !inserted.is_empty() {
            let mut args = D::Args::default();
            let mut values = Vec::with_capacity(inserted.len());
            for (m, vector) in chunk {
                if let Some(row) = inserted.get(&m.id) {
                    let pair = [Bind::Int(row.int(1)?), Bind::Vector(normalized(vector))];
                    values.push(format!("({})", bind_list::<D>(&mut args, pair)));
                }
            }
            let sql = format!(
                "INSERT INTO homi_memory_embeddings (rid, embedding) VALUES {}",
                values.join(", ")
            );
            c.run(sql, args).await?;
        }
        written.extend(inserted.into_keys());
    }
    Ok(written)
}
