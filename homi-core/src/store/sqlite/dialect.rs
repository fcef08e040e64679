//! SQLite's side of the engine (`store/sql/`): how values are stored
//! (uuids and JSON as text, times as Unix microseconds, vectors as `f32`
//! blobs), the executor, the filter's leaves on SQLite's JSON functions, the
//! bookkeeping for the vector caches, and the row codecs shared with the
//! synchronous reader.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Value as SqlValue;
use serde_json::Value;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{AssertSqlSafe, Row, Sqlite, SqliteConnection};
use uuid::Uuid;

use super::{TOMBSTONE_WINDOW, bump_seq};
use crate::error::{Error, Result};
use crate::model::{Field, MemoryItem, Op};
use crate::store::sql::memory::MemoryDriver;
use crate::store::sql::row::{item_at, memory_columns};
use crate::store::sql::{Bind, Columns, Dialect, Driver, Exec};

pub(super) fn to_time(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

pub(super) fn encode_vec(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

pub(super) fn decode_vec(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// A bind as SQLite stores it: uuids and JSON as text, times as Unix
/// microseconds, flags as integers, vectors as `f32` blobs.
pub(super) fn stored(b: &Bind) -> SqlValue {
    match b {
        Bind::Text(s) => SqlValue::Text(s.clone()),
        Bind::OptText(s) => s.clone().map_or(SqlValue::Null, SqlValue::Text),
        Bind::Int(i) => SqlValue::Integer(*i),
        Bind::Real(r) => SqlValue::Real(*r),
        Bind::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Bind::Uuid(u) => SqlValue::Text(u.to_string()),
        Bind::OptUuid(u) => u.map_or(SqlValue::Null, |u| SqlValue::Text(u.to_string())),
        Bind::Time(t) => SqlValue::Integer(t.timestamp_micros()),
        Bind::OptTime(t) => t.map_or(SqlValue::Null, |t| SqlValue::Integer(t.timestamp_micros())),
        Bind::Json(v) => SqlValue::Text(v.to_string()),
        Bind::Vector(v) => SqlValue::Blob(encode_vec(v)),
        Bind::Texts(t) => SqlValue::Text(t.join(",")),
    }
}

pub(super) type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments>;

pub(super) fn bind_all<'q>(mut q: Query<'q>, binds: &'q [Bind]) -> Query<'q> {
    for b in binds {
        q = match stored(b) {
            SqlValue::Null => q.bind(None::<i64>),
            SqlValue::Integer(i) => q.bind(i),
            SqlValue::Real(r) => q.bind(r),
            SqlValue::Text(t) => q.bind(t),
            SqlValue::Blob(b) => q.bind(b),
        };
    }
    q
}

#[async_trait]
impl Exec<SqliteDialect> for SqliteConnection {
    async fn all(&mut self, sql: String, args: Vec<Bind>) -> Result<Vec<SqliteRow>> {
        Ok(bind_all(sqlx::query(AssertSqlSafe(sql)), &args)
            .fetch_all(self)
            .await?)
    }

    async fn optional(&mut self, sql: String, args: Vec<Bind>) -> Result<Option<SqliteRow>> {
        Ok(bind_all(sqlx::query(AssertSqlSafe(sql)), &args)
            .fetch_optional(self)
            .await?)
    }

    async fn run(&mut self, sql: String, args: Vec<Bind>) -> Result<u64> {
        Ok(bind_all(sqlx::query(AssertSqlSafe(sql)), &args)
            .execute(self)
            .await?
            .rows_affected())
    }
}

/// SQLite's side of the engine (`store/sql/`): anonymous `?`
/// placeholders bound in order, times as Unix microseconds, JSON through
/// `json_extract` / `json_type` / `json_each`.
pub(crate) struct SqliteDialect;

impl Dialect for SqliteDialect {
    type Args = Vec<Bind>;
    const TRUE: &'static str = "1";
    const FALSE: &'static str = "0";

    fn bind(args: &mut Vec<Bind>, value: Bind) -> String {
        args.push(value);
        "?".to_owned()
    }

    fn condition(field: &Field, op: Op, value: &Value, args: &mut Vec<Bind>) -> String {
        cond_sql(field, op, value, args)
    }

    fn job_scope_field(key: &str) -> String {
        format!("json_extract(payload, '$.scope.{key}')")
    }
}

impl Driver for SqliteDialect {
    type Db = Sqlite;
    type Row = SqliteRow;
    type Conn = SqliteConnection;
    const LOCKS_ROWS: bool = false;
    const CLAIM_LOCK: &'static str = "";
    const GREATEST: &'static str = "MAX";
    const ROW_KEY: &'static str = "rid";
    const HISTORY_ORDER: &'static str = "h.rowid";

    fn indexed_by(index: &str) -> String {
        format!(" INDEXED BY {index}")
    }
}

#[async_trait]
impl MemoryDriver for SqliteDialect {
    const VECTOR_INLINE: bool = false;
    const STAMPED: bool = true;
    const SHARE_LOCK: &'static str = "";
    const ROW_LOCK: &'static str = "";
    const SAME: &'static str = "IS";
    const META_LOCK: &'static str = "";

    async fn stamp(c: &mut SqliteConnection) -> Result<i64> {
        bump_seq(c).await
    }

    /// Single deletions leave tombstones (row ids), which caches drop one by
    /// one; deleting a scope marks a wipe, after which caches reload. The
    /// vectors go with their rows (`ON DELETE CASCADE`).
    async fn forget(c: &mut SqliteConnection, seq: i64, removed: &[SqliteRow]) -> Result<()> {
        // A row per deleted memory, in multi-row statements.
        for chunk in removed.chunks(400) {
            let values = vec!["(?, ?)"; chunk.len()].join(", ");
            let sql = format!("INSERT INTO homi_memory_tombstones (seq, rid) VALUES {values}");
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for row in chunk {
                query = query.bind(seq).bind(row.int(0)?);
            }
            query.execute(&mut *c).await?;
        }
        let floor = seq - TOMBSTONE_WINDOW;
        if floor > 0 {
            sqlx::query("DELETE FROM homi_memory_tombstones WHERE seq < ?")
                .bind(floor)
                .execute(&mut *c)
                .await?;
            sqlx::query("UPDATE homi_store_state SET tomb_floor = MAX(tomb_floor, ?) WHERE id = 1")
                .bind(floor)
                .execute(&mut *c)
                .await?;
        }
        Ok(())
    }
}

fn json_path(key: &str) -> String {
    format!("$.\"{key}\"")
}

fn scalar_bind(v: &Value) -> Option<Bind> {
    match v {
        Value::String(s) => Some(Bind::Text(s.clone())),
        Value::Bool(b) => Some(Bind::Int(i64::from(*b))),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => Bind::Int(i),
            None => Bind::Real(n.as_f64().unwrap_or(0.0)),
        }),
        _ => None,
    }
}

fn cond_sql(field: &Field, op: Op, value: &Value, binds: &mut Vec<Bind>) -> String {
    // `expr` pushes its own binds each time it is used.
    let (col, path) = match field {
        Field::ActorId => (Some("m.actor_id"), None),
        Field::Role => (Some("m.role"), None),
        Field::Metadata(k) => (None, Some(json_path(k))),
    };
    let expr = |binds: &mut Vec<Bind>| -> String {
        match (col, &path) {
            (Some(c), _) => c.to_owned(),
            (None, Some(p)) => {
                binds.push(Bind::Text(p.clone()));
                "json_extract(m.metadata, ?)".to_owned()
            }
            _ => "NULL".to_owned(),
        }
    };
    let type_check = |binds: &mut Vec<Bind>, numeric: bool| -> String {
        match (&path, col) {
            (Some(p), _) => {
                binds.push(Bind::Text(p.clone()));
                if numeric {
                    "json_type(m.metadata, ?) IN ('integer', 'real')".to_owned()
                } else {
                    "json_type(m.metadata, ?) = 'text'".to_owned()
                }
            }
            (None, Some(c)) => {
                if numeric {
                    "0".to_owned()
                } else {
                    format!("{c} IS NOT NULL")
                }
            }
            _ => "0".to_owned(),
        }
    };
    match op {
        Op::Exists => match (&path, col) {
            (Some(p), _) => {
                binds.push(Bind::Text(p.clone()));
                "json_type(m.metadata, ?) IS NOT NULL".to_owned()
            }
            (None, Some(c)) => format!("{c} IS NOT NULL"),
            _ => "0".to_owned(),
        },
        Op::Eq | Op::Ne => {
            let e = expr(binds);
            match scalar_bind(value) {
                None => {
                    if op == Op::Eq {
                        format!("{e} IS NULL")
                    } else {
                        format!("{e} IS NOT NULL")
                    }
                }
                Some(b) => {
                    if op == Op::Eq {
                        binds.push(b);
                        format!("{e} = ?")
                    } else {
                        let e2 = expr(binds);
                        binds.push(b);
                        format!("({e} IS NULL OR {e2} != ?)")
                    }
                }
            }
        }
        Op::In | Op::Nin => {
            let items: Vec<Bind> = value
                .as_array()
                .map(|a| a.iter().filter_map(scalar_bind).collect())
                .unwrap_or_default();
            if items.is_empty() {
                return if op == Op::In {
                    "0".to_owned()
                } else {
                    "1".to_owned()
                };
            }
            let placeholders = vec!["?"; items.len()].join(", ");
            if op == Op::In {
                let e = expr(binds);
                binds.extend(items);
                format!("{e} IN ({placeholders})")
            } else {
                let e1 = expr(binds);
                let e2 = expr(binds);
                binds.extend(items);
                format!("({e1} IS NULL OR {e2} NOT IN ({placeholders}))")
            }
        }
        Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
            let sym = match op {
                Op::Gt => ">",
                Op::Gte => ">=",
                Op::Lt => "<",
                _ => "<=",
            };
            let numeric = value.is_number();
            let check = type_check(binds, numeric);
            let e = expr(binds);
            match scalar_bind(value) {
                Some(b) => {
                    binds.push(b);
                    format!("({check} AND {e} {sym} ?)")
                }
                None => "0".to_owned(),
            }
        }
        Op::Contains | Op::Icontains => {
            let needle = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            match (&path, col) {
                (Some(p), _) => {
                    if op == Op::Contains {
                        binds.push(Bind::Text(p.clone()));
                        binds.push(scalar_bind(value).unwrap_or(Bind::Text(needle.clone())));
                        binds.push(Bind::Text(p.clone()));
                        binds.push(Bind::Text(p.clone()));
                        binds.push(Bind::Text(needle));
                        "(EXISTS (SELECT 1 FROM json_each(m.metadata, ?) j WHERE j.value = ?) \
                         OR (json_type(m.metadata, ?) = 'text' AND instr(json_extract(m.metadata, ?), ?) > 0))"
                            .to_owned()
                    } else {
                        binds.push(Bind::Text(p.clone()));
                        binds.push(Bind::Text(p.clone()));
                        binds.push(Bind::Text(needle));
                        "(json_type(m.metadata, ?) = 'text' AND instr(lower(json_extract(m.metadata, ?)), lower(?)) > 0)"
                            .to_owned()
                    }
                }
                (None, Some(c)) => {
                    binds.push(Bind::Text(needle));
                    if op == Op::Contains {
                        format!("instr({c}, ?) > 0")
                    } else {
                        format!("instr(lower({c}), lower(?)) > 0")
                    }
                }
                _ => "0".to_owned(),
            }
        }
    }
}

/// `rid` and a memory's columns.
pub(super) const COLUMNS: &str = concat!("m.rid, ", memory_columns!());

pub(super) fn parse_uuid(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| Error::storage(format!("corrupt id '{s}' in the store: {e}")))
}

/// A sqlx or a synchronous reader's row, decoded from SQLite's encodings
/// (see [`stored`]).
macro_rules! sqlite_columns {
    ($row:ty, $get:ident, $err:path) => {
        impl Columns for $row {
            fn text(&self, i: usize) -> Result<String> {
                self.$get(i).map_err($err)
            }
            fn opt_text(&self, i: usize) -> Result<Option<String>> {
                self.$get(i).map_err($err)
            }
            fn int(&self, i: usize) -> Result<i64> {
                self.$get(i).map_err($err)
            }
            fn opt_int(&self, i: usize) -> Result<Option<i64>> {
                self.$get(i).map_err($err)
            }
            fn blob(&self, i: usize) -> Result<Vec<u8>> {
                self.$get(i).map_err($err)
            }
            fn uuid(&self, i: usize) -> Result<Uuid> {
                parse_uuid(&self.text(i)?)
            }
            fn opt_uuid(&self, i: usize) -> Result<Option<Uuid>> {
                self.opt_text(i)?.as_deref().map(parse_uuid).transpose()
            }
            fn time(&self, i: usize) -> Result<DateTime<Utc>> {
                Ok(to_time(self.int(i)?))
            }
            fn opt_time(&self, i: usize) -> Result<Option<DateTime<Utc>>> {
                Ok(self.opt_int(i)?.map(to_time))
            }
            fn json(&self, i: usize) -> Result<Value> {
                serde_json::from_str(&self.text(i)?)
                    .map_err(|e| Error::storage(format!("corrupt JSON in the store: {e}")))
            }
            fn flag(&self, i: usize) -> Result<bool> {
                Ok(self.int(i)? != 0)
            }
            fn vector(&self, i: usize) -> Result<Vec<f32>> {
                Ok(decode_vec(&self.blob(i)?))
            }
            fn texts(&self, i: usize) -> Result<Vec<String>> {
                let t = self.text(i)?;
                Ok(t.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect())
            }
        }
    };
}

sqlite_columns!(SqliteRow, try_get, Error::from);
sqlite_columns!(rusqlite::Row<'_>, get, sync_read_error);

pub(super) fn sync_read_error(e: rusqlite::Error) -> Error {
    Error::storage(format!("reading a memory: {e}"))
}

/// A memory from a row that starts with [`COLUMNS`].
pub(super) fn item_from_row(row: &(impl Columns + ?Sized)) -> Result<(i64, MemoryItem)> {
    Ok((row.int(0)?, item_at(row, 1)?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::model::Filter;
    use crate::store::sql;
    use serde_json::json;

    fn sql_for(filter: &Value) -> (String, usize) {
        let (_, f) = Filter::parse_mem0(filter).unwrap();
        let mut binds = Vec::new();
        let sql = sql::filter_sql::<SqliteDialect>(&f.unwrap(), &mut binds);
        (sql, binds.len())
    }

    #[test]
    fn placeholders_match_binds() {
        for f in [
            json!({"a": 1}),
            json!({"a": {"ne": "x"}}),
            json!({"role": {"ne": "user"}}),
            json!({"a": {"nin": [1, 2]}}),
            json!({"a": {"gte": 3}, "b": {"contains": "z"}, "c": {"icontains": "Q"}}),
            json!({"OR": [{"a": "*"}, {"NOT": {"b": [1]}}]}),
            json!({"actor_id": {"contains": "bo"}}),
        ] {
            let (sql, n) = sql_for(&f);
            assert_eq!(sql.matches('?').count(), n, "{f}: {sql}");
        }
    }
}
