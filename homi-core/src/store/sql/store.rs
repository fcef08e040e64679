//! The memory port, [`Store`], for every SQL store: each operation takes the
//! connection or transaction its kind needs (a write transaction, one
//! snapshot, a read connection) and runs the engine in it, the same way on
//! both databases. A database supplies what it does its own way through
//! [`SqlMemory`]: its search read paths (SQLite's vector cache, Postgres'
//! pgvector), the re-embedding's staging and swap, and a reset.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::memory::MemoryDriver;
use super::{Driver, Exec, SqlStore, apply, binds, deletions, memory, transfer};
use crate::error::Result;
use crate::model::{Access, HistoryEntry, MemoryItem, Scope};
use crate::store::{
    Change, DeletionMark, EmbedderInfo, HybridCandidates, MemoryRecord, Neighbour, Outcome,
    ReadParams, ReembedBatch, Store, composed_hybrid_candidates,
};

/// What a SQL store does its own way for the memory port.
#[async_trait]
pub(crate) trait SqlMemory: SqlStore {
    /// The recorded embedder; asked before every embedding, so a store may
    /// answer it faster (SQLite, from its synchronous reader).
    async fn recorded_embedder(&self) -> Result<Option<EmbedderInfo>> {
        let mut c = self.read().await?;
        memory::embedder::<Self::D>(&mut c, false).await
    }

    /// Runs in the transaction that records the first embedder (Postgres
    /// builds its vector index for that dimension).
    async fn embedder_recorded(
        &self,
        _c: &mut <Self::D as Driver>::Conn,
        _info: &EmbedderInfo,
    ) -> Result<()> {
        Ok(())
    }

    /// [`Store::search`].
    async fn semantic_search(
        &self,
        scope: &Scope,
        query: &[f32],
        params: &ReadParams,
    ) -> Result<Vec<MemoryItem>>;

    /// [`Store::keyword_search`].
    async fn keyword_ranking(
        &self,
        scope: &Scope,
        terms: &[String],
        params: &ReadParams,
    ) -> Result<Vec<MemoryItem>>;

    /// [`Store::hybrid_candidates`] in fewer reads than its definition, when
    /// the store can; `None`: compose it.
    async fn hybrid_read(
        &self,
        _scope: &Scope,
        _query: &[f32],
        _terms: &[String],
        _params: &ReadParams,
    ) -> Result<Option<HybridCandidates>> {
        Ok(None)
    }

    /// [`Store::neighbourhood`].
    async fn neighbours(
        &self,
        scope: &Scope,
        ids: &[Uuid],
        query: &[f32],
        params: &ReadParams,
    ) -> Result<Vec<Neighbour>>;

    /// [`Store::reembed_stage`].
    async fn stage_vectors(
        &self,
        target: &EmbedderInfo,
        vectors: Vec<(Uuid, String, Vec<f32>)>,
    ) -> Result<()>;

    /// [`Store::reembed_finish`].
    async fn swap_vectors(&self, target: &EmbedderInfo) -> Result<Option<EmbedderInfo>>;

    /// [`Store::reset`].
    async fn wipe(&self) -> Result<()>;
}

#[async_trait]
impl<S: SqlMemory> Store for S {
    async fn embedder(&self) -> Result<Option<EmbedderInfo>> {
        self.recorded_embedder().await
    }

    async fn bind_embedder(&self, info: &EmbedderInfo) -> Result<()> {
        if let Some(stored) = self.embedder().await? {
            return stored.must_match(info);
        }
        // First writers are serialised (by SQLite's write transaction, by a
        // lock on Postgres): one of them records the embedder.
        let mut tx = self.write().await?;
        if !S::D::META_LOCK.is_empty() {
            tx.run(S::D::META_LOCK.to_owned(), Default::default())
                .await?;
        }
        match memory::embedder::<S::D>(&mut tx, false).await? {
            Some(stored) => stored.must_match(info)?,
            None => {
                let ([model, dims], args) =
                    binds::<S::D, 2>([info.model.as_str().into(), info.dims.to_string().into()]);
                let sql = format!(
                    "INSERT INTO homi_meta (key, value) VALUES ('embedder_model', {model}), \
                     ('embedder_dims', {dims}) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                );
                tx.run(sql, args).await?;
                self.embedder_recorded(&mut tx, info).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn find_by_hash(&self, scope: &Scope, hashes: &[String]) -> Result<Vec<MemoryItem>> {
        let mut c = self.read().await?;
        memory::find_by_hash::<S::D>(&mut c, scope, hashes).await
    }

    async fn search(
        &self,
        scope: &Scope,
        query: &[f32],
        params: &ReadParams,
    ) -> Result<Vec<MemoryItem>> {
        self.semantic_search(scope, query, params).await
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
        self.keyword_ranking(scope, terms, params).await
    }

    async fn neighbourhood(
        &self,
        scope: &Scope,
        ids: &[Uuid],
        query: &[f32],
        params: &ReadParams,
    ) -> Result<Vec<Neighbour>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.neighbours(scope, ids, query, params).await
    }

    async fn hybrid_candidates(
        &self,
        scope: &Scope,
        query: &[f32],
        terms: &[String],
        params: &ReadParams,
    ) -> Result<HybridCandidates> {
        match self.hybrid_read(scope, query, terms, params).await? {
            Some(found) => Ok(found),
            None => composed_hybrid_candidates(self, scope, query, terms, params).await,
        }
    }

    async fn get(&self, id: Uuid, access: &Access) -> Result<Option<MemoryItem>> {
        let mut c = self.read().await?;
        memory::get::<S::D>(&mut c, id, access).await
    }

    async fn list(&self, scope: &Scope, params: &ReadParams) -> Result<Vec<MemoryItem>> {
        let mut c = self.read().await?;
        memory::list::<S::D>(&mut c, scope, params).await
    }

    async fn count(&self, scope: &Scope, params: &ReadParams) -> Result<u64> {
        let mut c = self.read().await?;
        memory::count::<S::D>(&mut c, scope, params).await
    }

    async fn deletion_mark(&self, scope: &Scope) -> Result<DeletionMark> {
        let mut c = self.read().await?;
        deletions::mark::<S::D>(&mut c, scope).await
    }

    async fn apply(
        &self,
        access: &Access,
        embedder: Option<&EmbedderInfo>,
        since: Option<&DeletionMark>,
        changes: Vec<Change>,
    ) -> Result<Vec<Outcome>> {
        let mut tx = self.write().await?;
        if let Some(since) = since {
            deletions::check::<S::D>(&mut tx, since).await?;
        }
        let outcomes = apply::apply::<S::D>(&mut tx, access, embedder, changes).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn delete(&self, id: Uuid, access: &Access) -> Result<bool> {
        let mut tx = self.write().await?;
        let deleted = memory::delete::<S::D>(&mut tx, id, access).await?;
        tx.commit().await?;
        if deleted {
            self.scrub().await;
        }
        Ok(deleted)
    }

    async fn delete_scope(&self, scope: &Scope) -> Result<u64> {
        let mut tx = self.write().await?;
        let (deleted, dropped_jobs) = memory::delete_scope::<S::D>(&mut tx, scope).await?;
        tx.commit().await?;
        // The texts of deleted memories, or of the messages pending jobs held.
        if deleted > 0 || dropped_jobs > 0 {
            self.scrub().await;
        }
        Ok(deleted)
    }

    async fn history(&self, id: Uuid, access: &Access) -> Result<Vec<HistoryEntry>> {
        let mut c = self.read().await?;
        memory::history::<S::D>(&mut c, id, access).await
    }

    async fn reset(&self) -> Result<()> {
        self.wipe().await
    }

    async fn export(
        &self,
        access: &Access,
        after: Option<Uuid>,
        limit: usize,
        embeddings: bool,
    ) -> Result<Vec<MemoryRecord>> {
        let mut tx = self.snapshot().await?;
        let records = transfer::export::<S::D>(&mut tx, access, after, limit, embeddings).await?;
        tx.rollback().await?;
        Ok(records)
    }

    async fn existing_ids(&self, ids: &[Uuid]) -> Result<HashSet<Uuid>> {
        let mut c = self.read().await?;
        transfer::existing_ids::<S::D>(&mut c, ids).await
    }

    async fn restore(
        &self,
        embedder: &EmbedderInfo,
        records: Vec<(MemoryRecord, Vec<f32>)>,
    ) -> Result<Vec<Outcome>> {
        let mut tx = self.write().await?;
        let outcomes = transfer::restore::<S::D>(&mut tx, embedder, records).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn reembed_next(&self, target: &EmbedderInfo, limit: usize) -> Result<ReembedBatch> {
        let mut tx = self.write().await?;
        let batch = transfer::reembed_next::<S::D>(&mut tx, target, limit).await?;
        tx.commit().await?;
        Ok(batch)
    }

    async fn reembed_stage(
        &self,
        target: &EmbedderInfo,
        vectors: Vec<(Uuid, String, Vec<f32>)>,
    ) -> Result<()> {
        self.stage_vectors(target, vectors).await
    }

    async fn reembed_finish(&self, target: &EmbedderInfo) -> Result<Option<EmbedderInfo>> {
        self.swap_vectors(target).await
    }

    #[cfg(feature = "chat")]
    fn chat_store(self: Arc<Self>) -> Option<Arc<dyn crate::store::chat::ChatStore>> {
        Some(self)
    }

    fn job_store(self: Arc<Self>) -> Option<Arc<dyn crate::store::jobs::JobStore>> {
        Some(self)
    }

    fn usage_store(self: Arc<Self>) -> Option<Arc<dyn crate::store::usage::UsageStore>> {
        Some(self)
    }
}
