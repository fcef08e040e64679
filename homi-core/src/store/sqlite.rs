//! The embedded store: SQLite through sqlx, in WAL mode, with embedded
//! migrations and an in-process vector cache per scope.
//!
//! The cache stays correct when other processes write to the same file: every
//! write transaction bumps a change counter (`homi_store_state.seq`) and stamps the
//! rows it touches; before answering, a search compares its copy's counter with
//! the database's and reads only what changed (or everything, after a wipe).
//! The same cache holds each scope's keyword index (`keyword_index.rs`):
//! keyword search ranks from it, not from an index in the file.
//!
//! Explicit deletions leave no text behind: `secure_delete` zeroes freed
//! content, history keeps only that a deletion happened, and the write-ahead
//! log is checkpointed and truncated afterwards.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Value as SqlValue;
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, Sqlite, SqliteConnection};
use uuid::Uuid;

mod reader;
mod transfer;

use super::sql::memory::{
    EMBEDDER_SQL, MemoryDriver, Removed, embedder_from_meta, item_at, memory_columns,
};
use super::sql::{self, Bind, Columns, Dialect, Driver, Exec, SqlStore};
use super::vector::{Accept, ScopeVectors};
use super::{
    Change, EmbedderInfo, HybridCandidates, MemoryRecord, Neighbour, Outcome, ReadParams,
    ReembedBatch, Store, normalize, score_from_cosine,
};
use crate::error::{Error, Result};
use crate::model::{Access, HistoryEntry, MemoryItem, Scope};
use crate::model::{Field, Op};

/// Tombstones older than this many changes are pruned; caches further behind reload fully.
const TOMBSTONE_WINDOW: i64 = 100_000;
/// Most SQL parameters per `IN (…)` list.
const IN_CHUNK: usize = 500;

/// The schema's migrations, in order. The auth tables exist in every build,
/// so one database serves builds with and without the `auth` feature.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "memories",
        include_str!("../../migrations/sqlite/0001_memories.sql"),
    ),
    (
        2,
        "auth",
        include_str!("../../migrations/sqlite/0002_auth.sql"),
    ),
    (
        3,
        "jobs",
        include_str!("../../migrations/sqlite/0003_jobs.sql"),
    ),
    (
        4,
        "conversations",
        include_str!("../../migrations/sqlite/0004_conversations.sql"),
    ),
    (
        5,
        "api keys",
        include_str!("../../migrations/sqlite/0005_api_keys.sql"),
    ),
    (
        6,
        "reembed",
        include_str!("../../migrations/sqlite/0006_reembed.sql"),
    ),
    (
        7,
        "full-text search",
        include_str!("../../migrations/sqlite/0007_fts.sql"),
    ),
    (
        8,
        "keyword index in memory",
        include_str!("../../migrations/sqlite/0008_drop_fts.sql"),
    ),
    (
        9,
        "tables named as on Postgres",
        include_str!("../../migrations/sqlite/0009_homi_names.sql"),
    ),
];

/// Runs the migrations. Two processes (or two opens in one) that create the
/// same new database at once race: each migration is one transaction, so the
/// loser's fails whole ("table … already exists") and, run again, finds it
/// applied.
async fn run_migrations(pool: &SqlitePool) -> Result<()> {
    let mut attempt = 0;
    loop {
        match sql::migrator(MIGRATIONS).run(pool).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 5 => {
                attempt += 1;
                tracing::debug!(error = %e, attempt, "migrations raced another opener; running them again");
                tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Options of [`SqliteStore::open_with`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Memory budget of the vector cache, in bytes.
    pub cache_bytes: usize,
    /// Connections in the pool.
    pub max_connections: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            cache_bytes: 1024 * 1024 * 1024,
            max_connections: 4,
        }
    }
}

/// The SQLite store.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> homi_core::Result<()> {
/// use homi_core::{Access, Scope};
/// use homi_core::store::sqlite::SqliteStore;
/// use homi_core::store::{Change, EmbedderInfo, NewMemory, Outcome, ReadParams, Store};
/// let store = SqliteStore::open("sqlite::memory:").await?;
/// store.bind_embedder(&EmbedderInfo { model: "my-embedder".into(), dims: 3 }).await?;
/// let scope = Scope::user("u1");
/// let memory = |text: &str, embedding: Vec<f32>| NewMemory {
///     id: uuid::Uuid::new_v4(),
///     text: text.into(),
///     hash: homi_core::memory::text_hash(text),
///     metadata: Default::default(),
///     scope: scope.clone(),
///     actor_id: None,
///     role: None,
///     embedding,
///     said_at: None,
/// };
/// let out = store
///     .apply(&Access::from(&scope), None, vec![
///         Change::Add(memory("Likes tea", vec![1.0, 0.0, 0.0])),
///         Change::Add(memory("Likes tea", vec![1.0, 0.0, 0.0])),
///     ])
///     .await?;
/// assert!(matches!(out[1], Outcome::Duplicate { .. }));
/// let hits = store.search(&scope, &[0.9, 0.1, 0.0], &ReadParams { limit: 5, ..Default::default() }).await?;
/// assert_eq!(hits[0].memory, "Likes tea");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Reads (and the migrations).
    pool: SqlitePool,
    /// Writes: one connection (the same pool for an in-memory database).
    writer: SqlitePool,
    cache: Arc<VectorCache>,
    /// Synchronous readers for the hot paths (file databases only).
    reader: Option<Arc<reader::SyncReader>>,
}

#[derive(Debug)]
struct CacheEntry {
    data: tokio::sync::RwLock<Option<ScopeVectors>>,
    last_used: AtomicU64,
}

#[derive(Debug)]
struct VectorCache {
    entries: Mutex<HashMap<Scope, Arc<CacheEntry>>>,
    budget: usize,
    clock: AtomicU64,
}

impl VectorCache {
    fn entry(&self, scope: &Scope) -> Arc<CacheEntry> {
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let e = entries
            .entry(scope.clone())
            .or_insert_with(|| {
                Arc::new(CacheEntry {
                    data: tokio::sync::RwLock::new(None),
                    last_used: AtomicU64::new(tick),
                })
            })
            .clone();
        e.last_used.store(tick, Ordering::Relaxed);
        e
    }

    /// Drops least recently used scopes (other than `keep`) while over budget.
    fn evict(&self, keep: &Scope) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut sizes: Vec<(u64, Scope, usize)> = entries
            .iter()
            .map(|(s, e)| {
                let bytes = e
                    .data
                    .try_read()
                    .map(|g| g.as_ref().map_or(0, ScopeVectors::bytes))
                    .unwrap_or(0);
                (e.last_used.load(Ordering::Relaxed), s.clone(), bytes)
            })
            .collect();
        let mut total: usize = sizes.iter().map(|x| x.2).sum();
        if total <= self.budget {
            return;
        }
        sizes.sort_by_key(|x| x.0);
        for (_, scope, bytes) in sizes {
            if total <= self.budget {
                break;
            }
            if &scope != keep {
                entries.remove(&scope);
                total -= bytes;
            }
        }
    }
}

fn to_time(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

fn encode_vec(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

fn decode_vec(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// A bind as SQLite stores it: uuids and JSON as text, times as Unix
/// microseconds, flags as integers, vectors as `f32` blobs.
fn stored(b: &Bind) -> SqlValue {
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

type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments>;

fn bind_all<'q>(mut q: Query<'q>, binds: &'q [Bind]) -> Query<'q> {
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

/// SQLite's side of the shared conditions (`store/sql.rs`): anonymous `?`
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
    const GREATEST: &'static str = "MAX";
    const ROW_KEY: &'static str = "rid";
    const HISTORY_ORDER: &'static str = "h.rowid";

    fn indexed_by(index: &str) -> String {
        format!(" INDEXED BY {index}")
    }
}

#[async_trait]
impl SqlStore for SqliteStore {
    type D = SqliteDialect;

    async fn write(&self) -> Result<sqlx::Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn snapshot(&self) -> Result<sqlx::Transaction<'static, Sqlite>> {
        Ok(self.pool.begin().await?)
    }

    async fn read(&self) -> Result<PoolConnection<Sqlite>> {
        Ok(self.pool.acquire().await?)
    }

    async fn scrub(&self) {
        self.scrub_wal().await;
    }

    fn exists_now(&self, sql: &str, args: &Vec<Bind>) -> Option<bool> {
        self.reader.as_ref()?.read(|c| {
            c.prepare_cached(sql)?
                .exists(rusqlite::params_from_iter(args.iter().map(stored)))
        })
    }
}

#[async_trait]
impl MemoryDriver for SqliteDialect {
    const VECTOR_INLINE: bool = false;
    const STAMPED: bool = true;
    const SHARE_LOCK: &'static str = "";
    const ROW_LOCK: &'static str = "";
    const SAME: &'static str = "IS";

    async fn stamp(c: &mut SqliteConnection) -> Result<i64> {
        bump_seq(c).await
    }

    /// Single deletions leave tombstones (row ids), which caches drop one by
    /// one; deleting a scope marks a wipe, after which caches reload. The
    /// vectors go with their rows (`ON DELETE CASCADE`).
    async fn forget(
        c: &mut SqliteConnection,
        seq: i64,
        removed: Removed<'_, SqliteRow>,
    ) -> Result<()> {
        let Removed::Rows(rows) = removed else {
            sqlx::query("UPDATE homi_store_state SET wipe_seq = ? WHERE id = 1")
                .bind(seq)
                .execute(c)
                .await?;
            return Ok(());
        };
        for row in rows {
            sqlx::query("INSERT INTO homi_memory_tombstones (seq, rid) VALUES (?, ?)")
                .bind(seq)
                .bind(row.int(0)?)
                .execute(&mut *c)
                .await?;
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
const COLUMNS: &str = concat!("m.rid, ", memory_columns!());

fn parse_uuid(s: &str) -> Result<Uuid> {
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

fn sync_read_error(e: rusqlite::Error) -> Error {
    Error::storage(format!("reading a memory: {e}"))
}

/// A memory from a row that starts with [`COLUMNS`].
fn item_from_row(row: &(impl Columns + ?Sized)) -> Result<(i64, MemoryItem)> {
    Ok((row.int(0)?, item_at(row, 1)?))
}

/// The cached rows a read accepts: its validity condition, and the rows a
/// metadata filter let through.
fn accept_of<'a>(params: &ReadParams, allowed: Option<&'a HashSet<i64>>) -> Accept<'a> {
    Accept {
        as_of: params.as_of.map(|t| t.timestamp_micros()),
        current_only: !params.include_superseded,
        allowed,
    }
}

/// The scope's best hits for `query` as `(rid, score)`, best first, within
/// the threshold.
fn scan(
    sv: &ScopeVectors,
    query: &[f32],
    params: &ReadParams,
    allowed: Option<&HashSet<i64>>,
) -> Vec<(i64, f32)> {
    let mut q = query.to_vec();
    normalize(&mut q);
    let accept = accept_of(params, allowed);
    sv.search(&q, params.limit, &accept)
        .into_iter()
        .map(|(rid, cos)| (rid, score_from_cosine(cos)))
        .filter(|(_, s)| params.threshold.is_none_or(|t| *s >= t))
        .collect()
}

/// The memories of `hits` (at most [`IN_CHUNK`]), still in the scope.
fn rows_by_rid_sql(scope: &Scope, hits: &[(i64, f32)]) -> (String, Vec<Bind>) {
    let mut binds: Vec<Bind> = hits.iter().map(|(rid, _)| Bind::Int(*rid)).collect();
    let scope_where = sql::scope_sql::<SqliteDialect>(scope, "m", &mut binds);
    let sql = format!(
        // Row-id lookups; without NOT INDEXED the planner may walk the
        // scope's whole index instead.
        "SELECT {COLUMNS} FROM homi_memories m NOT INDEXED WHERE m.rid IN ({}) AND {scope_where}",
        vec!["?"; hits.len()].join(", ")
    );
    (sql, binds)
}

/// The found memories in the hits' order, scored; rows deleted meanwhile are
/// left out.
fn in_hit_order(hits: Vec<(i64, f32)>, mut by_rid: HashMap<i64, MemoryItem>) -> Vec<MemoryItem> {
    hits.into_iter()
        .filter_map(|(rid, score)| {
            by_rid.remove(&rid).map(|mut item| {
                item.score = Some(score);
                item
            })
        })
        .collect()
}

/// What the one-read hybrid search ([`SqliteStore::hybrid_sync`]) found.
enum FastHybrid {
    Found(HybridCandidates),
    /// The scope's cached vectors are missing, busy or behind the database:
    /// bring them up to date and try again.
    Stale,
    /// Only the composition answers this one (a metadata filter, or no
    /// synchronous reader free).
    Compose,
}

/// Every vector of `scope` and the change counter, from one snapshot of the
/// synchronous reader (`None`: read through sqlx instead).
fn load_scope_sync(
    reader: &reader::SyncReader,
    scope: &Scope,
    dims: usize,
) -> Option<ScopeVectors> {
    let mut binds = Vec::new();
    let scope_where = sql::scope_sql::<SqliteDialect>(scope, "m", &mut binds);
    let sql = format!(
        "SELECT m.rid, m.valid_from, m.valid_to, e.embedding, m.memory FROM homi_memories m \
         JOIN homi_memory_embeddings e ON e.rid = m.rid WHERE {scope_where}"
    );
    reader
        .read(|c| {
            let seq: i64 = c.prepare_cached(STATE_SQL)?.query_row([], |r| r.get(0))?;
            let mut sv = ScopeVectors::new(dims, seq);
            let mut texts = Vec::new();
            let mut stmt = c.prepare(&sql)?;
            let values = binds.iter().map(stored);
            let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
            while let Some(row) = rows.next()? {
                let blob = row.get_ref(3)?.as_blob()?;
                let rid = row.get(0)?;
                if sv.append(rid, row.get(1)?, row.get(2)?, blob) {
                    texts.push((rid, row.get(4)?));
                }
            }
            Ok((sv, texts))
        })
        .map(|(mut sv, texts)| {
            // Outside the read: the snapshot is not held while computing.
            sv.derive();
            sv.keywords.extend(texts);
            sv
        })
}

/// The row ids of `chunk` whose cosine is known, as an SQL list of integers
/// (`NULL` when none is).
fn cached_list(chunk: &[i64], cosines: &HashMap<i64, f32>) -> String {
    let known: Vec<String> = chunk
        .iter()
        .filter(|r| cosines.contains_key(r))
        .map(i64::to_string)
        .collect();
    if known.is_empty() {
        "NULL".to_owned()
    } else {
        known.join(", ")
    }
}

struct State {
    seq: i64,
    wipe_seq: i64,
    tomb_floor: i64,
    /// The recorded embedding dimension, if any memory was ever written.
    dims: Option<usize>,
}

const STATE_SQL: &str = "SELECT seq, wipe_seq, tomb_floor, \
     (SELECT value FROM homi_meta WHERE key = 'embedder_dims') FROM homi_store_state WHERE id = 1";

async fn read_state(conn: &mut SqliteConnection) -> Result<State> {
    let row = sqlx::query(STATE_SQL).fetch_one(conn).await?;
    Ok(State {
        seq: row.try_get(0)?,
        wipe_seq: row.try_get(1)?,
        tomb_floor: row.try_get(2)?,
        dims: row
            .try_get::<Option<String>, _>(3)?
            .and_then(|d| d.parse().ok()),
    })
}

async fn bump_seq(conn: &mut SqliteConnection) -> Result<i64> {
    let row = sqlx::query("UPDATE homi_store_state SET seq = seq + 1 WHERE id = 1 RETURNING seq")
        .fetch_one(conn)
        .await?;
    Ok(row.try_get(0)?)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path`,
    /// `sqlite:path` or `sqlite::memory:`) and runs migrations.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, SqliteOptions::default()).await
    }

    /// [`SqliteStore::open`] with options.
    pub async fn open_with(url: &str, options: SqliteOptions) -> Result<Self> {
        let memory = super::sqlite_in_memory(url);
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::config("DATABASE_URL", format!("not a valid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("secure_delete", "ON");
        // A local file cannot drop a connection: skip the ping on every acquire.
        let mut pool = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(if memory {
                1
            } else {
                options.max_connections.max(1)
            });
        if memory {
            // Each connection to `:memory:` is its own database: keep exactly one, forever.
            pool = pool
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = pool.connect_with(connect.clone()).await.map_err(|e| {
            Error::Storage(format!("cannot open the SQLite database {url}: {e}").into())
        })?;
        run_migrations(&pool).await?;
        // Writes go through one connection of their own: writers of this
        // process queue for it in order, instead of colliding on SQLite's
        // write lock and sleeping in its busy handler (which backs off up to
        // 100 ms a try: the p99 of a chat turn at 50 connections was 580 ms
        // that way). Other processes still meet the busy timeout.
        let writer = if memory {
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(1)
                .connect_with(connect.clone())
                .await
                .map_err(|e| {
                    Error::Storage(format!("cannot open the SQLite database {url}: {e}").into())
                })?
        };
        Ok(Self {
            writer,
            reader: (!memory)
                .then(|| reader::SyncReader::open(connect.get_filename()))
                .flatten()
                .map(Arc::new),
            pool,
            cache: Arc::new(VectorCache {
                entries: Mutex::new(HashMap::new()),
                budget: options.cache_bytes,
                clock: AtomicU64::new(0),
            }),
        })
    }

    /// The connection pool (for tests and tools).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Checkpoints the write-ahead log and truncates it, so deleted content
    /// does not linger in the `-wal` file. Best effort: readers holding an old
    /// snapshot can delay it to a later checkpoint.
    async fn scrub_wal(&self) {
        for _ in 0..3 {
            match sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.pool)
                .await
            {
                Ok(row) if row.try_get::<i64, _>(0).unwrap_or(1) == 0 => return,
                Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                Err(e) => {
                    tracing::warn!(error = %e, "WAL checkpoint after a deletion failed");
                    return;
                }
            }
        }
        tracing::debug!(
            "WAL checkpoint after a deletion was blocked by readers; the next checkpoint completes it"
        );
    }

    /// The rows of `sql`, mapped: on the caller's thread through the
    /// synchronous reader when one is free (a short read), else through sqlx.
    async fn rows<T>(
        &self,
        sql: &str,
        binds: &[Bind],
        map: impl Fn(&dyn Columns) -> Result<T>,
    ) -> Result<Vec<T>> {
        if let Some(reader) = &self.reader {
            let values = binds.iter().map(stored);
            if let Some(out) = reader.read(|c| {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    out.push(map(row));
                }
                Ok(out)
            }) {
                return out.into_iter().collect();
            }
        }
        let rows = bind_all(sqlx::query(AssertSqlSafe(sql.to_owned())), binds)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| map(r)).collect()
    }

    /// [`Store::hybrid_candidates`] from the scope's cached vectors and one
    /// snapshot of the synchronous reader: the semantic candidates and every
    /// memory's neighbours come from the cache, the keyword candidates from
    /// the scope's keyword index beside it, and the rows are read once.
    fn hybrid_sync(
        &self,
        scope: &Scope,
        query: &[f32],
        terms: &[String],
        params: &ReadParams,
    ) -> Result<FastHybrid> {
        let Some(reader) = &self.reader else {
            return Ok(FastHybrid::Compose);
        };
        if params.filter.is_some() {
            return Ok(FastHybrid::Compose);
        }
        let entry = self.cache.entry(scope);
        let Ok(guard) = entry.data.try_read() else {
            return Ok(FastHybrid::Stale);
        };
        let Some(sv) = guard.as_ref() else {
            return Ok(FastHybrid::Stale);
        };
        if query.len() != sv.dims() {
            return Ok(FastHybrid::Stale);
        }
        let mut q = query.to_vec();
        normalize(&mut q);
        let accept = accept_of(params, None);
        let limit = params.limit;
        let read = reader.read(|c| {
            let seq: i64 = c.prepare_cached(STATE_SQL)?.query_row([], |r| r.get(0))?;
            if seq != sv.seq {
                return Ok(Err(FastHybrid::Stale));
            }
            let semantic = scan(sv, query, params, None);
            // The best keyword matches among the readable rows, from the
            // scope's index (as `keyword_search` ranks them).
            let keyword: Vec<(i64, f32)> = if terms.is_empty() || limit == 0 {
                Vec::new()
            } else {
                sv.keywords
                    .search(terms, limit, |rid| sv.accepted(rid, &accept) == Some(true))
            };
            let mut rids: Vec<i64> = semantic.iter().map(|(r, _)| *r).collect();
            rids.extend(keyword.iter().map(|(r, _)| *r));
            rids.sort_unstable();
            rids.dedup();
            let links: HashMap<i64, (Option<i64>, Option<i64>)> = rids
                .iter()
                .map(|&r| (r, sv.neighbours(r, &accept)))
                .collect();
            rids.extend(links.values().flat_map(|(b, a)| [*b, *a]).flatten());
            rids.sort_unstable();
            rids.dedup();
            let mut items = Vec::with_capacity(rids.len());
            for chunk in rids.chunks(IN_CHUNK) {
                let mut binds: Vec<Bind> = chunk.iter().map(|r| Bind::Int(*r)).collect();
                let readable = sql::readable_sql::<SqliteDialect>(scope, params, &mut binds);
                let sql = format!(
                    "SELECT {COLUMNS} FROM homi_memories m NOT INDEXED WHERE m.rid IN ({}) AND {readable}",
                    vec!["?"; chunk.len()].join(", ")
                );
                let mut stmt = c.prepare_cached(&sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(binds.iter().map(stored)))?;
                while let Some(row) = rows.next()? {
                    items.push(item_from_row(row));
                }
            }
            Ok(Ok((keyword, links, items)))
        });
        let (keyword, links, items) = match read {
            Some(Ok(found)) => found,
            Some(Err(other)) => return Ok(other),
            // No reader free, or the read failed: the composition reads through sqlx.
            None => return Ok(FastHybrid::Compose),
        };
        let mut by_rid: HashMap<i64, MemoryItem> = HashMap::with_capacity(items.len());
        for item in items {
            let (rid, mut item) = item?;
            // No vector at all (none stored): no similarity.
            let cos = sv.cosine(rid, &q).unwrap_or(-1.0);
            item.score = Some(score_from_cosine(cos));
            by_rid.insert(rid, item);
        }
        let id_of = |rid: Option<i64>| rid.and_then(|r| by_rid.get(&r)).map(|m| m.id);
        let keyword = keyword
            .iter()
            .filter_map(|(rid, kw)| by_rid.get(rid).map(|m| (m.id, *kw)))
            .collect();
        let mut rids: Vec<i64> = by_rid.keys().copied().collect();
        rids.sort_unstable();
        let loaded = rids
            .iter()
            .filter_map(|rid| {
                let (before, after) = links.get(rid).copied().unwrap_or((None, None));
                Some(Neighbour {
                    item: by_rid.get(rid)?.clone(),
                    before: id_of(before),
                    after: id_of(after),
                })
            })
            .collect();
        Ok(FastHybrid::Found(HybridCandidates { keyword, loaded }))
    }

    /// Brings the scope's cached vectors up to date with the database and
    /// returns a read guard on them.
    /// A search answered on the caller's thread through the synchronous
    /// reader: when the scope's vectors are cached and current and no metadata
    /// filter needs SQL. `None` sends the caller the asynchronous way (which
    /// also brings the cache up to date).
    fn search_sync(
        &self,
        scope: &Scope,
        query: &[f32],
        params: &ReadParams,
    ) -> Result<Option<Vec<MemoryItem>>> {
        let Some(reader) = &self.reader else {
            return Ok(None);
        };
        if params.filter.is_some() {
            return Ok(None);
        }
        let Some((seq, dims)) = reader.read(|c| {
            c.prepare_cached(STATE_SQL)?.query_row([], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(3)?))
            })
        }) else {
            return Ok(None);
        };
        let Some(dims) = dims.and_then(|d| d.parse::<usize>().ok()) else {
            return Ok(None);
        };
        if query.len() != dims {
            return Ok(None);
        }
        let entry = self.cache.entry(scope);
        let hits = {
            let Ok(g) = entry.data.try_read() else {
                return Ok(None);
            };
            match g.as_ref() {
                Some(sv) if sv.seq == seq && sv.dims() == dims => scan(sv, query, params, None),
                _ => return Ok(None),
            }
        };
        let mut by_rid: HashMap<i64, MemoryItem> = HashMap::with_capacity(hits.len());
        for chunk in hits.chunks(IN_CHUNK) {
            let (sql, binds) = rows_by_rid_sql(scope, chunk);
            let values = binds.iter().map(stored);
            let Some(rows) = reader.read(|c| {
                let mut stmt = c.prepare_cached(&sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    out.push(item_from_row(row));
                }
                Ok(out)
            }) else {
                return Ok(None);
            };
            for row in rows {
                let (rid, item) = row?;
                by_rid.insert(rid, item);
            }
        }
        Ok(Some(in_hit_order(hits, by_rid)))
    }

    /// The rows `rank` picks from the scope's cache (brought up to date
    /// first), in its order with its scores. A metadata filter is evaluated
    /// in SQL first: `rank` gets the row ids it lets through.
    async fn ranked_from_cache(
        &self,
        conn: &mut SqliteConnection,
        state: &State,
        dims: usize,
        scope: &Scope,
        params: &ReadParams,
        rank: impl FnOnce(&ScopeVectors, Option<&HashSet<i64>>) -> Vec<(i64, f32)>,
    ) -> Result<Vec<MemoryItem>> {
        let allowed: Option<HashSet<i64>> = match &params.filter {
            None => None,
            Some(_) => {
                let mut binds = Vec::new();
                let readable = sql::readable_sql::<SqliteDialect>(scope, params, &mut binds);
                let sql = format!("SELECT m.rid FROM homi_memories m WHERE {readable}");
                let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), &binds)
                    .fetch_all(&mut *conn)
                    .await?;
                let set = rows
                    .iter()
                    .map(|r| r.try_get::<i64, _>(0))
                    .collect::<std::result::Result<HashSet<_>, _>>()?;
                if set.is_empty() {
                    return Ok(Vec::new());
                }
                Some(set)
            }
        };
        let entry = self.synced(conn, state, scope, dims).await?;
        let hits = {
            let g = entry.data.read().await;
            let Some(sv) = g.as_ref() else {
                return Ok(Vec::new());
            };
            rank(sv, allowed.as_ref())
        };
        let mut by_rid: HashMap<i64, MemoryItem> = HashMap::with_capacity(hits.len());
        for chunk in hits.chunks(IN_CHUNK) {
            let (sql, binds) = rows_by_rid_sql(scope, chunk);
            let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), &binds)
                .fetch_all(&mut *conn)
                .await?;
            for row in &rows {
                let (rid, item) = item_from_row(row)?;
                by_rid.insert(rid, item);
            }
        }
        Ok(in_hit_order(hits, by_rid))
    }

    async fn synced(
        &self,
        conn: &mut SqliteConnection,
        state: &State,
        scope: &Scope,
        dims: usize,
    ) -> Result<Arc<CacheEntry>> {
        let entry = self.cache.entry(scope);
        {
            let g = entry.data.read().await;
            if let Some(sv) = g.as_ref()
                && sv.seq == state.seq
                && sv.dims() == dims
            {
                return Ok(entry.clone());
            }
        }
        let mut g = entry.data.write().await;
        // A scope not cached at all is read whole: through the synchronous
        // reader on a blocking thread when there is one (sqlx hands every
        // row across threads: 0.7 s for 10k vectors of 1536 dimensions).
        if g.as_ref().is_none_or(|sv| sv.dims() != dims)
            && let Some(reader) = self.reader.clone()
        {
            let (scope_c, loaded) = (scope.clone(), Instant::now());
            let sv = tokio::task::spawn_blocking(move || load_scope_sync(&reader, &scope_c, dims))
                .await
                .map_err(|e| Error::storage(format!("loading the scope's vectors failed: {e}")))?;
            if let Some(sv) = sv {
                tracing::debug!(
                    loaded = sv.len(),
                    ms = loaded.elapsed().as_secs_f64() * 1e3,
                    "vector cache loaded"
                );
                *g = Some(sv);
                drop(g);
                self.cache.evict(scope);
                return Ok(entry);
            }
        }
        // One read transaction: the counter and the rows come from one snapshot.
        let mut tx = sqlx::Connection::begin(conn).await?;
        let state = read_state(&mut tx).await?;
        let mut binds = Vec::new();
        let scope_where = sql::scope_sql::<SqliteDialect>(scope, "m", &mut binds);
        let incremental = matches!(g.as_ref(), Some(sv) if sv.seq >= state.wipe_seq && sv.seq >= state.tomb_floor && sv.dims() == dims);
        let mut loaded = 0usize;
        if let (true, Some(sv)) = (incremental, g.as_mut()) {
            if sv.seq != state.seq {
                let gone = sqlx::query("SELECT rid FROM homi_memory_tombstones WHERE seq > ?")
                    .bind(sv.seq)
                    .fetch_all(&mut *tx)
                    .await?;
                for r in gone {
                    sv.remove(r.try_get(0)?);
                }
                let sql = format!(
                    "SELECT m.rid, m.valid_from, m.valid_to, e.embedding, m.memory FROM homi_memories m INDEXED BY memories_seq \
                     JOIN homi_memory_embeddings e ON e.rid = m.rid WHERE m.seq > ? AND {scope_where}"
                );
                let mut all = vec![Bind::Int(sv.seq)];
                all.extend(binds);
                let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), &all)
                    .fetch_all(&mut *tx)
                    .await?;
                for r in rows {
                    let blob: Vec<u8> = r.try_get(3)?;
                    let rid: i64 = r.try_get(0)?;
                    if sv.upsert(rid, r.try_get(1)?, r.try_get(2)?, &decode_vec(&blob)) {
                        sv.keywords.upsert(rid, r.try_get::<&str, _>(4)?);
                    }
                    loaded += 1;
                }
                sv.seq = state.seq;
            }
        } else {
            let mut sv = ScopeVectors::new(dims, state.seq);
            let sql = format!(
                "SELECT m.rid, m.valid_from, m.valid_to, e.embedding, m.memory FROM homi_memories m \
                 JOIN homi_memory_embeddings e ON e.rid = m.rid WHERE {scope_where}"
            );
            let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), &binds)
                .fetch_all(&mut *tx)
                .await?;
            let mut texts = Vec::with_capacity(rows.len());
            for r in rows {
                let blob: Vec<u8> = r.try_get(3)?;
                let rid: i64 = r.try_get(0)?;
                if sv.upsert(rid, r.try_get(1)?, r.try_get(2)?, &decode_vec(&blob)) {
                    texts.push((rid, r.try_get(4)?));
                }
            }
            sv.keywords.extend(texts);
            loaded = sv.len();
            *g = Some(sv);
        }
        tx.rollback().await?;
        drop(g);
        if loaded > 0 {
            tracing::debug!(loaded, incremental, "vector cache synced");
            self.cache.evict(scope);
        }
        Ok(entry)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn embedder(&self) -> Result<Option<EmbedderInfo>> {
        // Asked before every embedding (to refuse a different embedder), so
        // answered on this thread when possible.
        if let Some(meta) = self.reader.as_ref().and_then(|r| {
            r.read(|c| {
                c.prepare_cached(EMBEDDER_SQL)?
                    .query_map([], |row| {
                        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
        }) {
            return Ok(embedder_from_meta(meta));
        }
        let mut conn = self.pool.acquire().await?;
        sql::memory::embedder::<SqliteDialect>(&mut conn, false).await
    }

    async fn bind_embedder(&self, info: &EmbedderInfo) -> Result<()> {
        if let Some(stored) = self.embedder().await? {
            return stored.must_match(info);
        }
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        match sql::memory::embedder::<SqliteDialect>(&mut tx, false).await? {
            Some(stored) => stored.must_match(info)?,
            None => {
                sqlx::query("INSERT OR REPLACE INTO homi_meta (key, value) VALUES ('embedder_model', ?), ('embedder_dims', ?)")
                    .bind(&info.model)
                    .bind(info.dims.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn find_by_hash(&self, scope: &Scope, hashes: &[String]) -> Result<Vec<MemoryItem>> {
        let mut c = self.read().await?;
        sql::memory::find_by_hash::<SqliteDialect>(&mut c, scope, hashes).await
    }

    async fn search(
        &self,
        scope: &Scope,
        query: &[f32],
        params: &ReadParams,
    ) -> Result<Vec<MemoryItem>> {
        if let Some(found) = self.search_sync(scope, query, params)? {
            return Ok(found);
        }
        let mut conn = self.pool.acquire().await?;
        let state = read_state(&mut conn).await?;
        let Some(dims) = state.dims else {
            return Ok(Vec::new());
        };
        if query.len() != dims {
            return Err(Error::invalid(
                "query",
                format!(
                    "the query vector has {} dimensions, the store holds {dims}",
                    query.len()
                ),
            ));
        }
        self.ranked_from_cache(&mut conn, &state, dims, scope, params, |sv, allowed| {
            scan(sv, query, params, allowed)
        })
        .await
    }

    async fn keyword_search(
        &self,
        scope: &Scope,
        terms: &[String],
        params: &ReadParams,
    ) -> Result<Vec<MemoryItem>> {
        if terms.is_empty() || params.limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.pool.acquire().await?;
        let state = read_state(&mut conn).await?;
        let Some(dims) = state.dims else {
            return Ok(Vec::new());
        };
        self.ranked_from_cache(&mut conn, &state, dims, scope, params, |sv, allowed| {
            let accept = accept_of(params, allowed);
            sv.keywords.search(terms, params.limit, |rid| {
                sv.accepted(rid, &accept) == Some(true)
            })
        })
        .await
    }

    async fn hybrid_candidates(
        &self,
        scope: &Scope,
        query: &[f32],
        terms: &[String],
        params: &ReadParams,
    ) -> Result<HybridCandidates> {
        match self.hybrid_sync(scope, query, terms, params)? {
            FastHybrid::Found(found) => return Ok(found),
            FastHybrid::Compose => {}
            // Bring the scope's vectors up to date, then try again.
            FastHybrid::Stale => {
                let mut conn = self.pool.acquire().await?;
                let state = read_state(&mut conn).await?;
                if let Some(dims) = state.dims.filter(|d| *d == query.len()) {
                    self.synced(&mut conn, &state, scope, dims).await?;
                    drop(conn);
                    if let FastHybrid::Found(found) =
                        self.hybrid_sync(scope, query, terms, params)?
                    {
                        return Ok(found);
                    }
                }
            }
        }
        super::composed_hybrid_candidates(self, scope, query, terms, params).await
    }

    async fn neighbourhood(
        &self,
        scope: &Scope,
        ids: &[Uuid],
        query: &[f32],
        params: &ReadParams,
    ) -> Result<Vec<Neighbour>> {
        let mut q = query.to_vec();
        normalize(&mut q);
        // The memories just before and after each one, by row id (the order
        // of writing), among those the search reads.
        let mut links: HashMap<i64, (Option<i64>, Option<i64>)> = HashMap::new();
        for chunk in ids.chunks(IN_CHUNK / 2) {
            let mut binds = Vec::new();
            let before = sql::readable_sql::<SqliteDialect>(scope, params, &mut binds);
            let after = sql::readable_sql::<SqliteDialect>(scope, params, &mut binds);
            // Unary `+`: the hits are found by id, not by walking the scope's
            // index and testing every row against the list.
            let own_scope =
                sql::scope_sql::<SqliteDialect>(scope, "c", &mut binds).replace("c.", "+c.");
            binds.extend(chunk.iter().map(|id| Bind::Text(id.to_string())));
            // With a user, walk that user's rows by id from the hit: without
            // the hint SQLite may sort the whole scope for every hit.
            let hint = if scope.user_id.is_some() {
                "INDEXED BY memories_user_rid"
            } else {
                ""
            };
            let sql = format!(
                "SELECT c.rid, \
                 (SELECT m.rid FROM homi_memories m {hint} WHERE {before} AND m.rid < c.rid ORDER BY m.rid DESC LIMIT 1), \
                 (SELECT m.rid FROM homi_memories m {hint} WHERE {after} AND m.rid > c.rid ORDER BY m.rid LIMIT 1) \
                 FROM homi_memories c WHERE {own_scope} AND c.id IN ({})",
                vec!["?"; chunk.len()].join(", ")
            );
            let found = self
                .rows(&sql, &binds, |row| {
                    Ok((row.int(0)?, (row.opt_int(1)?, row.opt_int(2)?)))
                })
                .await?;
            links.extend(found);
        }
        let mut rids: Vec<i64> = links.keys().copied().collect();
        rids.extend(links.values().flat_map(|(b, a)| [*b, *a]).flatten());
        rids.sort_unstable();
        rids.dedup();
        // Semantic scores from the scope's cached vectors (a search just
        // brought them up to date); vectors read from the table only for
        // rows the cache does not hold.
        let mut cosines: HashMap<i64, f32> = HashMap::with_capacity(rids.len());
        if let Ok(g) = self.cache.entry(scope).data.try_read()
            && let Some(sv) = g.as_ref()
        {
            for rid in &rids {
                if let Some(c) = sv.cosine(*rid, &q) {
                    cosines.insert(*rid, c);
                }
            }
        }
        let mut items: HashMap<i64, MemoryItem> = HashMap::with_capacity(rids.len());
        for chunk in rids.chunks(IN_CHUNK) {
            let mut binds: Vec<Bind> = chunk.iter().map(|r| Bind::Int(*r)).collect();
            let scope_where = sql::scope_sql::<SqliteDialect>(scope, "m", &mut binds);
            let sql = format!(
                "SELECT {COLUMNS}, CASE WHEN m.rid IN ({}) THEN NULL ELSE \
                 (SELECT e.embedding FROM homi_memory_embeddings e WHERE e.rid = m.rid) END \
                 FROM homi_memories m NOT INDEXED WHERE m.rid IN ({}) AND {scope_where}",
                cached_list(chunk, &cosines),
                vec!["?"; chunk.len()].join(", ")
            );
            let found = self
                .rows(&sql, &binds, |row| {
                    let (rid, mut item) = item_from_row(row)?;
                    let cos = match cosines.get(&rid) {
                        Some(c) => *c,
                        None => {
                            // No vector at all (none stored): no similarity.
                            let v = row.blob(15).map(|b| decode_vec(&b)).unwrap_or_default();
                            if v.len() == q.len() {
                                v.iter().zip(&q).map(|(a, b)| a * b).sum()
                            } else {
                                -1.0
                            }
                        }
                    };
                    item.score = Some(score_from_cosine(cos));
                    Ok((rid, item))
                })
                .await?;
            items.extend(found);
        }
        let id_of = |rid: Option<i64>| rid.and_then(|r| items.get(&r)).map(|m| m.id);
        let mut out = Vec::with_capacity(items.len());
        for rid in &rids {
            let (before, after) = links.get(rid).copied().unwrap_or((None, None));
            let (before, after) = (id_of(before), id_of(after));
            if let Some(item) = items.get(rid) {
                out.push(Neighbour {
                    item: item.clone(),
                    before,
                    after,
                });
            }
        }
        Ok(out)
    }

    async fn get(&self, id: Uuid, access: &Access) -> Result<Option<MemoryItem>> {
        let mut c = self.read().await?;
        sql::memory::get::<SqliteDialect>(&mut c, id, access).await
    }

    async fn list(&self, scope: &Scope, params: &ReadParams) -> Result<Vec<MemoryItem>> {
        let mut c = self.read().await?;
        sql::memory::list::<SqliteDialect>(&mut c, scope, params).await
    }

    async fn count(&self, scope: &Scope, params: &ReadParams) -> Result<u64> {
        let mut c = self.read().await?;
        sql::memory::count::<SqliteDialect>(&mut c, scope, params).await
    }

    async fn apply(
        &self,
        access: &Access,
        embedder: Option<&EmbedderInfo>,
        changes: Vec<Change>,
    ) -> Result<Vec<Outcome>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let outcomes =
            sql::memory::apply::<SqliteDialect>(&mut tx, access, embedder, changes).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn delete(&self, id: Uuid, access: &Access) -> Result<bool> {
        let mut tx = self.write().await?;
        let deleted = sql::memory::delete::<SqliteDialect>(&mut tx, id, access).await?;
        tx.commit().await?;
        if deleted {
            self.scrub().await;
        }
        Ok(deleted)
    }

    async fn delete_scope(&self, scope: &Scope) -> Result<u64> {
        let mut tx = self.write().await?;
        let deleted = sql::memory::delete_scope::<SqliteDialect>(&mut tx, scope).await?;
        tx.commit().await?;
        self.scrub().await;
        Ok(deleted)
    }

    async fn history(&self, id: Uuid, access: &Access) -> Result<Vec<HistoryEntry>> {
        let mut c = self.read().await?;
        sql::memory::history::<SqliteDialect>(&mut c, id, access).await
    }

    fn job_store(self: Arc<Self>) -> Option<Arc<dyn super::jobs::JobStore>> {
        Some(self)
    }

    #[cfg(feature = "chat")]
    fn chat_store(self: Arc<Self>) -> Option<Arc<dyn super::chat::ChatStore>> {
        Some(self)
    }

    async fn export(
        &self,
        access: &Access,
        after: Option<Uuid>,
        limit: usize,
        embeddings: bool,
    ) -> Result<Vec<MemoryRecord>> {
        let mut tx = self.snapshot().await?;
        let records =
            sql::transfer::export::<SqliteDialect>(&mut tx, access, after, limit, embeddings)
                .await?;
        tx.rollback().await?;
        Ok(records)
    }

    async fn existing_ids(&self, ids: &[Uuid]) -> Result<HashSet<Uuid>> {
        let mut c = self.read().await?;
        sql::transfer::existing_ids::<SqliteDialect>(&mut c, ids).await
    }

    async fn restore(
        &self,
        embedder: &EmbedderInfo,
        records: Vec<(MemoryRecord, Vec<f32>)>,
    ) -> Result<Vec<Outcome>> {
        let mut tx = self.write().await?;
        let outcomes = sql::transfer::restore::<SqliteDialect>(&mut tx, embedder, records).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn reembed_next(&self, target: &EmbedderInfo, limit: usize) -> Result<ReembedBatch> {
        let mut tx = self.write().await?;
        let batch = sql::transfer::reembed_next::<SqliteDialect>(&mut tx, target, limit).await?;
        tx.commit().await?;
        Ok(batch)
    }

    async fn reembed_stage(
        &self,
        target: &EmbedderInfo,
        vectors: Vec<(Uuid, String, Vec<f32>)>,
    ) -> Result<()> {
        self.reembed_stage_vectors(target, vectors).await
    }

    async fn reembed_finish(&self, target: &EmbedderInfo) -> Result<Option<EmbedderInfo>> {
        self.reembed_swap(target).await
    }

    async fn reset(&self) -> Result<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let seq = bump_seq(&mut tx).await?;
        for sql in [
            "DELETE FROM homi_memory_embeddings",
            "DELETE FROM homi_memories",
            "DELETE FROM homi_memory_history",
            "DELETE FROM homi_memory_tombstones",
            "DELETE FROM homi_memory_reembed",
            "DELETE FROM homi_jobs WHERE state IN ('queued', 'running')",
            "DELETE FROM homi_meta WHERE key IN ('embedder_model', 'embedder_dims', 'reembed_target')",
        ] {
            sqlx::query(sql).execute(&mut *tx).await?;
        }
        sqlx::query("UPDATE homi_store_state SET wipe_seq = ? WHERE id = 1")
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.scrub_wal().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::model::Filter;
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

    /// A database made before migration 0009 named its tables without the
    /// `homi_` prefix: it opens with its memories, vectors, history and
    /// account links intact, and the links still cascade.
    #[tokio::test]
    async fn a_database_from_before_the_homi_names_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        let connect = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true)
            .foreign_keys(true);
        let pool = SqlitePool::connect_with(connect).await.unwrap();
        let before: Vec<sqlx::migrate::Migration> = sql::migrator(MIGRATIONS)
            .iter()
            .filter(|m| m.version <= 8)
            .cloned()
            .collect();
        sqlx::migrate::Migrator::with_migrations(before)
            .run(&pool)
            .await
            .unwrap();
        let id = Uuid::new_v4();
        for sql in [
            "INSERT INTO homi_meta (key, value) VALUES ('embedder_model', 'm'), ('embedder_dims', '3')".to_owned(),
            format!(
                "INSERT INTO memories (id, memory, hash, user_id, created_at, updated_at, valid_from, seq) \
                 VALUES ('{id}', 'Alice keeps bees', 'h', 'alice', 1, 1, 1, 1)"
            ),
            format!(
                "INSERT INTO memory_embeddings (rid, embedding) \
                 SELECT rid, X'{}' FROM memories",
                encode_vec(&[1.0, 0.0, 0.0])
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            ),
            format!(
                "INSERT INTO memory_history (id, memory_id, new_memory, event, created_at, user_id) \
                 VALUES ('{}', '{id}', 'Alice keeps bees', 'ADD', 1, 'alice')",
                Uuid::new_v4()
            ),
            "INSERT INTO auth_users (id, email, email_normalized, password_hash, created_at, updated_at) \
             VALUES ('u1', 'a@example.com', 'a@example.com', 'x', 1, 1)"
                .to_owned(),
            "INSERT INTO auth_sessions (id, user_id, created_at, refreshed_at, expires_at) \
             VALUES ('s1', 'u1', 1, 1, 9)"
                .to_owned(),
        ] {
            sqlx::query(AssertSqlSafe(sql)).execute(&pool).await.unwrap();
        }
        pool.close().await;

        let store = SqliteStore::open(&url).await.unwrap();
        let item = store.get(id, &Access::Any).await.unwrap().unwrap();
        assert_eq!(item.memory, "Alice keeps bees");
        assert_eq!(store.history(id, &Access::Any).await.unwrap().len(), 1);
        let params = ReadParams {
            limit: 5,
            ..Default::default()
        };
        let hits = store
            .search(&Scope::user("alice"), &[1.0, 0.0, 0.0], &params)
            .await
            .unwrap();
        assert_eq!(hits.len(), 1, "the vector came along");
        let sessions = || {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM homi_auth_sessions")
                .fetch_one(&store.writer)
        };
        assert_eq!(sessions().await.unwrap(), 1);
        sqlx::query("DELETE FROM homi_auth_users WHERE id = 'u1'")
            .execute(&store.writer)
            .await
            .unwrap();
        assert_eq!(sessions().await.unwrap(), 0, "the session cascaded");
    }
}
