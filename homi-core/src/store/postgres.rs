//! The scale-out store: PostgreSQL with pgvector (Supabase-compatible), through
//! sqlx.
//!
//! Every query filters by scope in SQL. Search ranks the scope's rows by exact
//! cosine distance (`<=>`), so results never depend on an index's recall.
//! Several processes can share one database: writes are transactions, and a
//! partial unique index keeps one current memory per text and exact scope, so
//! concurrent writers cannot insert the same fact twice.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Postgres, Row};
use uuid::Uuid;

mod dialect;
mod transfer;

use super::sql::store::SqlMemory;
use super::sql::{self, Bind, SqlStore};
use super::{EmbedderInfo, Neighbour, ReadParams, Store, score_from_cosine};
use crate::error::{Error, Result};
use crate::model::{MemoryItem, Scope, keywords};
use dialect::{Args, COLUMNS, PgDialect, bind_all, item_from_row, normalized};

/// The schema's migrations, in order: every file of `migrations/postgres/`,
/// listed by `build.rs`. The auth tables exist in every build,
/// so one database serves builds with and without the `auth` feature.
const MIGRATIONS: &[(i64, &str, &str)] =
    include!(concat!(env!("OUT_DIR"), "/postgres_migrations.rs"));

fn migrator() -> Migrator {
    let mut m = sql::migrator(MIGRATIONS);
    // A shared database (e.g. a Supabase project) may run its own sqlx migrations.
    m.dangerous_set_table_name("homi_migrations");
    m
}

/// Options of [`PostgresStore::open_with`].
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Most connections in the pool.
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long to wait for a free connection.
    pub acquire_timeout: Duration,
    /// Scopes with at most this many memories are ranked by an exact scan;
    /// larger ones go through the HNSW index (with pgvector's iterative scan,
    /// and an exact scan when the index returns fewer rows than asked).
    pub exact_scan_max: usize,
    /// A collection of its own: Homi's tables in the schema `homi_<name>`
    /// ([`crate::Config::collection`]), created when missing.
    pub collection: Option<String>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(30),
            exact_scan_max: DEFAULT_EXACT_SCAN_MAX,
            collection: None,
        }
    }
}

/// Default of [`PostgresOptions::exact_scan_max`] (see BENCHMARKS.md).
pub const DEFAULT_EXACT_SCAN_MAX: usize = 10_000;

/// The Postgres store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    exact_scan_max: usize,
}

/// The indexable cast of the embedding column for `dims`: pgvector's HNSW
/// indexes `vector` up to 2,000 dimensions and `halfvec` up to 4,000.
fn ann_cast(dims: usize) -> Option<(&'static str, &'static str)> {
    if dims <= 2000 {
        Some(("vector", "vector_cosine_ops"))
    } else if dims <= 4000 {
        Some(("halfvec", "halfvec_cosine_ops"))
    } else {
        None
    }
}

/// Creates the HNSW index for `dims` if it is missing.
async fn create_vector_index(conn: &mut PgConnection, dims: usize) -> Result<()> {
    if let Some((ty, ops)) = ann_cast(dims) {
        let sql = format!(
            "CREATE INDEX IF NOT EXISTS homi_memories_embedding_hnsw ON homi_memories \
             USING hnsw ((embedding::{ty}({dims})) {ops})"
        );
        sqlx::query(AssertSqlSafe(sql)).execute(conn).await?;
    }
    Ok(())
}

/// Builds the HNSW index for the recorded embedder without blocking writes
/// (`CREATE INDEX CONCURRENTLY`, which also leaves out row versions no
/// transaction sees any more, such as the vectors a re-embedding replaced).
/// A failed build leaves no invalid index behind.
async fn build_vector_index_concurrently(pool: &PgPool) -> Result<()> {
    let mut conn = pool.acquire().await?;
    let Some(info) = sql::memory::embedder::<PgDialect>(&mut conn, false).await? else {
        return Ok(());
    };
    let Some((ty, ops)) = ann_cast(info.dims) else {
        return Ok(());
    };
    let dims = info.dims;
    let sql = format!(
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS homi_memories_embedding_hnsw ON homi_memories \
         USING hnsw ((embedding::{ty}({dims})) {ops})"
    );
    if let Err(e) = sqlx::query(AssertSqlSafe(sql)).execute(&mut *conn).await {
        let _ = sqlx::query("DROP INDEX CONCURRENTLY IF EXISTS homi_memories_embedding_hnsw")
            .execute(&mut *conn)
            .await;
        return Err(e.into());
    }
    Ok(())
}

#[async_trait]
impl SqlStore for PostgresStore {
    type D = PgDialect;

    async fn write(&self) -> Result<sqlx::Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }

    async fn writer(&self) -> Result<PoolConnection<Postgres>> {
        Ok(self.pool.acquire().await?)
    }

    async fn snapshot(&self) -> Result<sqlx::Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    async fn read(&self) -> Result<PoolConnection<Postgres>> {
        Ok(self.pool.acquire().await?)
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:pass@host:port/db?sslmode=require`)
    /// and runs migrations (creating the `vector` extension if it is missing).
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, PostgresOptions::default()).await
    }

    /// [`PostgresStore::open`] with pool options.
    pub async fn open_with(url: &str, options: PostgresOptions) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| Error::config("DATABASE_URL", format!("not a valid Postgres URL: {e}")))?;
        let schema = match options.collection.as_deref() {
            Some(name) => Some(format!(
                "\"homi_{}\"",
                crate::config::collection_name(name)?
            )),
            None => None,
        };
        let mut pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .min_connections(options.min_connections)
            .acquire_timeout(options.acquire_timeout);
        if let Some(schema) = schema.clone() {
            // The collection's schema first, then the connection's usual
            // path (where `vector` lives: public, or Supabase's extensions).
            pool = pool.after_connect(move |conn, _| {
                let schema = schema.clone();
                Box::pin(async move {
                    sqlx::query(
                        "SELECT set_config('search_path', $1 || ', ' || current_setting('search_path'), false)",
                    )
                    .bind(schema)
                    .execute(conn)
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = pool
            .connect_with(connect)
            .await
            .map_err(|e| Error::Storage(format!("cannot connect to Postgres: {e}").into()))?;
        if let Some(schema) = &schema {
            // The extension where the migration would put it without the
            // collection (the schema does not exist yet the first time), then
            // the schema, which the connections' path already names.
            let mut conn = pool.acquire().await?;
            sqlx::query("CREATE EXTENSION IF NOT EXISTS vector")
                .execute(&mut *conn)
                .await?;
            sqlx::query(AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}"
            )))
            .execute(&mut *conn)
            .await?;
        }
        migrator().run(&pool).await?;
        // An index a re-embedding could not rebuild is built now, without
        // blocking writes or this open.
        let missing: bool = sqlx::query_scalar(
            "SELECT to_regclass('homi_memories_embedding_hnsw') IS NULL \
             AND EXISTS (SELECT 1 FROM homi_meta WHERE key = 'embedder_dims')",
        )
        .fetch_one(&pool)
        .await?;
        if missing {
            let pool = pool.clone();
            tokio::spawn(async move {
                if let Err(e) = build_vector_index_concurrently(&pool).await {
                    tracing::warn!(error = %e, "building the vector index failed; searches of large scopes scan exactly");
                }
            });
        }
        Ok(Self {
            pool,
            exact_scan_max: options.exact_scan_max,
        })
    }

    /// The connection pool (for tests and tools).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates the HNSW index if the embedder is known and the index is
    /// missing (it is created with the first write; a bulk load may drop it
    /// and build it once at the end). Returns whether an index exists now.
    pub async fn ensure_vector_index(&self) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        let Some(info) = sql::memory::embedder::<PgDialect>(&mut conn, false).await? else {
            return Ok(false);
        };
        create_vector_index(&mut conn, info.dims).await?;
        Ok(ann_cast(info.dims).is_some())
    }

    /// Drops the HNSW index (before a bulk load).
    pub async fn drop_vector_index(&self) -> Result<()> {
        sqlx::query("DROP INDEX IF EXISTS homi_memories_embedding_hnsw")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ranks the scope's rows: exactly, or through the HNSW index.
    async fn rank(
        &self,
        scope: &Scope,
        query: &[f32],
        params: &ReadParams,
        dims: usize,
        use_index: bool,
    ) -> Result<Vec<MemoryItem>> {
        let mut args = Args::default();
        let q = args.push(Bind::Vector(normalized(query)));
        let readable = sql::readable_sql::<PgDialect>(scope, params, &mut args);
        let limit = args.push(Bind::Int(i64::try_from(params.limit).unwrap_or(i64::MAX)));
        // The exact order uses the plain column, which no index covers; the
        // indexed order uses the cast the HNSW index was built on. Scores are
        // always the exact cosine.
        let order = match (use_index, ann_cast(dims)) {
            (true, Some((ty, _))) => format!("(m.embedding::{ty}({dims})) <=> {q}::{ty}({dims})"),
            _ => format!("m.embedding <=> {q}"),
        };
        let sql = format!(
            "SELECT {COLUMNS}, 1 - (m.embedding <=> {q}) AS cosine FROM homi_memories m \
             WHERE {readable} ORDER BY {order}, m.id LIMIT {limit}"
        );
        let rows = if use_index {
            let mut tx = self.pool.begin().await?;
            // The scope is large: walk the graph (the planner may otherwise
            // prefer the scope's btree and a sort), and keep walking until
            // enough rows pass the scope filter.
            for setting in [
                "SET LOCAL enable_seqscan = off",
                "SET LOCAL enable_sort = off",
                "SET LOCAL hnsw.iterative_scan = strict_order",
            ] {
                sqlx::query(setting).execute(&mut *tx).await?;
            }
            let ef = params.limit.saturating_mul(4).clamp(100, 1000);
            sqlx::query(AssertSqlSafe(format!("SET LOCAL hnsw.ef_search = {ef}")))
                .execute(&mut *tx)
                .await?;
            let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), &args)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            rows
        } else {
            bind_all(sqlx::query(AssertSqlSafe(sql)), &args)
                .fetch_all(&self.pool)
                .await?
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let cos: f64 = row.try_get("cosine")?;
            let mut item = item_from_row(row)?;
            item.score = Some(score_from_cosine(cos as f32));
            out.push(item);
        }
        Ok(out)
    }

    /// How many rows the search would rank, counting no further than `cap`.
    async fn scope_size(&self, scope: &Scope, params: &ReadParams, cap: usize) -> Result<usize> {
        let mut args = Args::default();
        let readable = sql::readable_sql::<PgDialect>(scope, params, &mut args);
        let sql = format!(
            "SELECT count(*) FROM (SELECT 1 FROM homi_memories m WHERE {readable} LIMIT {}) t",
            cap.saturating_add(1).min(i64::MAX as usize)
        );
        let n: i64 = bind_all(sqlx::query(AssertSqlSafe(sql)), &args)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

#[async_trait]
impl SqlMemory for PostgresStore {
    async fn embedder_recorded(&self, c: &mut PgConnection, info: &EmbedderInfo) -> Result<()> {
        create_vector_index(c, info.dims).await
    }

    async fn semantic_search(
        &self,
        scope: &Scope,
        query: &[f32],
        params: &ReadParams,
    ) -> Result<Vec<MemoryItem>> {
        let Some(info) = self.embedder().await? else {
            return Ok(Vec::new());
        };
        if query.len() != info.dims {
            return Err(Error::invalid(
                "query",
                format!(
                    "the query vector has {} dimensions, the store holds {}",
                    query.len(),
                    info.dims
                ),
            ));
        }
        // Counting is bounded: it stops one row past the threshold.
        let size = if self.exact_scan_max == usize::MAX {
            0
        } else {
            self.scope_size(scope, params, self.exact_scan_max).await?
        };
        let mut results = Vec::new();
        if size > self.exact_scan_max && ann_cast(info.dims).is_some() {
            results = self.rank(scope, query, params, info.dims, true).await?;
            // The index may stop short (pgvector bounds iterative scans):
            // never return fewer rows than exist, rank exactly instead.
            if results.len() < params.limit.min(size) {
                tracing::debug!(
                    found = results.len(),
                    "HNSW scan stopped short; ranking exactly"
                );
                results.clear();
            }
        }
        if results.is_empty() {
            results = self.rank(scope, query, params, info.dims, false).await?;
        }
        if let Some(t) = params.threshold {
            results.retain(|m| m.score.is_some_and(|s| s >= t));
        }
        Ok(results)
    }

    async fn keyword_ranking(
        &self,
        scope: &Scope,
        terms: &[String],
        params: &ReadParams,
    ) -> Result<Vec<MemoryItem>> {
        // BM25 over the scope, as the embedded store's keyword index ranks
        // (`store/keyword_index.rs`): each term's inverse
        // document frequency among the scope's memories, a memory's length
        // (its distinct stemmed words) against the matches' average. A term
        // counts once per memory (memories are short; Postgres' ranking
        // functions weigh no rarity at all, which is why they are not used).
        // The terms are words (letters and digits): each is a valid tsquery,
        // stemmed like the text, and joined with `|` they are the match.
        // The queries are parsed once (`q`), each memory tested once per term
        // (`h`), the statistics taken over the matches (`st`). Equal scores go
        // in write order (`pos`), as on SQLite (row ids).
        let mut args = Args::default();
        let mut queries = vec![format!(
            "to_tsquery('english', {}) AS qa",
            args.push(Bind::Text(terms.join(" | ")))
        )];
        queries.extend(terms.iter().enumerate().map(|(i, t)| {
            format!(
                "to_tsquery('english', {}) AS q{i}",
                args.push(Bind::Text(t.clone()))
            )
        }));
        let readable = sql::readable_sql::<PgDialect>(scope, params, &mut args);
        let in_scope = sql::scope_sql::<PgDialect>(scope, "s", &mut args);
        let limit = args.push(Bind::Int(i64::try_from(params.limit).unwrap_or(i64::MAX)));
        let n = terms.len();
        let has: Vec<String> = (0..n).map(|i| format!("m.fts @@ q.q{i} AS t{i}")).collect();
        let df: Vec<String> = (0..n)
            .map(|i| format!("count(*) FILTER (WHERE t{i})::float8 AS d{i}"))
            .collect();
        let idf: Vec<String> = (0..n)
            .map(|i| {
                format!("CASE WHEN h.t{i} THEN ln(1 + (st.n - st.d{i} + 0.5) / (st.d{i} + 0.5)) ELSE 0 END")
            })
            .collect();
        let (k1, b) = (keywords::BM25_K1, keywords::BM25_B);
        let sql = format!(
            "WITH q AS (SELECT {}), \
             h AS (SELECT {COLUMNS}, m.pos, length(m.fts) AS len, {} FROM homi_memories m, q \
               WHERE m.fts @@ q.qa AND {readable}), \
             st AS (SELECT {}, greatest(avg(len), 1)::float8 AS avgdl, \
               (SELECT count(*) FROM homi_memories s WHERE {in_scope})::float8 AS n FROM h) \
             SELECT {}, (({}) * {} / (1 + {k1} * (1 - {b} + {b} * h.len / st.avgdl)))::float4 AS keyword \
             FROM h, st ORDER BY keyword DESC, h.pos LIMIT {limit}",
            queries.join(", "),
            has.join(", "),
            df.join(", "),
            COLUMNS.replace("m.", "h."),
            idf.join(" + "),
            k1 + 1.0,
        );
        let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), &args)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let keyword: f32 = row.try_get("keyword")?;
            let mut item = item_from_row(row)?;
            item.score = Some(keyword);
            out.push(item);
        }
        Ok(out)
    }

    async fn neighbours(
        &self,
        scope: &Scope,
        ids: &[Uuid],
        query: &[f32],
        params: &ReadParams,
    ) -> Result<Vec<Neighbour>> {
        // The memories just before and after each one, in the order of
        // writing (`pos`), among those the search reads.
        let mut args = Args::default();
        let readable = sql::readable_sql::<PgDialect>(scope, params, &mut args);
        let own = sql::scope_sql::<PgDialect>(scope, "c", &mut args);
        let list: Vec<String> = ids.iter().map(|id| args.push(Bind::Uuid(*id))).collect();
        let sql = format!(
            "SELECT c.id, \
             (SELECT m.id FROM homi_memories m WHERE {readable} AND m.pos < c.pos ORDER BY m.pos DESC LIMIT 1), \
             (SELECT m.id FROM homi_memories m WHERE {readable} AND m.pos > c.pos ORDER BY m.pos LIMIT 1) \
             FROM homi_memories c WHERE {own} AND c.id IN ({})",
            list.join(", ")
        );
        let mut links: HashMap<Uuid, (Option<Uuid>, Option<Uuid>)> = HashMap::new();
        for row in bind_all(sqlx::query(AssertSqlSafe(sql)), &args)
            .fetch_all(&self.pool)
            .await?
        {
            links.insert(row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?));
        }
        let mut all: Vec<Uuid> = links.keys().copied().collect();
        all.extend(links.values().flat_map(|(b, a)| [*b, *a]).flatten());
        all.sort_unstable();
        all.dedup();
        if all.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = Args::default();
        let dims_match = self
            .embedder()
            .await?
            .is_some_and(|info| info.dims == query.len());
        let cosine = if dims_match {
            let q = args.push(Bind::Vector(normalized(query)));
            format!("1 - (m.embedding <=> {q})")
        } else {
            "-1".to_owned()
        };
        let w = sql::scope_sql::<PgDialect>(scope, "m", &mut args);
        let list: Vec<String> = all.iter().map(|id| args.push(Bind::Uuid(*id))).collect();
        let sql = format!(
            "SELECT {COLUMNS}, ({cosine})::float8 AS cosine FROM homi_memories m \
             WHERE m.id IN ({}) AND {w}",
            list.join(", ")
        );
        let mut out = Vec::with_capacity(all.len());
        for row in bind_all(sqlx::query(AssertSqlSafe(sql)), &args)
            .fetch_all(&self.pool)
            .await?
        {
            let cos: f64 = row.try_get("cosine")?;
            let mut item = item_from_row(&row)?;
            item.score = Some(score_from_cosine(cos as f32));
            let (before, after) = links.get(&item.id).copied().unwrap_or((None, None));
            out.push(Neighbour {
                item,
                before,
                after,
            });
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
        let mut tx = self.pool.begin().await?;
        // Work in flight anywhere must not write after this.
        super::sql::deletions::record::<PgDialect>(&mut tx, None, chrono::Utc::now()).await?;
        for sql in [
            "DELETE FROM homi_memories",
            "DELETE FROM homi_memory_history",
            "DELETE FROM homi_memory_reembed",
            "DELETE FROM homi_jobs WHERE state IN ('queued', 'running')",
            "DELETE FROM homi_meta WHERE key IN ('embedder_model', 'embedder_dims', 'reembed_target')",
            // The next embedder may have another dimension.
            "DROP INDEX IF EXISTS homi_memories_embedding_hnsw",
        ] {
            sqlx::query(sql).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
