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
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, Sqlite, SqliteConnection};
use uuid::Uuid;

mod dialect;
mod reader;
mod search;
mod transfer;

use super::sql::memory::{EMBEDDER_SQL, embedder_from_meta};
use super::sql::row::ITEM_WIDTH;
use super::sql::store::SqlMemory;
use super::sql::{self, Bind, Columns, SqlStore};
use super::vector::{Accept, ScopeVectors, Window};
use super::{EmbedderInfo, HybridCandidates, Neighbour, ReadParams, normalize, score_from_cosine};
use crate::error::{Error, Result};
use crate::model::{MemoryItem, Scope};
use dialect::{COLUMNS, SqliteDialect, bind_all, decode_vec, encode_vec, item_from_row, stored};
use search::{FastHybrid, VectorCache, accept_of, cached_list, scan};

/// Tombstones older than this many changes are pruned; caches further behind reload fully.
const TOMBSTONE_WINDOW: i64 = 100_000;
/// Most SQL parameters per `IN (…)` list.
const IN_CHUNK: usize = 500;

/// The schema's migrations, in order: every file of `migrations/sqlite/`,
/// listed by `build.rs`. The auth tables exist in every build,
/// so one database serves builds with and without the `auth` feature.
const MIGRATIONS: &[(i64, &str, &str)] =
    include!(concat!(env!("OUT_DIR"), "/sqlite_migrations.rs"));

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
///     expires_at: None,
/// };
/// let out = store
///     .apply(&Access::from(&scope), None, None, vec![
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
    scrubs: Arc<Scrubs>,
}

#[async_trait]
impl SqlStore for SqliteStore {
    type D = SqliteDialect;

    async fn write(&self) -> Result<sqlx::Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn writer(&self) -> Result<PoolConnection<Sqlite>> {
        Ok(self.writer.acquire().await?)
    }

    async fn snapshot(&self) -> Result<sqlx::Transaction<'static, Sqlite>> {
        Ok(self.pool.begin().await?)
    }

    async fn read(&self) -> Result<PoolConnection<Sqlite>> {
        Ok(self.pool.acquire().await?)
    }

    async fn scrub(&self) {
        let wait = self.scrubs.wait();
        if wait.is_zero() {
            return checkpoint(&self.pool).await;
        }
        // Scrubbed lately: once more at the interval's end (one for all the
        // deletions meanwhile).
        if self
            .scrubs
            .due
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        let (pool, scrubs) = (self.pool.clone(), self.scrubs.clone());
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            scrubs
                .due
                .store(false, std::sync::atomic::Ordering::Release);
            let _ = scrubs.wait();
            checkpoint(&pool).await;
        });
    }

    fn exists_now(&self, sql: &str, args: &Vec<Bind>) -> Option<bool> {
        self.reader.as_ref()?.read(|c| {
            c.prepare_cached(sql)?
                .exists(rusqlite::params_from_iter(args.iter().map(stored)))
        })
    }
}

/// Truncates the write-ahead log, so that no copy of deleted text stays in
/// it: readers may hold it back, and the next checkpoint completes it.
async fn checkpoint(pool: &SqlitePool) {
    for _ in 0..3 {
        match sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(pool)
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

/// How often deletions truncate the write-ahead log at most: a deletion
/// within the interval after one is scrubbed at its end, so a flood of
/// deletions (cheap to send) does not make a checkpoint each.
const SCRUB_INTERVAL: Duration = Duration::from_secs(1);

/// The deletions' scrubs of the write-ahead log, at most one per
/// [`SCRUB_INTERVAL`].
#[derive(Debug, Default)]
struct Scrubs {
    last: std::sync::Mutex<Option<std::time::Instant>>,
    /// A scrub at the end of the interval is due.
    due: std::sync::atomic::AtomicBool,
}

impl Scrubs {
    /// How long until the next scrub may run (zero: now, and it is noted).
    fn wait(&self) -> Duration {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        let wait = last.map_or(Duration::ZERO, |t| {
            (t + SCRUB_INTERVAL).saturating_duration_since(now)
        });
        if wait.is_zero() {
            *last = Some(now);
        }
        wait
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
        // The file's directory is made as needed (`~/.homi`, a mem0 store's
        // `path`), as SQLite makes the file.
        if !memory
            && let Some(dir) = connect.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::storage(format!(
                    "cannot create the store's directory {}: {e}",
                    dir.display()
                ))
            })?;
        }
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
            cache: Arc::new(VectorCache::new(options.cache_bytes)),
            scrubs: Arc::default(),
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
        checkpoint(&self.pool).await;
    }
}

#[async_trait]
impl SqlMemory for SqliteStore {
    async fn recorded_embedder(&self) -> Result<Option<EmbedderInfo>> {
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

    async fn semantic_search(
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

    async fn keyword_ranking(
        &self,
        scope: &Scope,
        terms: &[String],
        params: &ReadParams,
    ) -> Result<Vec<MemoryItem>> {
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

    async fn hybrid_read(
        &self,
        scope: &Scope,
        query: &[f32],
        terms: &[String],
        params: &ReadParams,
    ) -> Result<Option<HybridCandidates>> {
        match self.hybrid_sync(scope, query, terms, params)? {
            FastHybrid::Found(found) => return Ok(Some(found)),
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
                        return Ok(Some(found));
                    }
                }
            }
        }
        // Compose it from its definition.
        Ok(None)
    }

    async fn neighbours(
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
                            let v = row
                                .blob(1 + ITEM_WIDTH)
                                .map(|b| decode_vec(&b))
                                .unwrap_or_default();
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

    async fn stage_vectors(
        &self,
        target: &EmbedderInfo,
        vectors: Vec<(Uuid, String, Vec<f32>)>,
    ) -> Result<()> {
        self.reembed_stage_vectors(target, vectors).await
    }

    async fn swap_vectors(&self, target: &EmbedderInfo) -> Result<Option<EmbedderInfo>> {
        self.reembed_swap(target).await
    }

    async fn wipe(&self) -> Result<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let seq = bump_seq(&mut tx).await?;
        // Work in flight anywhere must not write after this.
        super::sql::deletions::record::<SqliteDialect>(&mut tx, None, chrono::Utc::now()).await?;
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
    use crate::model::Access;
    use crate::store::Store;

    #[test]
    fn deletions_scrub_the_log_at_most_once_an_interval() {
        let scrubs = Scrubs::default();
        assert_eq!(
            scrubs.wait(),
            Duration::ZERO,
            "the first scrub runs at once"
        );
        let next = scrubs.wait();
        assert!(
            next > Duration::ZERO && next <= SCRUB_INTERVAL,
            "a second one within the interval waits for its end: {next:?}"
        );
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
