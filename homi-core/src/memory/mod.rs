//! The Memory client: mem0's operations on a [`Store`], an [`Embedder`] and a
//! [`ChatModel`].
//!
//! ```no_run
//! # tokio_test_block_on(async {
//! use homi_core::{AddOptions, Config, Memory, Scope, SearchOptions};
//! let memory = Memory::open(&Config::from_env()?).await?;
//! let alice = Scope::user("alice");
//! memory.add("I'm vegetarian and I love hiking", &alice, AddOptions::default()).await?;
//! let found = memory.search("what do I like to eat?", &alice, SearchOptions::default().limit(3)).await?;
//! for m in &found.results {
//!     println!("{:.2} {}", m.score.unwrap_or(0.0), m.memory);
//! }
//! # Ok::<(), homi_core::Error>(()) });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output { tokio::runtime::Runtime::new().unwrap().block_on(f) }
//! ```

pub(crate) mod infer;
pub mod mem0;
pub mod messages;
pub mod options;
pub mod rank;

// The model's modules under their old paths (`homi_core::memory::filter`).
pub use crate::model::{filter, keywords};

/// The data model and the Memory API's options and results under their old
/// path (`homi_core::memory::types`): [`crate::model::types`] and
/// [`options`].
pub mod types {
    pub use super::options::*;
    pub use crate::model::types::*;
}

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use uuid::Uuid;

pub use filter::{Field, Filter, Op};
pub use messages::{InputMessage, Messages};
pub use options::{
    AddEvent, AddOptions, AddResult, DEFAULT_LIMIT, ListOptions, MAX_LIMIT, MemoryEdit, MemoryPage,
    SearchMode, SearchOptions, SearchResult, Usage,
};
pub use types::{
    Access, Event, HistoryEntry, MemoryItem, Metadata, Scope, parse_memory_id, parse_timestamp,
    text_hash, unix_seconds,
};

use crate::budget::Budgets;
use crate::error::{Error, Result};
use crate::provider::{ChatMessage, ChatModel, ChatRequest, Embedder, Role};
use crate::store::{Change, DeletionMark, EmbedderInfo, NewMemory, Outcome, ReadParams, Store};
use infer::{Decision, FactOp};

/// The Memory client. Cheap to clone; share one per process.
#[derive(Clone, Debug)]
pub struct Memory {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    embedder: Option<Arc<dyn Embedder>>,
    chat: Option<Arc<dyn ChatModel>>,
    infer_context: usize,
    instructions: Option<String>,
    reranker: Option<crate::config::RerankerConfig>,
    not_configured: String,
    budgets: Budgets,
}

/// Builds a [`Memory`] from parts.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> homi_core::Result<()> {
/// # let fake = homi_testkit::FakeProvider::start().await.unwrap();
/// use std::sync::Arc;
/// use homi_core::{AddOptions, Config, Memory, Scope};
/// use homi_core::provider::openai::{OpenAiChatModel, OpenAiEmbedder};
/// use homi_core::store::sqlite::SqliteStore;
/// let config = Config::default().with_openai_base_url(fake.base_url());
/// let memory = Memory::builder(Arc::new(SqliteStore::open("sqlite::memory:").await?))
///     .embedder(Arc::new(OpenAiEmbedder::new(&config.provider, &config.embedder)?))
///     .chat_model(Arc::new(OpenAiChatModel::new(&config.provider)?))
///     .infer_context(5)
///     .build()
///     .await?;
/// let r = memory.add("Prefers window seats", &Scope::user("u1"), AddOptions::default()).await?;
/// assert_eq!(r.results.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MemoryBuilder {
    store: Arc<dyn Store>,
    embedder: Option<Arc<dyn Embedder>>,
    chat: Option<Arc<dyn ChatModel>>,
    infer_context: usize,
    instructions: Option<String>,
    reranker: Option<crate::config::RerankerConfig>,
    not_configured: String,
    budgets: Budgets,
}

impl MemoryBuilder {
    /// Sets the embedder.
    pub fn embedder(mut self, embedder: Arc<dyn Embedder>) -> Self {
        self.embedder = Some(embedder);
        self
    }
    /// Sets the chat model used by `add(infer=true)`.
    pub fn chat_model(mut self, chat: Arc<dyn ChatModel>) -> Self {
        self.chat = Some(chat);
        self
    }
    /// How many nearest existing memories the model sees per `add` (default 10).
    pub fn infer_context(mut self, n: usize) -> Self {
        self.infer_context = n;
        self
    }
    /// The application's own instructions for fact extraction (mem0's
    /// `custom_instructions`), added to Homi's prompt; the answer's format
    /// stays Homi's. [`AddOptions::instructions`] replaces them for one call.
    pub fn extraction_instructions(mut self, instructions: Option<String>) -> Self {
        self.instructions = instructions.filter(|i| !i.trim().is_empty());
        self
    }
    /// Reranks searches that ask for it with the chat model (mem0's
    /// `llm_reranker`).
    pub fn reranker(mut self, reranker: Option<crate::config::RerankerConfig>) -> Self {
        self.reranker = reranker;
        self
    }
    /// The sentence returned when a provider is needed and missing.
    pub fn not_configured_message(mut self, message: impl Into<String>) -> Self {
        self.not_configured = message.into();
        self
    }
    /// Per-user limits on model spend ([`Budgets`]; none by default).
    pub fn budgets(mut self, budgets: Budgets) -> Self {
        self.budgets = budgets;
        self
    }

    /// Checks the embedder against the one recorded in the store and builds.
    pub async fn build(self) -> Result<Memory> {
        if let (Some(e), Some(stored)) = (&self.embedder, self.store.embedder().await?) {
            let configured_dims = e.dims();
            if stored.model != e.model() || configured_dims.is_some_and(|d| d != stored.dims) {
                return Err(Error::EmbedderMismatch {
                    stored: stored.to_string(),
                    configured: match configured_dims {
                        Some(d) => format!("{} ({d} dims)", e.model()),
                        None => e.model().to_owned(),
                    },
                });
            }
        }
        Ok(Memory {
            inner: Arc::new(Inner {
                store: self.store,
                embedder: self.embedder,
                chat: self.chat,
                infer_context: self.infer_context,
                instructions: self.instructions,
                reranker: self.reranker,
                not_configured: self.not_configured,
                budgets: self.budgets,
            }),
        })
    }
}

/// How many candidates each ranking of a hybrid search brings for `limit` results.
fn hybrid_candidates(limit: usize) -> usize {
    limit.clamp(50, MAX_LIMIT)
}

/// The first `params.limit` results scoring at least `params.threshold`.
fn threshold(mut results: Vec<MemoryItem>, params: &ReadParams) -> Vec<MemoryItem> {
    if let Some(t) = params.threshold {
        results.retain(|m| m.score.is_some_and(|s| s >= t));
    }
    results.truncate(params.limit);
    results
}

fn elapsed_ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

impl Memory {
    /// Starts building a Memory on a store.
    pub fn builder(store: Arc<dyn Store>) -> MemoryBuilder {
        MemoryBuilder {
            store,
            embedder: None,
            chat: None,
            infer_context: 10,
            instructions: None,
            reranker: None,
            not_configured: "set OPENAI_API_KEY or OPENAI_BASE_URL".to_owned(),
            budgets: Budgets::unlimited(),
        }
    }

    /// Like [`Memory::open`], on a store the caller opened (e.g. shared with
    /// the Auth client through [`crate::open::open_stores`]).
    #[cfg(any(feature = "openai", feature = "local"))]
    pub async fn with_store(config: &crate::Config, store: Arc<dyn Store>) -> Result<Memory> {
        use crate::config::EmbedderKind;
        let budgets = Budgets::from_config(config, store.clone().usage_store())?;
        let mut builder = Memory::builder(store.clone())
            .infer_context(config.memory.infer_context)
            .extraction_instructions(config.memory.extraction_instructions.clone())
            .reranker(config.memory.reranker.clone())
            .budgets(budgets);
        #[cfg(feature = "openai")]
        {
            use crate::provider::openai::{NOT_CONFIGURED, OpenAiChatModel};
            builder = builder.not_configured_message(NOT_CONFIGURED);
            if config.provider.is_configured() {
                builder = builder.chat_model(Arc::new(OpenAiChatModel::new(&config.provider)?));
            }
        }
        #[allow(unused_mut)]
        let mut kind = crate::provider::effective_embedder(config);
        // The local embedder chosen by default (not by HOMI_EMBEDDER) gives
        // way to a store another embedder wrote: reads keep working, and
        // writes say what to set, as without any embedder.
        let other_embedder = store
            .embedder()
            .await?
            .is_some_and(|s| s.model != config.embedder.model_for(EmbedderKind::Local));
        // Nothing configured on a new machine: fetch the local model first.
        #[cfg(feature = "local")]
        if kind == EmbedderKind::OpenAi
            && !other_embedder
            && crate::provider::fetch_local_model_when_unconfigured(config).await
        {
            kind = EmbedderKind::Local;
        }
        let gives_way = kind == EmbedderKind::Local
            && config.embedder.kind == EmbedderKind::Auto
            && other_embedder;
        if !gives_way
            && let Some(embedder) = crate::provider::open_embedder_of(config, kind).await?
        {
            builder = builder.embedder(embedder);
        }
        builder.build().await
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Whether a chat model is configured, so that `add` can extract facts
    /// (`infer`); without one only verbatim adds work.
    pub fn infers(&self) -> bool {
        self.inner.chat.is_some()
    }

    /// The per-user limits on model spend this Memory (and a Chat over it)
    /// keeps.
    pub fn budgets(&self) -> &Budgets {
        &self.inner.budgets
    }

    /// Runs `call` for `scope`'s user within their budget: admitted first,
    /// charged with what it spent after. Calls without a user are not
    /// metered.
    async fn metered<T>(
        &self,
        scope: &Scope,
        call: impl std::future::Future<Output = Result<T>>,
        spent: impl Fn(&T) -> u64,
    ) -> Result<T> {
        let budgets = &self.inner.budgets;
        let Some(user) = scope.user_id.as_deref().filter(|_| budgets.is_limited()) else {
            return call.await;
        };
        budgets.admit(user).await?;
        let out = call.await?;
        budgets.charge(user, spent(&out)).await;
        Ok(out)
    }

    /// The embedder this Memory writes with, if one is configured.
    pub(crate) fn configured_embedder(&self) -> Option<&Arc<dyn Embedder>> {
        self.inner.embedder.as_ref()
    }

    fn embedder(&self) -> Result<&Arc<dyn Embedder>> {
        self.inner
            .embedder
            .as_ref()
            .ok_or_else(|| Error::ProviderNotConfigured(self.inner.not_configured.clone()))
    }

    fn chat(&self) -> Result<&Arc<dyn ChatModel>> {
        self.inner
            .chat
            .as_ref()
            .ok_or_else(|| Error::ProviderNotConfigured(self.inner.not_configured.clone()))
    }

    /// The embedder that made `vectors` (checked again by the store when
    /// it writes them).
    fn made_by(&self, vectors: &[Vec<f32>]) -> Option<EmbedderInfo> {
        Some(EmbedderInfo {
            model: self.inner.embedder.as_ref()?.model().to_owned(),
            dims: vectors.first()?.len(),
        })
    }

    /// Embeds `texts` and records the embedder in the store (refusing another).
    pub(crate) async fn embed(&self, texts: &[String], usage: &mut Usage) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let embedder = self.embedder()?;
        let start = Instant::now();
        let out = embedder.embed(texts).await;
        usage.provider_ms += elapsed_ms(start);
        let out = out?;
        usage.embedding_calls += out.requests;
        usage.embedding_tokens += out.tokens;
        let dims = out.vectors.first().map_or(0, Vec::len);
        let info = EmbedderInfo {
            model: embedder.model().to_owned(),
            dims,
        };
        self.inner.store.bind_embedder(&info).await?;
        Ok(out.vectors)
    }

    /// Adds memories from messages (a string, a message, or a list), with
    /// mem0's behaviour: `infer=false` stores each non-system message verbatim;
    /// `infer=true` extracts facts and reconciles them with the scope's nearest
    /// memories in one chat-model call (see the crate documentation).
    pub async fn add(
        &self,
        messages: impl Into<Messages>,
        scope: &Scope,
        options: AddOptions,
    ) -> Result<AddResult> {
        let messages = messages.into();
        self.metered(
            scope,
            self.add_unmetered(messages, scope, options, None),
            |r| r.usage.total_tokens(),
        )
        .await
    }

    /// The scope's deletions now: a write given this mark writes nothing if
    /// a delete-all covering the scope comes after it.
    pub(crate) async fn deletion_mark(&self, scope: &Scope) -> Result<DeletionMark> {
        self.inner.store.deletion_mark(scope).await
    }

    /// [`Memory::add`] outside the user's budget; an extraction job charges
    /// its spend itself, and is never refused. `since`: the scope's
    /// deletions the write answers to (taken when its messages arrived);
    /// `None` takes them now.
    pub(crate) async fn add_unmetered(
        &self,
        messages: Messages,
        scope: &Scope,
        options: AddOptions,
        since: Option<DeletionMark>,
    ) -> Result<AddResult> {
        let start = Instant::now();
        scope.validate(true)?;
        messages.validate()?;
        if let Some(m) = &options.metadata {
            crate::error::reject_nul_map("metadata", m)?;
        }
        if let Some(own) = &options.instructions {
            crate::error::reject_nul("prompt", own)?;
            if own.len() > messages::MAX_MESSAGE_BYTES {
                return Err(Error::invalid(
                    "prompt",
                    format!("longer than {} bytes", messages::MAX_MESSAGE_BYTES),
                ));
            }
        }
        crate::model::types::check_window_end(
            options.timestamp.unwrap_or_else(chrono::Utc::now),
            options.expires_at,
        )?;
        let mut usage = Usage::default();
        // Before any slow part: a delete-all of the scope from now on wins.
        let since = match since {
            Some(mark) => mark,
            None => self.deletion_mark(scope).await?,
        };
        let results = if options.procedural && scope.agent_id.is_some() {
            let summary = self
                .procedure(&messages, options.instructions.as_deref(), &mut usage)
                .await?;
            let mut metadata = options.metadata.clone().unwrap_or_default();
            metadata.insert("memory_type".into(), "procedural_memory".into());
            let options = options.clone().metadata(metadata);
            self.add_verbatim(
                &Messages::from(ChatMessage::assistant(summary)),
                scope,
                &options,
                &since,
                &mut usage,
            )
            .await?
        } else if options.infer {
            self.add_inferred(&messages, scope, &options, &since, &mut usage)
                .await?
        } else {
            self.add_verbatim(&messages, scope, &options, &since, &mut usage)
                .await?
        };
        usage.duration_ms = elapsed_ms(start);
        Ok(AddResult { results, usage })
    }

    /// The chat model's summary of an agent's messages as its procedure.
    async fn procedure(
        &self,
        messages: &Messages,
        instructions: Option<&str>,
        usage: &mut Usage,
    ) -> Result<String> {
        let chat = self.chat()?;
        let mut prompt = vec![ChatMessage::system(
            instructions.unwrap_or(infer::PROCEDURE_INSTRUCTIONS),
        )];
        prompt.extend(
            messages
                .0
                .iter()
                .filter(|m| !m.content.trim().is_empty())
                .map(|m| ChatMessage {
                    role: m.role,
                    content: m.content.clone(),
                    raw: None,
                }),
        );
        prompt.push(ChatMessage::user(
            "Create procedural memory of the above conversation.",
        ));
        let start = Instant::now();
        let response = chat.complete(ChatRequest::new(prompt)).await;
        usage.provider_ms += elapsed_ms(start);
        let response = response?;
        usage.chat_calls += 1;
        usage.prompt_tokens += response.usage.prompt_tokens;
        usage.completion_tokens += response.usage.completion_tokens;
        let summary = response.content.trim().to_owned();
        if summary.is_empty() {
            return Err(Error::ProviderInvalidResponse {
                reason: "the procedure's summary is empty".into(),
                raw: response.content,
            });
        }
        Ok(summary)
    }

    /// Current memories of exactly this scope with these hashes, by hash.
    async fn known(&self, scope: &Scope, hashes: &[String]) -> Result<HashMap<String, MemoryItem>> {
        let found = self.inner.store.find_by_hash(scope, hashes).await?;
        Ok(found
            .into_iter()
            .filter(|m| {
                m.user_id == scope.user_id
                    && m.agent_id == scope.agent_id
                    && m.run_id == scope.run_id
            })
            .map(|m| (m.hash.clone(), m))
            .collect())
    }

    async fn add_verbatim(
        &self,
        messages: &Messages,
        scope: &Scope,
        options: &AddOptions,
        since: &DeletionMark,
        usage: &mut Usage,
    ) -> Result<Vec<AddEvent>> {
        let items: Vec<&InputMessage> = messages
            .0
            .iter()
            .filter(|m| m.role != Role::System && !m.content.trim().is_empty())
            .collect();
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let hashes: Vec<String> = items.iter().map(|m| text_hash(&m.content)).collect();
        let known = self.known(scope, &hashes).await?;
        let mut seen = HashSet::new();
        let mut fresh: Vec<usize> = Vec::new();
        for (i, h) in hashes.iter().enumerate() {
            if !known.contains_key(h) && seen.insert(h.clone()) {
                fresh.push(i);
            }
        }
        let texts: Vec<String> = fresh.iter().map(|&i| items[i].content.clone()).collect();
        let vectors = self.embed(&texts, usage).await?;
        let made_by = self.made_by(&vectors);
        let changes: Vec<Change> = fresh
            .iter()
            .zip(vectors)
            .map(|(&i, embedding)| {
                Change::Add(NewMemory {
                    id: Uuid::new_v4(),
                    text: items[i].content.clone(),
                    hash: hashes[i].clone(),
                    metadata: options.metadata.clone().unwrap_or_default(),
                    scope: scope.clone(),
                    actor_id: items[i].name.clone(),
                    role: Some(items[i].role.as_str().to_owned()),
                    embedding,
                    said_at: options.timestamp,
                    expires_at: options.expires_at,
                })
            })
            .collect();
        let outcomes = self
            .inner
            .store
            .apply(&Access::from(scope), made_by.as_ref(), Some(since), changes)
            .await?;
        let mut by_hash: HashMap<String, AddEvent> = HashMap::new();
        for o in outcomes {
            for e in AddEvent::of(o) {
                by_hash.insert(text_hash(&e.memory), e);
            }
        }
        // One event per distinct input text, in input order.
        let mut out = Vec::new();
        let mut reported = HashSet::new();
        for h in &hashes {
            if !reported.insert(h.clone()) {
                continue;
            }
            if let Some(e) = by_hash.remove(h) {
                out.push(e);
            } else if let Some(m) = known.get(h) {
                out.push(infer::unchanged(m));
            }
        }
        Ok(out)
    }

    async fn add_inferred(
        &self,
        messages: &Messages,
        scope: &Scope,
        options: &AddOptions,
        since: &DeletionMark,
        usage: &mut Usage,
    ) -> Result<Vec<AddEvent>> {
        let conversation: Vec<&InputMessage> = messages
            .0
            .iter()
            .filter(|m| m.role != Role::System && !m.content.trim().is_empty())
            .collect();
        if conversation.is_empty() {
            return Ok(Vec::new());
        }
        let chat = self.chat()?.clone();
        // Exact duplicates need no model: when every message is already a
        // memory of this scope, nothing is asked and nothing is written.
        let hashes: Vec<String> = conversation.iter().map(|m| text_hash(&m.content)).collect();
        let known = self.known(scope, &hashes).await?;
        if hashes.iter().all(|h| known.contains_key(h)) {
            let mut seen = HashSet::new();
            return Ok(hashes
                .iter()
                .filter(|h| seen.insert((*h).clone()))
                .filter_map(|h| known.get(h))
                .map(infer::unchanged)
                .collect());
        }

        // (1) Embed the new messages; fetch the scope's nearest memories.
        let texts: Vec<String> = conversation.iter().map(|m| m.content.clone()).collect();
        let vectors = self.embed(&texts, usage).await?;
        let mut found = Vec::new();
        if self.inner.infer_context > 0 {
            let params = ReadParams {
                limit: self.inner.infer_context,
                ..ReadParams::default()
            };
            for v in &vectors {
                found.push(self.inner.store.search(scope, v, &params).await?);
            }
        }
        let existing = infer::nearest(found, self.inner.infer_context);

        // (2) One structured-output call; one repair attempt on a bad answer.
        let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
        let shown: Vec<String> = existing.iter().map(|m| m.memory.clone()).collect();
        let instructions = options
            .instructions
            .as_deref()
            .or(self.inner.instructions.as_deref());
        let mut request =
            ChatRequest::new(infer::prompt(&shown, &conversation, &today, instructions));
        request.json_schema = Some(infer::schema());
        request.temperature = Some(0.0);
        let ops = self
            .extract(chat.as_ref(), request, existing.len(), usage)
            .await?;

        // Map the model's small ids back to memories and plan the changes.
        let fact_hashes: Vec<String> = ops.iter().map(|o| text_hash(&o.text)).collect();
        let known_facts = self.known(scope, &fact_hashes).await?;
        let infer::Plan {
            writes: plan,
            unchanged: none_events,
        } = infer::plan(ops, &existing, &known_facts);
        if plan.is_empty() {
            return Ok(none_events);
        }
        let actor = single_actor(&conversation);
        let metadata = options.metadata.clone().unwrap_or_default();

        // (3) One embeddings request for every new or changed text.
        let texts: Vec<String> = plan.iter().map(|(op, _)| op.text.clone()).collect();
        let vectors = self.embed(&texts, usage).await?;
        let made_by = self.made_by(&vectors);

        // (4) Apply everything in one transaction.
        let new_memory = |text: String, hash: String, embedding: Vec<f32>| NewMemory {
            id: Uuid::new_v4(),
            text,
            hash,
            metadata: metadata.clone(),
            scope: scope.clone(),
            actor_id: actor.clone(),
            role: None,
            embedding,
            said_at: options.timestamp,
            expires_at: options.expires_at,
        };
        let changes: Vec<Change> = plan
            .into_iter()
            .zip(vectors)
            .map(|((op, hash), embedding)| match op.decision {
                Decision::Update(t) => Change::Update {
                    id: existing[t].id,
                    text: op.text,
                    hash,
                    embedding: Some(embedding),
                    metadata: options.metadata.clone(),
                    replace_metadata: false,
                    actor_id: actor.clone(),
                    role: None,
                    expires: options.expires_at.map(Some),
                },
                Decision::Delete(t) => Change::Supersede {
                    id: existing[t].id,
                    replacement: new_memory(op.text, hash, embedding),
                },
                _ => Change::Add(new_memory(op.text, hash, embedding)),
            })
            .collect();
        let outcomes = self
            .inner
            .store
            .apply(&Access::from(scope), made_by.as_ref(), Some(since), changes)
            .await?;
        let mut events: Vec<AddEvent> = outcomes.into_iter().flat_map(AddEvent::of).collect();
        events.extend(none_events);
        Ok(events)
    }

    async fn extract(
        &self,
        chat: &dyn ChatModel,
        mut request: ChatRequest,
        existing_len: usize,
        usage: &mut Usage,
    ) -> Result<Vec<FactOp>> {
        let mut last_error = String::new();
        for attempt in 0..2 {
            let start = Instant::now();
            let response = chat.complete(request.clone()).await;
            usage.provider_ms += elapsed_ms(start);
            let response = response?;
            usage.chat_calls += 1;
            usage.prompt_tokens += response.usage.prompt_tokens;
            usage.completion_tokens += response.usage.completion_tokens;
            match infer::parse(&response.content, existing_len) {
                Ok(ops) => return Ok(ops),
                Err(reason) => {
                    tracing::warn!(attempt, %reason, "the model's memory operations could not be used");
                    if attempt == 1 {
                        return Err(Error::ProviderInvalidResponse {
                            reason: format!(
                                "the memory operations are invalid after one repair attempt: {reason}"
                            ),
                            raw: response.content,
                        });
                    }
                    request
                        .messages
                        .push(crate::provider::ChatMessage::assistant(response.content));
                    request.messages.push(infer::repair_message(&reason));
                    last_error = reason;
                }
            }
        }
        Err(Error::ProviderInvalidResponse {
            reason: last_error,
            raw: String::new(),
        })
    }

    /// Searches the scope's memories by meaning. Scores are in [0, 1], best first.
    pub async fn search(
        &self,
        query: &str,
        scope: &Scope,
        options: SearchOptions,
    ) -> Result<SearchResult> {
        self.metered(scope, self.search_unmetered(query, scope, options), |r| {
            r.usage.total_tokens()
        })
        .await
    }

    /// [`Memory::search`] outside the user's budget (a chat turn counts its
    /// search in its own spend).
    pub(crate) async fn search_unmetered(
        &self,
        query: &str,
        scope: &Scope,
        options: SearchOptions,
    ) -> Result<SearchResult> {
        let start = Instant::now();
        scope.validate(true)?;
        options.validate()?;
        if query.trim().is_empty() {
            return Err(Error::invalid("query", "must not be empty"));
        }
        if query.len() > messages::MAX_MESSAGE_BYTES {
            return Err(Error::invalid(
                "query",
                format!("is longer than {} bytes", messages::MAX_MESSAGE_BYTES),
            ));
        }
        let mut usage = Usage::default();
        let mode = options.mode;
        let explain = options.explain;
        let reference = options.reference_date;
        let mut params = ReadParams {
            limit: options.limit,
            filter: options.filters,
            as_of: options.as_of,
            include_superseded: options.include_superseded,
            show_expired: options.show_expired,
            threshold: options.threshold,
            after: None,
        };
        let store = &self.inner.store;
        let results = match mode {
            SearchMode::Semantic => {
                let vector = self.embed_query(query, &mut usage).await?;
                store.search(scope, &vector, &params).await?
            }
            SearchMode::Keyword => {
                let terms = keywords::terms(query);
                let found = store.keyword_search(scope, &terms, &params).await?;
                threshold(keywords::keyword_only(found), &params)
            }
            SearchMode::Hybrid => {
                let vector = self.embed_query(query, &mut usage).await?;
                let terms = keywords::terms(query);
                let (limit, threshold_at) = (params.limit, params.threshold.take());
                // Candidates from each ranking, then the memories written
                // around them; `rank::hybrid` scores them all.
                params.limit = hybrid_candidates(limit);
                let found = store
                    .hybrid_candidates(scope, &vector, &terms, &params)
                    .await?;
                params.limit = limit;
                params.threshold = threshold_at;
                threshold(
                    rank::hybrid(query, reference, &found.keyword, found.loaded),
                    &params,
                )
            }
        };
        let mut results = results;
        for m in &mut results {
            m.score_details = match (explain, mode) {
                (false, _) => None,
                (true, SearchMode::Hybrid) => m.score_details.take(),
                (true, SearchMode::Semantic) => m.score.map(|s| crate::model::ScoreDetails {
                    semantic: Some(s),
                    keyword: None,
                    base: None,
                    neighbour: None,
                    speaker_factor: None,
                    date_match: None,
                    fused: s,
                }),
                (true, SearchMode::Keyword) => m.score.map(|s| crate::model::ScoreDetails {
                    semantic: None,
                    keyword: Some(s),
                    base: None,
                    neighbour: None,
                    speaker_factor: None,
                    date_match: None,
                    fused: s,
                }),
            };
        }
        if options.rerank
            && let Some(reranker) = &self.inner.reranker
        {
            results = self.rerank(query, results, reranker, &mut usage).await?;
        }
        usage.duration_ms = elapsed_ms(start);
        Ok(SearchResult { results, usage })
    }

    /// mem0's LLM reranking: the chat model scores each result's relevance
    /// to the query in [0, 1] (0.5 when its answer holds no number), one call
    /// each, in order; the results go best first, at most `top_k`.
    async fn rerank(
        &self,
        query: &str,
        mut results: Vec<MemoryItem>,
        reranker: &crate::config::RerankerConfig,
        usage: &mut Usage,
    ) -> Result<Vec<MemoryItem>> {
        let chat = self.chat()?;
        let system = reranker.prompt.as_deref().unwrap_or(rank::RERANK_PROMPT);
        for m in &mut results {
            let request = ChatRequest::new(vec![
                ChatMessage::system(system),
                ChatMessage::user(format!(
                    "Query: {}\n\nDocument: {}",
                    rank::truncate(query, 4000),
                    rank::truncate(&m.memory, 4000)
                )),
            ]);
            let start = Instant::now();
            let answer = chat.complete(request).await;
            usage.provider_ms += elapsed_ms(start);
            let answer = answer?;
            usage.chat_calls += 1;
            usage.prompt_tokens += answer.usage.prompt_tokens;
            usage.completion_tokens += answer.usage.completion_tokens;
            m.rerank_score = Some(rank::relevance(&answer.content));
        }
        results.sort_by(|a, b| {
            b.rerank_score
                .unwrap_or(0.0)
                .total_cmp(&a.rerank_score.unwrap_or(0.0))
        });
        if let Some(k) = reranker.top_k {
            results.truncate(k);
        }
        Ok(results)
    }

    /// The query's embedding.
    async fn embed_query(&self, query: &str, usage: &mut Usage) -> Result<Vec<f32>> {
        self.embed(&[query.to_owned()], usage)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::ProviderInvalidResponse {
                reason: "no embedding for the query".into(),
                raw: String::new(),
            })
    }

    /// One memory by id, if `access` reaches it: a `&Scope` (the memory must
    /// lie in it) or [`Access::Any`].
    pub async fn get(&self, id: &str, access: impl Into<Access>) -> Result<Option<MemoryItem>> {
        let access = access.into();
        access.validate()?;
        let id = parse_memory_id(id)?;
        self.inner.store.get(id, &access).await
    }

    /// The scope's memories, newest first.
    pub async fn get_all(&self, scope: &Scope, options: ListOptions) -> Result<Vec<MemoryItem>> {
        Ok(self.list_page(scope, options, None).await?.results)
    }

    /// One page of the scope's memories, newest first: the first one, or the
    /// one after `cursor` (a page's `next_cursor`). A memory written while
    /// pages are read is on none of the later pages, and none is listed twice.
    pub async fn list_page(
        &self,
        scope: &Scope,
        options: ListOptions,
        cursor: Option<&str>,
    ) -> Result<MemoryPage> {
        scope.validate(true)?;
        options::check_limit(options.limit)?;
        let after = cursor.map(options::decode_cursor).transpose()?;
        let params = ReadParams {
            // One more, to know whether a next page exists.
            limit: options.limit.saturating_add(1),
            filter: options.filters,
            as_of: options.as_of,
            include_superseded: options.include_superseded,
            show_expired: options.show_expired,
            threshold: None,
            after,
        };
        let mut results = self.inner.store.list(scope, &params).await?;
        let more = results.len() > options.limit;
        results.truncate(options.limit);
        let next_cursor = more
            .then(|| results.last().map(options::encode_cursor))
            .flatten();
        Ok(MemoryPage {
            results,
            next_cursor,
        })
    }

    /// How many memories [`Memory::get_all`] would list for `scope` with
    /// these options and no limit (`options.limit` is ignored).
    pub async fn count(&self, scope: &Scope, options: ListOptions) -> Result<u64> {
        scope.validate(true)?;
        let params = ReadParams {
            limit: options.limit,
            filter: options.filters,
            as_of: options.as_of,
            include_superseded: options.include_superseded,
            show_expired: options.show_expired,
            threshold: None,
            after: None,
        };
        self.inner.store.count(scope, &params).await
    }

    /// Merges `metadata` into a memory's metadata, its text unchanged (mem0's
    /// `update(memory_id, metadata=…)`), if `access` reaches it. History
    /// records the update. Returns the memory as it is now.
    pub async fn update_metadata(
        &self,
        id: &str,
        access: impl Into<Access>,
        metadata: Metadata,
    ) -> Result<MemoryItem> {
        self.edit(id, access, MemoryEdit::default().merge_metadata(metadata))
            .await
    }

    /// Replaces a memory's text (and, when given, its metadata) if `access`
    /// reaches it. History keeps the old text. Returns the memory as it is now.
    pub async fn update(
        &self,
        id: &str,
        access: impl Into<Access>,
        text: &str,
        metadata: Option<Metadata>,
    ) -> Result<MemoryItem> {
        let mut edit = MemoryEdit::default().text(text);
        if let Some(m) = metadata {
            edit = edit.replace_metadata(m);
        }
        self.edit(id, access, edit).await
    }

    /// Changes a memory's text, metadata or expiry, any of them (see
    /// [`MemoryEdit`]), if `access` reaches it, in one write. A new text is
    /// embedded; history records the update. Returns the memory as it is now.
    ///
    /// Errors: nothing to change, an empty text or an expiry before the
    /// memory's start ([`Error::InvalidInput`]); a missing memory
    /// ([`Error::NotFound`]); a text another memory of the scope already
    /// holds, or an expiry on a superseded memory ([`Error::Conflict`]).
    pub async fn edit(
        &self,
        id: &str,
        access: impl Into<Access>,
        edit: MemoryEdit,
    ) -> Result<MemoryItem> {
        let access = access.into();
        access.validate()?;
        let uuid = parse_memory_id(id)?;
        if edit.text.is_none() && edit.metadata.is_none() && edit.expires_at.is_none() {
            return Err(Error::invalid(
                "text",
                "nothing to change: give a new text, metadata or an expiration date",
            ));
        }
        let text = match edit.text.as_deref().map(str::trim) {
            Some(t) => {
                if t.is_empty() {
                    return Err(Error::invalid("data", "must not be empty"));
                }
                crate::error::reject_nul("data", t)?;
                if t.len() > messages::MAX_MESSAGE_BYTES {
                    return Err(Error::invalid(
                        "data",
                        format!("is longer than {} bytes", messages::MAX_MESSAGE_BYTES),
                    ));
                }
                Some(t.to_owned())
            }
            None => None,
        };
        if let Some(m) = &edit.metadata {
            crate::error::reject_nul_map("metadata", m)?;
        }
        let Some(current) = self.inner.store.get(uuid, &access).await? else {
            return Err(Error::not_found(format!("memory {uuid}")));
        };
        let since = match access.scope() {
            Some(scope) => Some(self.inner.store.deletion_mark(scope).await?),
            None => None,
        };
        // A new text is embedded; the same text keeps its vector.
        let (text, embedding, made_by) = match text.filter(|t| *t != current.memory) {
            Some(t) => {
                let mut usage = Usage::default();
                let vectors = self.embed(std::slice::from_ref(&t), &mut usage).await?;
                let made_by = self.made_by(&vectors);
                (t, vectors.into_iter().next(), made_by)
            }
            None => (current.memory.clone(), None, None),
        };
        let change = Change::Update {
            id: uuid,
            hash: text_hash(&text),
            text,
            embedding,
            replace_metadata: edit.metadata.is_some() && !edit.merge_metadata,
            metadata: edit.metadata,
            actor_id: None,
            role: None,
            expires: edit.expires_at,
        };
        let outcomes = self
            .inner
            .store
            .apply(&access, made_by.as_ref(), since.as_ref(), vec![change])
            .await?;
        let id_now = match outcomes.first() {
            Some(Outcome::Duplicate { id, .. }) if *id != uuid => {
                return Err(Error::Conflict(format!(
                    "memory {id} of the same scope already says this; delete one of them instead"
                )));
            }
            Some(Outcome::Gone { .. }) => return Err(Error::not_found(format!("memory {uuid}"))),
            Some(Outcome::Updated { id, .. }) | Some(Outcome::Duplicate { id, .. }) => *id,
            Some(Outcome::Added { id, .. }) => *id,
            _ => uuid,
        };
        self.inner
            .store
            .get(id_now, &access)
            .await?
            .ok_or_else(|| Error::not_found(format!("memory {uuid}")))
    }

    /// Deletes one memory if `access` reaches it: its text, embedding and
    /// history texts are removed.
    pub async fn delete(&self, id: &str, access: impl Into<Access>) -> Result<()> {
        let access = access.into();
        access.validate()?;
        let uuid = parse_memory_id(id)?;
        if self.inner.store.delete(uuid, &access).await? {
            Ok(())
        } else {
            Err(Error::not_found(format!("memory {uuid}")))
        }
    }

    /// Deletes every memory of the scope (all of them, not one page). Returns how many.
    pub async fn delete_all(&self, scope: &Scope) -> Result<u64> {
        scope.validate(true)?;
        self.inner.store.delete_scope(scope).await
    }

    /// A memory's history, oldest first, if `access` reaches it (empty for
    /// an unknown id).
    pub async fn history(&self, id: &str, access: impl Into<Access>) -> Result<Vec<HistoryEntry>> {
        let access = access.into();
        access.validate()?;
        let uuid = parse_memory_id(id)?;
        self.inner.store.history(uuid, &access).await
    }

    /// Deletes every memory of every scope, and the recorded embedder.
    pub async fn reset(&self) -> Result<()> {
        self.inner.store.reset().await
    }
}

/// The speaker's name when exactly one named user speaks.
fn single_actor(conversation: &[&InputMessage]) -> Option<String> {
    let names: HashSet<&str> = conversation
        .iter()
        .filter(|m| m.role == Role::User)
        .filter_map(|m| m.name.as_deref())
        .collect();
    if names.len() == 1 {
        names.into_iter().next().map(str::to_owned)
    } else {
        None
    }
}
