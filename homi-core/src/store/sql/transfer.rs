//! Whole-memory export and restore (`homi memory export|import`), written
//! once over a [`MemoryDriver`]. A restored memory keeps its id, its times,
//! its validity window and its history.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::apply::{current_hashes, insert_rows, said};
use super::memory::{
    HISTORY_COLUMNS, IN_CHUNK, MemoryDriver, check_vector, embedder, history_from_row,
};
use super::row::{ITEM_WIDTH, item_at, memory_columns};
use super::{Bind, Columns, Driver, Exec, access_sql, bind_list, binds, for_update};
use crate::error::{Error, Result};
use crate::model::{HistoryEntry, MemoryItem};
use crate::store::{
    EmbedderInfo, MemoryRecord, Outcome, RecordEmbedding, ReembedBatch, ReembedItem,
};

/// History entries per multi-row insert (13 parameters each).
const HISTORY_ROWS: usize = 400;

/// The ids of `ids` that are memories of the store.
pub(crate) async fn existing_ids<D: Driver>(
    c: &mut D::Conn,
    ids: &[Uuid],
) -> Result<HashSet<Uuid>> {
    let mut found = HashSet::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let mut args = D::Args::default();
        let ids = bind_list::<D>(&mut args, chunk.iter().map(|id| Bind::Uuid(*id)));
        let sql = format!("SELECT id FROM homi_memories WHERE id IN ({ids})");
        for row in c.all(sql, args).await? {
            found.insert(row.uuid(0)?);
        }
    }
    Ok(found)
}

/// Up to `limit` memories that `access` reaches, by id after `after`, each
/// with its history and, with `embeddings`, its vector. Run it in one
/// snapshot, so a page and its history agree.
pub(crate) async fn export<D: MemoryDriver>(
    c: &mut D::Conn,
    access: &crate::model::Access,
    after: Option<Uuid>,
    limit: usize,
    embeddings: bool,
) -> Result<Vec<MemoryRecord>> {
    let mut args = D::Args::default();
    let w = access_sql::<D>(access, "m", &mut args);
    let after = match after {
        Some(id) => format!(" AND m.id > {}", D::bind(&mut args, id.into())),
        None => String::new(),
    };
    let l = D::bind(
        &mut args,
        Bind::Int(i64::try_from(limit).unwrap_or(i64::MAX)),
    );
    let (vector, join) = match (embeddings, D::VECTOR_INLINE) {
        (false, _) => ("", ""),
        (true, true) => (", m.embedding", ""),
        (true, false) => (
            ", e.embedding",
            " JOIN homi_memory_embeddings e ON e.rid = m.rid",
        ),
    };
    let sql = format!(
        "SELECT {}{vector} FROM homi_memories m{join} WHERE {w}{after} ORDER BY m.id LIMIT {l}",
        memory_columns!()
    );
    let rows = c.all(sql, args).await?;
    let model = match embeddings {
        true => embedder::<D>(c, false).await?.map(|e| e.model),
        false => None,
    };
    let mut records = Vec::with_capacity(rows.len());
    let mut at = HashMap::with_capacity(rows.len());
    for row in &rows {
        let item = item_at(row, 0)?;
        let embedding = match &model {
            Some(model) => Some(RecordEmbedding {
                model: model.clone(),
                vector: row.vector(ITEM_WIDTH)?,
            }),
            None => None,
        };
        at.insert(item.id, records.len());
        records.push(MemoryRecord {
            item,
            history: Vec::new(),
            embedding,
        });
    }
    let ids: Vec<Uuid> = records.iter().map(|r| r.item.id).collect();
    for chunk in ids.chunks(IN_CHUNK) {
        let mut args = D::Args::default();
        let ids = bind_list::<D>(&mut args, chunk.iter().map(|id| Bind::Uuid(*id)));
        let sql = format!(
            "SELECT {HISTORY_COLUMNS} FROM homi_memory_history h WHERE h.memory_id IN ({ids}) ORDER BY {}",
            D::HISTORY_ORDER
        );
        for row in c.all(sql, args).await? {
            let entry = history_from_row(&row)?;
            if let Some(&i) = at.get(&entry.memory_id) {
                records[i].history.push(entry);
            }
        }
    }
    Ok(records)
}

/// Restores exported memories with their vectors (made by `embedder`), in
/// one transaction. A memory whose id exists is `Exists`; a current one
/// whose text is already current in its exact scope is a `Duplicate`.
pub(crate) async fn restore<D: MemoryDriver>(
    c: &mut D::Conn,
    embedder_info: &EmbedderInfo,
    records: Vec<(MemoryRecord, Vec<f32>)>,
) -> Result<Vec<Outcome>> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    // Locked first, as `apply` does: a re-embedding's swap waits for this.
    let Some(info) = embedder::<D>(c, true).await? else {
        return Err(Error::storage(
            "no embedder is recorded in the store; bind one before restoring",
        ));
    };
    info.must_match(embedder_info)?;
    for (r, v) in &records {
        check_vector(v, info.dims).map_err(|_| {
            Error::invalid(
                "embedding",
                format!(
                    "memory {} has a {}-dimension vector; the store holds {info}",
                    r.item.id,
                    v.len()
                ),
            )
        })?;
    }
    let seq = D::stamp(c).await?;
    let ids: Vec<Uuid> = records.iter().map(|(r, _)| r.item.id).collect();
    let present = existing_ids::<D>(c, &ids).await?;
    // Current texts already current in their exact scope (in the store, or
    // earlier in this batch) are duplicates.
    let current_items = records
        .iter()
        .map(|(r, _)| &r.item)
        .filter(|m| m.is_current());
    let mut current = current_hashes::<D>(c, current_items.map(|m| m.hash.as_str())).await?;
    let mut outcomes = Vec::with_capacity(records.len());
    let mut fresh = Vec::with_capacity(records.len());
    for (record, vector) in records {
        let m = &record.item;
        if present.contains(&m.id) {
            outcomes.push(Outcome::Exists { id: m.id });
            continue;
        }
        if m.is_current() {
            let key = said(&m.hash, &item_scope(m));
            if let Some((id, text)) = current.get(&key) {
                outcomes.push(Outcome::Duplicate {
                    id: *id,
                    text: text.clone(),
                });
                continue;
            }
            current.insert(key, (m.id, m.memory.clone()));
        }
        outcomes.push(Outcome::Added {
            id: m.id,
            text: m.memory.clone(),
        });
        fresh.push((outcomes.len() - 1, record, vector));
    }
    let rows: Vec<(MemoryItem, &[f32])> = fresh
        .iter()
        .map(|(_, r, vector)| (r.item.clone(), vector.as_slice()))
        .collect();
    let inserted = insert_rows::<D>(c, seq, &rows).await?;
    for (at, r, _) in &fresh {
        if !inserted.contains(&r.item.id) {
            outcomes[*at] = lost_race::<D>(c, &r.item).await?;
        }
    }
    let history: Vec<(&MemoryItem, &HistoryEntry)> = fresh
        .iter()
        .filter(|(_, r, _)| inserted.contains(&r.item.id))
        .flat_map(|(_, r, _)| r.history.iter().map(move |h| (&r.item, h)))
        .collect();
    restore_history::<D>(c, &history).await?;
    Ok(outcomes)
}

fn item_scope(m: &MemoryItem) -> crate::model::Scope {
    crate::model::Scope {
        user_id: m.user_id.clone(),
        agent_id: m.agent_id.clone(),
        run_id: m.run_id.clone(),
    }
}

/// What a restored memory that another writer beat became: `Exists` (its
/// id) or a `Duplicate` of the memory now current with its text.
async fn lost_race<D: MemoryDriver>(c: &mut D::Conn, m: &MemoryItem) -> Result<Outcome> {
    let same = D::SAME;
    let ([i, h, u, a, r, first], args) = binds::<D, 6>([
        m.id.into(),
        m.hash.as_str().into(),
        m.user_id.clone().into(),
        m.agent_id.clone().into(),
        m.run_id.clone().into(),
        m.id.into(),
    ]);
    let sql = format!(
        "SELECT id, memory FROM homi_memories WHERE id = {i} OR (hash = {h} AND user_id {same} {u} \
         AND agent_id {same} {a} AND run_id {same} {r} AND valid_to IS NULL) \
         ORDER BY id = {first} DESC LIMIT 1"
    );
    Ok(match c.optional(sql, args).await? {
        Some(row) if row.uuid(0)? != m.id => Outcome::Duplicate {
            id: row.uuid(0)?,
            text: row.text(1)?,
        },
        _ => Outcome::Exists { id: m.id },
    })
}

/// Writes history entries as exported (ids and times kept), in order.
async fn restore_history<D: Driver>(
    c: &mut D::Conn,
    entries: &[(&MemoryItem, &HistoryEntry)],
) -> Result<()> {
    for part in entries.chunks(HISTORY_ROWS) {
        let mut args = D::Args::default();
        let rows: Vec<String> = part
            .iter()
            .map(|(m, h)| {
                let values = [
                    Bind::Uuid(h.id),
                    Bind::Uuid(m.id),
                    Bind::OptText(h.old_memory.clone()),
                    Bind::OptText(h.new_memory.clone()),
                    Bind::Text(h.event.as_str().to_owned()),
                    Bind::Time(h.created_at),
                    Bind::OptTime(h.updated_at),
                    Bind::Bool(h.is_deleted),
                    Bind::OptText(h.actor_id.clone()),
                    Bind::OptText(h.role.clone()),
                    Bind::OptText(m.user_id.clone()),
                    Bind::OptText(m.agent_id.clone()),
                    Bind::OptText(m.run_id.clone()),
                ];
                format!("({})", bind_list::<D>(&mut args, values))
            })
            .collect();
        let sql = format!(
            "INSERT INTO homi_memory_history (id, memory_id, old_memory, new_memory, event, created_at, \
             updated_at, is_deleted, actor_id, role, user_id, agent_id, run_id) VALUES {} \
             ON CONFLICT (id) DO NOTHING",
            rows.join(", ")
        );
        c.run(sql, args).await?;
    }
    Ok(())
}

/// `homi_meta` key naming the embedder a re-embedding stages vectors for.
pub(crate) const TARGET_KEY: &str = "reembed_target";

fn target_value(t: &EmbedderInfo) -> String {
    format!("{}\u{1f}{}", t.model, t.dims)
}

/// Memories without a staged vector for their current text (`FROM …`).
pub(crate) fn pending_sql<D: Driver>() -> String {
    format!(
        "FROM homi_memories m LEFT JOIN homi_memory_reembed s{} ON s.id = m.id \
         WHERE s.id IS NULL OR s.hash <> m.hash",
        D::indexed_by("memory_reembed_hash")
    )
}

/// The embedder vectors are staged for, locked where rows lock: one
/// re-embedding step at a time.
async fn staged_target<D: Driver>(c: &mut D::Conn) -> Result<Option<String>> {
    let ([k], args) = binds::<D, 1>([TARGET_KEY.into()]);
    let sql = format!(
        "SELECT value FROM homi_meta WHERE key = {k}{}",
        for_update::<D>("homi_meta")
    );
    c.optional(sql, args).await?.map(|r| r.text(0)).transpose()
}

/// Checks that the vectors staged are for `target` (and takes the lock).
pub(crate) async fn check_target<D: Driver>(c: &mut D::Conn, target: &EmbedderInfo) -> Result<()> {
    if staged_target::<D>(c).await?.as_deref() == Some(target_value(target).as_str()) {
        Ok(())
    } else {
        Err(Error::Conflict(format!(
            "another re-embedding (to another model) started meanwhile; run it again for {}",
            target.model
        )))
    }
}

/// The next `limit` memories to embed for `target`, and how far the
/// re-embedding is. A new target starts over.
pub(crate) async fn reembed_next<D: Driver>(
    c: &mut D::Conn,
    target: &EmbedderInfo,
    limit: usize,
) -> Result<ReembedBatch> {
    let wanted = target_value(target);
    if staged_target::<D>(c).await?.as_deref() != Some(wanted.as_str()) {
        c.run(
            "DELETE FROM homi_memory_reembed".to_owned(),
            D::Args::default(),
        )
        .await?;
        let ([k, v], args) = binds::<D, 2>([TARGET_KEY.into(), wanted.into()]);
        let sql = format!(
            "INSERT INTO homi_meta (key, value) VALUES ({k}, {v}) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        );
        c.run(sql, args).await?;
    }
    let pending = pending_sql::<D>();
    let mut count = async |sql: String| -> Result<i64> {
        let row = c.optional(sql, D::Args::default()).await?;
        Ok(row.map(|r| r.int(0)).transpose()?.unwrap_or(0))
    };
    let total = count("SELECT count(*) FROM homi_memories".to_owned()).await?;
    let left = count(format!("SELECT count(*) {pending}")).await?;
    let ([l], args) = binds::<D, 1>([Bind::Int(i64::try_from(limit).unwrap_or(i64::MAX))]);
    let sql = format!("SELECT m.id, m.memory, m.hash {pending} ORDER BY m.id LIMIT {l}");
    let todo = c
        .all(sql, args)
        .await?
        .iter()
        .map(|r| {
            Ok(ReembedItem {
                id: r.uuid(0)?,
                text: r.text(1)?,
                hash: r.text(2)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ReembedBatch {
        total: total.unsigned_abs(),
        done: (total - left).unsigned_abs(),
        todo,
    })
}
