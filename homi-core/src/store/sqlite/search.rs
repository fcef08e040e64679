//! The embedded store's read paths: each scope's vectors and keyword index
//! cached in memory (`store/vector.rs`, `store/keyword_index.rs`), brought up
//! to date from the change counter before each answer, and the searches that
//! rank from them, reading the winning rows on the caller's thread when the
//! synchronous reader is free.

use super::*;

#[derive(Debug)]
pub(super) struct CacheEntry {
    pub(super) data: tokio::sync::RwLock<Option<ScopeVectors>>,
    last_used: AtomicU64,
}

#[derive(Debug)]
pub(super) struct VectorCache {
    entries: Mutex<HashMap<Scope, Arc<CacheEntry>>>,
    budget: usize,
    clock: AtomicU64,
}

impl VectorCache {
    /// An empty cache that keeps at most `budget` bytes of vectors.
    pub(super) fn new(budget: usize) -> Self {
        VectorCache {
            entries: Mutex::new(HashMap::new()),
            budget,
            clock: AtomicU64::new(0),
        }
    }

    pub(super) fn entry(&self, scope: &Scope) -> Arc<CacheEntry> {
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
    pub(super) fn evict(&self, keep: &Scope) {
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

/// The cached rows a read accepts: its validity condition, and the rows a
/// metadata filter let through.
pub(super) fn accept_of<'a>(params: &ReadParams, allowed: Option<&'a HashSet<i64>>) -> Accept<'a> {
    Accept {
        as_of: params.as_of.map(|t| t.timestamp_micros()),
        current_only: !params.include_superseded,
        show_expired: params.show_expired,
        now: chrono::Utc::now().timestamp_micros(),
        allowed,
    }
}

/// A cached row's validity window, from its stored columns.
fn window(from: i64, to: Option<i64>, superseded: bool) -> Window {
    Window {
        from,
        to,
        superseded,
    }
}

/// The scope's best hits for `query` as `(rid, score)`, best first, within
/// the threshold.
pub(super) fn scan(
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
pub(super) fn rows_by_rid_sql(scope: &Scope, hits: &[(i64, f32)]) -> (String, Vec<Bind>) {
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
pub(super) fn in_hit_order(
    hits: Vec<(i64, f32)>,
    mut by_rid: HashMap<i64, MemoryItem>,
) -> Vec<MemoryItem> {
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
pub(super) enum FastHybrid {
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
pub(super) fn load_scope_sync(
    reader: &reader::SyncReader,
    scope: &Scope,
    dims: usize,
) -> Option<ScopeVectors> {
    let mut binds = Vec::new();
    let scope_where = sql::scope_sql::<SqliteDialect>(scope, "m", &mut binds);
    let sql = format!(
        "SELECT m.rid, m.valid_from, m.valid_to, e.embedding, m.memory, m.superseded_by IS NOT NULL FROM homi_memories m \
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
                if sv.append(rid, window(row.get(1)?, row.get(2)?, row.get(5)?), blob) {
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
pub(super) fn cached_list(chunk: &[i64], cosines: &HashMap<i64, f32>) -> String {
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

impl SqliteStore {
    /// The rows of `sql`, mapped: on the caller's thread through the
    /// synchronous reader when one is free (a short read), else through sqlx.
    pub(super) async fn rows<T>(
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
    pub(super) fn hybrid_sync(
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
    pub(super) fn search_sync(
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
    pub(super) async fn ranked_from_cache(
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

    pub(super) async fn synced(
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
                    "SELECT m.rid, m.valid_from, m.valid_to, e.embedding, m.memory, m.superseded_by IS NOT NULL FROM homi_memories m INDEXED BY memories_seq \
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
                    if sv.upsert(
                        rid,
                        window(r.try_get(1)?, r.try_get(2)?, r.try_get(5)?),
                        &decode_vec(&blob),
                    ) {
                        sv.keywords.upsert(rid, r.try_get::<&str, _>(4)?);
                    }
                    loaded += 1;
                }
                sv.seq = state.seq;
            }
        } else {
            let mut sv = ScopeVectors::new(dims, state.seq);
            let sql = format!(
                "SELECT m.rid, m.valid_from, m.valid_to, e.embedding, m.memory, m.superseded_by IS NOT NULL FROM homi_memories m \
                 JOIN homi_memory_embeddings e ON e.rid = m.rid WHERE {scope_where}"
            );
            let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), &binds)
                .fetch_all(&mut *tx)
                .await?;
            let mut texts = Vec::with_capacity(rows.len());
            for r in rows {
                let blob: Vec<u8> = r.try_get(3)?;
                let rid: i64 = r.try_get(0)?;
                if sv.upsert(
                    rid,
                    window(r.try_get(1)?, r.try_get(2)?, r.try_get(5)?),
                    &decode_vec(&blob),
                ) {
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
