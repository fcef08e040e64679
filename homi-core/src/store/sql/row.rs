//! A memory's row in one place: its columns as read ([`memory_columns!`],
//! [`item_at`]) and as written ([`item_binds`], [`added`]). A column added to
//! `homi_memories` is added here, in each database's migration and on
//! [`MemoryItem`]; every read, write, export and restore then carries it.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Bind, Columns};
use crate::error::Result;
use crate::model::{MemoryItem, Metadata};
use crate::store::NewMemory;

/// A memory's columns as [`item_at`] reads them, from the memories `m` (a
/// macro, for `concat!`). Written in the same order ([`item_binds`]).
macro_rules! memory_columns {
    () => {
        "m.id, m.memory, m.hash, m.metadata, m.user_id, m.agent_id, m.run_id, m.actor_id, m.role, \
         m.created_at, m.updated_at, m.valid_from, m.valid_to, m.superseded_by"
    };
}
pub(crate) use memory_columns;

/// How many columns [`memory_columns!`] names (counted from it): a query
/// that selects more after them reads those from this index on.
pub(crate) const ITEM_WIDTH: usize = count_columns(memory_columns!());

const fn count_columns(list: &str) -> usize {
    let bytes = list.as_bytes();
    let (mut n, mut i) = (1, 0);
    while i < bytes.len() {
        if bytes[i] == b',' {
            n += 1;
        }
        i += 1;
    }
    n
}

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
        score_details: None,
        rerank_score: None,
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

/// The columns of [`memory_columns!`] as an `INSERT` names them.
pub(crate) fn insert_columns() -> String {
    memory_columns!().replace("m.", "")
}

/// A memory's values for the columns of [`insert_columns`], in order.
pub(crate) fn item_binds(m: &MemoryItem) -> Vec<Bind> {
    vec![
        Bind::Uuid(m.id),
        m.memory.as_str().into(),
        m.hash.as_str().into(),
        Bind::Json(Value::Object(m.metadata.clone())),
        m.user_id.clone().into(),
        m.agent_id.clone().into(),
        m.run_id.clone().into(),
        m.actor_id.clone().into(),
        m.role.clone().into(),
        m.created_at.into(),
        m.updated_at.into(),
        m.valid_from.into(),
        m.valid_to.into(),
        m.superseded_by.into(),
    ]
}

/// The row of a memory an add (or a mem0 import) writes: current from
/// `created`.
pub(crate) fn added(m: &NewMemory, created: DateTime<Utc>, updated: DateTime<Utc>) -> MemoryItem {
    MemoryItem {
        id: m.id,
        memory: m.text.clone(),
        hash: m.hash.clone(),
        metadata: m.metadata.clone(),
        score: None,
        score_details: None,
        rerank_score: None,
        user_id: m.scope.user_id.clone(),
        agent_id: m.scope.agent_id.clone(),
        run_id: m.scope.run_id.clone(),
        actor_id: m.actor_id.clone(),
        role: m.role.clone(),
        created_at: created,
        updated_at: updated,
        valid_from: created,
        valid_to: m.expires_at,
        superseded_by: None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The columns read, the columns written and the values written agree.
    #[test]
    fn the_width_is_the_number_of_columns() {
        assert_eq!(count_columns("m.id"), 1);
        assert_eq!(insert_columns().split(", ").count(), ITEM_WIDTH);
        let item: MemoryItem = serde_json::from_value(serde_json::json!({
            "id": uuid::Uuid::new_v4(), "memory": "Likes tea", "hash": "h", "metadata": {},
            "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
            "valid_from": "2024-01-01T00:00:00Z"
        }))
        .unwrap();
        assert_eq!(item_binds(&item).len(), ITEM_WIDTH);
    }
}
