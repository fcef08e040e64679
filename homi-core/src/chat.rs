//! The Chat client: one memory-augmented turn at a time.
//!
//! A turn searches the user's memories, builds the system prompt (the persona
//! and the memories as bullets) and the conversation's recent turns within a
//! token budget, calls the chat model, stores the turn in its conversation
//! (the API's `session_id`), and enqueues memory extraction for it as a
//! durable job ([`crate::jobs`]): the reply never waits for extraction. The
//! user's message is stored before the model is called, so a provider failure
//! loses nothing; its extraction is enqueued all the same.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> homi_core::Result<()> {
//! # let fake = homi_testkit::FakeProvider::start().await.unwrap();
//! use homi_core::chat::Chat;
//! use homi_core::Config;
//! let config = Config::default()
//!     .with_database_url("sqlite::memory:")
//!     .with_openai_base_url(fake.base_url())
//!     .with_embedding_model("text-embedding-3-small", Some(64));
//! let chat = Chat::open(&config).await?;
//! let turn = chat.turn("alice", "I love hiking in the Alps", None).await?;
//! assert_eq!(turn.response, "You said: I love hiking in the Alps");
//! // Extraction runs after the reply, from the durable queue.
//! chat.queue().run_next(chat.memory()).await?;
//! let next = chat.turn("alice", "Where should I go this summer?", Some(&turn.session_id)).await?;
//! assert_eq!(next.memories_used, ["I love hiking in the Alps"]);
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::jobs::{JobCounts, JobQueue, QueueOptions};
use crate::memory::{ListOptions, Memory, Scope, SearchOptions};
use crate::provider::{ChatChunk, ChatMessage, ChatModel, ChatRequest, Role, TokenUsage};
use crate::store::DeletionMark;
pub use crate::store::chat::{ChatStore, Conversation, ConversationMessage};

/// The persona of the original backend.
pub const DEFAULT_PERSONA: &str = "You are Homi, a helpful assistant with long-term memory. \
Answer the user's message; use what you remember about them when it helps.";

/// An extraction worker running in this process ([`Chat::spawn_local_worker`]).
#[derive(Debug)]
pub struct LocalWorker {
    queue: JobQueue,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl LocalWorker {
    /// Waits, for at most `timeout`, until `user`'s extraction jobs have run,
    /// then stops the worker. Returns the user's jobs per state then: those
    /// still queued or running run the next time a worker does (a server, or
    /// the next local worker); jobs waiting for a retry do not hold it up.
    pub async fn finish(self, user: &str, timeout: std::time::Duration) -> Result<JobCounts> {
        let left = self.queue.wait_until_user_idle(user, timeout).await;
        let _ = self.stop.send(());
        let _ = self.task.await;
        left
    }
}

/// The newest memories a summary is written from.
const SUMMARY_MEMORIES: usize = 200;

/// Chat settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ChatOptions {
    /// Memories searched per turn (the original: 3).
    pub memories_per_turn: usize,
    /// Token budget of the prompt (system prompt, memories, earlier turns and
    /// the message); the oldest turns are dropped first.
    pub prompt_token_budget: usize,
    /// The longest message accepted, in characters.
    pub max_message_chars: usize,
    /// The assistant's persona (the start of the system prompt).
    pub persona: String,
    /// How long a turn's message waits for its reply before its extraction
    /// runs alone. The message and its extraction job are written together
    /// before the model is asked, so a crash or a shutdown during the turn
    /// loses no extraction; the reply, when it comes while the job still
    /// waits, joins it (a reply later than that is not extracted: the job
    /// has taken the message already).
    pub reply_wait: Duration,
}

impl Default for ChatOptions {
    fn default() -> Self {
        Self {
            memories_per_turn: 3,
            prompt_token_budget: 4000,
            max_message_chars: 2000,
            persona: DEFAULT_PERSONA.to_owned(),
            reply_wait: Duration::from_secs(300),
        }
    }
}

/// What a turn answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TurnResult {
    /// The reply.
    pub response: String,
    /// Whose turn.
    pub user_id: String,
    /// The conversation.
    pub session_id: String,
    /// The memories the reply was given.
    pub memories_used: Vec<String>,
    /// When the reply was stored.
    pub timestamp: DateTime<Utc>,
    /// Tokens the chat model used for the reply (zero when the provider did
    /// not say).
    #[serde(default)]
    pub usage: TokenUsage,
    /// The chat model that answered.
    #[serde(default)]
    pub model: String,
    /// Milliseconds of the turn spent waiting for the provider (the query
    /// embedding and the reply); the rest of the turn is Homi's own time.
    #[serde(default)]
    pub provider_ms: f64,
}

/// One event of a streamed turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatEvent {
    /// First: the memories the reply is given, and the conversation.
    Memories {
        /// The conversation.
        session_id: String,
        /// The memories.
        memories: Vec<String>,
    },
    /// A piece of the reply.
    Delta {
        /// The text.
        content: String,
    },
    /// Last: the whole turn, stored.
    Done(TurnResult),
}

/// A summary of what Homi remembers about a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemorySummary {
    /// Whose.
    pub user_id: String,
    /// The summary.
    pub summary: String,
    /// How many current memories the user has (the summary is written from
    /// the newest 200).
    pub memory_count: usize,
}

/// The memories a prompt brings to the model, as a block of text ("What you
/// remember about the user:" and a line per memory); `None` without any.
/// The chat turn's system prompt and the MCP door's `remember` prompt use it.
pub fn remembered(memories: &[String]) -> Option<String> {
    if memories.is_empty() {
        return None;
    }
    let mut block = "What you remember about the user:".to_owned();
    for m in memories {
        block.push_str("\n- ");
        block.push_str(m);
    }
    Some(block)
}

/// The Chat client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Chat {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    memory: Memory,
    model: Option<Arc<dyn ChatModel>>,
    store: Arc<dyn ChatStore>,
    queue: JobQueue,
    options: ChatOptions,
    not_configured: String,
}

/// A rough token count (four characters a token, plus a little per message):
/// enough to keep a prompt within a budget without a tokenizer.
fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4) + 4
}

fn title_of(message: &str) -> String {
    let mut t: String = message.chars().take(60).collect();
    if message.chars().count() > 60 {
        t.push('…');
    }
    t
}

impl Chat {
    /// Like [`Chat::open`], over a Memory the caller opened.
    #[cfg(feature = "openai")]
    pub fn with_memory(config: &crate::Config, memory: Memory) -> Result<Self> {
        use crate::provider::openai::{NOT_CONFIGURED, OpenAiChatModel};
        let model: Option<Arc<dyn ChatModel>> = if config.provider.is_configured() {
            Some(Arc::new(OpenAiChatModel::new(&config.provider)?))
        } else {
            None
        };
        let queue = QueueOptions::from_config(config);
        let options = ChatOptions {
            memories_per_turn: config.memory.chat_memories,
            prompt_token_budget: config.memory.chat_token_budget,
            // A turn that is not streamed ends by the provider's deadlines:
            // its search's embedding, then the chat call.
            reply_wait: config.provider.deadline.saturating_mul(3),
            ..ChatOptions::default()
        };
        let mut chat = Self::new(memory, model, options, queue)?;
        if let Some(inner) = Arc::get_mut(&mut chat.inner) {
            inner.not_configured = NOT_CONFIGURED.to_owned();
        }
        Ok(chat)
    }

    /// A Chat over a Memory (whose store keeps the conversations and the job
    /// queue) and a chat model.
    pub fn new(
        memory: Memory,
        model: Option<Arc<dyn ChatModel>>,
        options: ChatOptions,
        queue: QueueOptions,
    ) -> Result<Self> {
        let store = memory.store().clone().chat_store().ok_or_else(|| {
            Error::config(
                "DATABASE_URL",
                "this store keeps no conversations (use the SQLite or Postgres store)",
            )
        })?;
        let queue = JobQueue::for_memory(&memory, queue)?;
        Ok(Self {
            inner: Arc::new(Inner {
                memory,
                model,
                store,
                queue,
                options,
                not_configured: "set OPENAI_API_KEY or OPENAI_BASE_URL".to_owned(),
            }),
        })
    }

    /// The chat model's name, when one is configured.
    pub fn model_name(&self) -> Option<&str> {
        self.inner.model.as_ref().map(|m| m.model())
    }

    /// The memory turns search and extraction writes to.
    pub fn memory(&self) -> &Memory {
        &self.inner.memory
    }

    /// The queue of extraction jobs (run it with [`JobQueue::spawn_worker`]).
    pub fn queue(&self) -> &JobQueue {
        &self.inner.queue
    }

    /// Runs the extraction worker in this process until
    /// [`LocalWorker::finish`]: for a program that chats and then exits (the
    /// `homi chat` command, a script), where no server runs the queue.
    pub fn spawn_local_worker(&self) -> LocalWorker {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = self
            .inner
            .queue
            .clone()
            .spawn_worker(self.inner.memory.clone(), async {
                let _ = stopped.await;
            });
        LocalWorker {
            queue: self.inner.queue.clone(),
            stop,
            task,
        }
    }

    fn model(&self) -> Result<&Arc<dyn ChatModel>> {
        self.inner
            .model
            .as_ref()
            .ok_or_else(|| Error::ProviderNotConfigured(self.inner.not_configured.clone()))
    }

    fn check(&self, user_id: &str, message: &str) -> Result<String> {
        if user_id.trim().is_empty() {
            return Err(Error::invalid("user_id", "a user id is required"));
        }
        let message = message.trim();
        if message.is_empty() {
            return Err(Error::invalid("message", "the message is empty"));
        }
        crate::error::reject_nul("message", message)?;
        let max = self.inner.options.max_message_chars;
        if message.chars().count() > max {
            return Err(Error::invalid(
                "message",
                format!("the message is longer than {max} characters"),
            ));
        }
        Ok(message.to_owned())
    }

    /// Everything up to the model call: the conversation, the stored user
    /// message, the memories and the prompt.
    async fn prepare(
        &self,
        user_id: &str,
        message: &str,
        session_id: Option<&str>,
        given: Option<Given>,
    ) -> Result<Prepared> {
        let message = self.check(user_id, message)?;
        // The client's own system messages (OpenAI-style requests) go into
        // the prompt whole: they may take half its budget at most.
        if let Some(given) = &given {
            let system: usize = given
                .earlier
                .iter()
                .filter(|m| m.role == Role::System)
                .map(|m| estimate_tokens(&m.content))
                .sum();
            let cap = self.inner.options.prompt_token_budget / 2;
            if system > cap {
                return Err(Error::invalid(
                    "messages",
                    format!(
                        "the system messages are about {system} tokens; at most {cap} are taken \
                         (half of HOMI_CHAT_TOKEN_BUDGET)"
                    ),
                ));
            }
        }
        // Within the user's budget, or not at all.
        let budgets = self.inner.memory.budgets();
        if budgets.is_limited() {
            budgets.admit(user_id).await?;
        }
        let model = self.model()?.clone();
        let session_id = match session_id.map(str::trim) {
            Some(s) if !s.is_empty() => {
                if s.chars().count() > 128 {
                    return Err(Error::invalid("session_id", "longer than 128 characters"));
                }
                if s.chars().any(char::is_control) {
                    return Err(Error::invalid("session_id", "contains control characters"));
                }
                s.to_owned()
            }
            _ => Uuid::new_v4().to_string(),
        };
        let store = &self.inner.store;
        let now = Utc::now();
        let scope = Scope::user(user_id);
        let reply_wait = chrono::Duration::from_std(self.inner.options.reply_wait)
            .ok()
            .and_then(|wait| now.checked_add_signed(wait));
        // Storing the user's message and searching the memories do not depend
        // on each other: the store's work runs while the query is embedded.
        let record = async {
            store
                .open_conversation(&session_id, user_id, &title_of(&message), now)
                .await?
                .ok_or_else(|| Error::not_found(format!("conversation {session_id}")))?;
            // The client's own history (OpenAI-style requests carry it), or the
            // conversation's.
            let (history, after): (Vec<ChatMessage>, Vec<ChatMessage>) = match given {
                Some(g) => (g.earlier, g.after),
                None => (
                    store
                        .recent_messages(&session_id, user_id, 100)
                        .await?
                        .into_iter()
                        .map(|m| ChatMessage {
                            role: m.role,
                            content: m.content,
                            raw: None,
                        })
                        .collect::<Vec<_>>(),
                    Vec::new(),
                ),
            };
            let user_message = ConversationMessage {
                id: Uuid::new_v4(),
                conversation_id: session_id.clone(),
                user_id: user_id.to_owned(),
                role: Role::User,
                content: message.clone(),
                memories_used: Vec::new(),
                created_at: now,
            };
            // The message's extraction job is written with it, to run alone
            // once `reply_wait` has passed (the reply takes its place before).
            // Both answer to the scope's deletions as the message arrives: a
            // delete-all from then on wins over them.
            let since = self.inner.memory.deletion_mark(&scope).await?;
            let mut early = self.inner.queue.extraction_job_since(
                &scope,
                vec![ChatMessage::user(&message)],
                Some(&since),
            )?;
            early.not_before = reply_wait;
            let job = store
                .append_message(&user_message, Some(&early), None)
                .await?;
            Ok::<_, Error>((history, after, job, since))
        };
        let search = self.inner.memory.search_unmetered(
            &message,
            &scope,
            SearchOptions::default().limit(self.inner.options.memories_per_turn.max(1)),
        );
        let (recorded, searched) = futures::future::join(record, search).await;
        // Nothing stored: nothing to extract later.
        let (history, after, pending_job, since) = recorded?;
        let (memories, search_provider_ms, search_tokens): (Vec<String>, f64, u64) = match searched
        {
            Ok(found) => (
                found.results.into_iter().map(|m| m.memory).collect(),
                found.usage.provider_ms,
                found.usage.total_tokens(),
            ),
            // The message is stored: its extraction runs once the provider is back.
            Err(e) => {
                self.extract_alone(pending_job).await;
                return Err(e);
            }
        };
        let mut request = self.prompt(&memories, &history, &message);
        // An agent's tool calls and results since the message, as they came.
        request.messages.extend(after);
        Ok(Prepared {
            pending_job,
            since,
            search_tokens,
            provider_ms: search_provider_ms,
            model,
            session_id,
            scope,
            message,
            memories,
            request,
        })
    }

    /// The system prompt with the memories, the newest earlier turns that fit
    /// the budget, and the message.
    fn prompt(&self, memories: &[String], history: &[ChatMessage], message: &str) -> ChatRequest {
        // A system message of the client's replaces the persona.
        let client_system: Vec<&str> = history
            .iter()
            .filter(|m| m.role == Role::System && m.raw.is_none())
            .map(|m| m.content.as_str())
            .collect();
        let mut system = if client_system.is_empty() {
            self.inner.options.persona.clone()
        } else {
            client_system.join("\n\n")
        };
        if let Some(block) = remembered(memories) {
            system.push_str("\n\n");
            system.push_str(&block);
        }
        // The memories and the message always go in; earlier turns fill what is left.
        let mut left = self
            .inner
            .options
            .prompt_token_budget
            .saturating_sub(estimate_tokens(&system) + estimate_tokens(message));
        let mut earlier = Vec::new();
        for m in history
            .iter()
            .rev()
            .filter(|m| m.role != Role::System || m.raw.is_some())
        {
            let cost = match &m.raw {
                Some(raw) => estimate_tokens(&raw.to_string()),
                None => estimate_tokens(&m.content),
            };
            if cost > left {
                break;
            }
            left -= cost;
            earlier.push(m.clone());
        }
        earlier.reverse();
        let mut messages = Vec::with_capacity(earlier.len() + 2);
        messages.push(ChatMessage::system(system));
        messages.extend(earlier);
        messages.push(ChatMessage::user(message));
        ChatRequest::new(messages)
    }

    /// When the turn failed after the user's message was stored, its
    /// extraction (written with it) runs now, without a reply.
    async fn extract_alone(&self, pending_job: Option<Uuid>) {
        let Some(id) = pending_job else { return };
        if let Err(e) = self.inner.queue.hurry(id).await {
            // It still runs, once the reply wait has passed.
            tracing::warn!(error = %e, job = %id, "could not hurry the extraction of a stored message");
        }
    }

    /// Stores the reply and enqueues the turn's extraction, in one transaction.
    async fn finish(&self, p: &Prepared, reply: String, usage: TokenUsage) -> Result<TurnResult> {
        // The turn's spend: what the provider reported, or (when it reports
        // less, or nothing) the prompt and reply as estimated; a client's own
        // system messages count either way. Plus the search's embedding.
        let budgets = self.inner.memory.budgets();
        if budgets.is_limited() {
            let estimated: usize = p
                .request
                .messages
                .iter()
                .map(|m| estimate_tokens(&m.content))
                .sum::<usize>()
                + estimate_tokens(&reply);
            let reported = usage.prompt_tokens + usage.completion_tokens;
            let spent = reported.max(estimated as u64) + p.search_tokens;
            budgets
                .charge(&p.scope.user_id.clone().unwrap_or_default(), spent)
                .await;
        }
        let now = Utc::now();
        let job = self.inner.queue.extraction_job_since(
            &p.scope,
            vec![
                ChatMessage::user(&p.message),
                ChatMessage::assistant(&reply),
            ],
            Some(&p.since),
        )?;
        self.inner
            .store
            .append_message(
                &ConversationMessage {
                    id: Uuid::new_v4(),
                    conversation_id: p.session_id.clone(),
                    user_id: p.scope.user_id.clone().unwrap_or_default(),
                    role: Role::Assistant,
                    content: reply.clone(),
                    memories_used: p.memories.clone(),
                    created_at: now,
                },
                Some(&job),
                p.pending_job,
            )
            .await?;
        self.inner.queue.wake();
        Ok(TurnResult {
            response: reply,
            user_id: p.scope.user_id.clone().unwrap_or_default(),
            session_id: p.session_id.clone(),
            memories_used: p.memories.clone(),
            timestamp: now,
            usage,
            model: p.model.model().to_owned(),
            provider_ms: p.provider_ms,
        })
    }

    /// One turn: `message` from `user_id` in the conversation `session_id`
    /// (a new one when `None`, or when no conversation has that id yet).
    pub async fn turn(
        &self,
        user_id: &str,
        message: &str,
        session_id: Option<&str>,
    ) -> Result<TurnResult> {
        self.detached(
            user_id,
            message.to_owned(),
            session_id,
            None,
            |chat, p| async move { chat.complete(p).await },
        )
        .await
    }

    /// One turn whose history the client sends, as OpenAI-style clients do:
    /// the last message is the user's turn, the earlier ones (a system message
    /// replaces the persona) are the context. The turn is stored in
    /// `session_id` (a new conversation when `None`) and extracted as usual.
    pub async fn turn_with_messages(
        &self,
        user_id: &str,
        messages: Vec<ChatMessage>,
        session_id: Option<&str>,
    ) -> Result<TurnResult> {
        let (message, earlier) = split_last_user(messages)?;
        self.detached(
            user_id,
            message,
            session_id,
            Some(earlier),
            |chat, p| async move { chat.complete(p).await },
        )
        .await
    }
    /// Prepares a turn and finishes it with `then`, on its own task (see
    /// [`run_to_the_end`]): the four public ways to run a turn share this.
    async fn detached<T, F, Fut>(
        &self,
        user_id: &str,
        message: String,
        session_id: Option<&str>,
        given: Option<Given>,
        then: F,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Chat, Prepared) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T>> + Send,
    {
        let chat = self.clone();
        let user_id = user_id.to_owned();
        let session_id = session_id.map(str::to_owned);
        run_to_the_end(async move {
            let p = chat
                .prepare(&user_id, &message, session_id.as_deref(), given)
                .await?;
            then(chat, p).await
        })
        .await
    }

    async fn complete(&self, p: Prepared) -> Result<TurnResult> {
        let start = std::time::Instant::now();
        let answer = p.model.complete(p.request.clone()).await;
        let provider_ms = p.provider_ms + start.elapsed().as_secs_f64() * 1000.0;
        match answer {
            Ok(answer) => {
                let mut turn = self.finish(&p, answer.content, answer.usage).await?;
                turn.provider_ms = provider_ms;
                Ok(turn)
            }
            Err(e) => {
                self.extract_alone(p.pending_job).await;
                Err(e)
            }
        }
    }

    /// One turn, streamed: [`ChatEvent::Memories`], then [`ChatEvent::Delta`]s,
    /// then [`ChatEvent::Done`] once the turn is stored. The turn completes
    /// and is stored even if the caller stops reading.
    pub async fn stream(
        &self,
        user_id: &str,
        message: &str,
        session_id: Option<&str>,
    ) -> Result<BoxStream<'static, Result<ChatEvent>>> {
        self.detached(
            user_id,
            message.to_owned(),
            session_id,
            None,
            |chat, p| async move { chat.stream_prepared(p).await },
        )
        .await
    }

    /// [`Chat::turn_with_messages`], streamed as [`Chat::stream`] is.
    pub async fn stream_with_messages(
        &self,
        user_id: &str,
        messages: Vec<ChatMessage>,
        session_id: Option<&str>,
    ) -> Result<BoxStream<'static, Result<ChatEvent>>> {
        let (message, earlier) = split_last_user(messages)?;
        self.detached(
            user_id,
            message,
            session_id,
            Some(earlier),
            |chat, p| async move { chat.stream_prepared(p).await },
        )
        .await
    }
    async fn stream_prepared(&self, p: Prepared) -> Result<BoxStream<'static, Result<ChatEvent>>> {
        let mut chunks = match p.model.stream(p.request.clone()).await {
            Ok(s) => s,
            Err(e) => {
                self.extract_alone(p.pending_job).await;
                return Err(e);
            }
        };
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<ChatEvent>>();
        let _ = tx.unbounded_send(Ok(ChatEvent::Memories {
            session_id: p.session_id.clone(),
            memories: p.memories.clone(),
        }));
        let this = self.clone();
        tokio::spawn(async move {
            let mut reply = String::new();
            let mut usage = TokenUsage::default();
            while let Some(chunk) = chunks.next().await {
                match chunk {
                    Ok(ChatChunk::Delta(d)) => {
                        reply.push_str(&d);
                        let _ = tx.unbounded_send(Ok(ChatEvent::Delta { content: d }));
                    }
                    Ok(ChatChunk::Done(u)) => {
                        usage = u.unwrap_or_default();
                        break;
                    }
                    Err(e) => {
                        this.extract_alone(p.pending_job).await;
                        let _ = tx.unbounded_send(Err(e));
                        return;
                    }
                }
            }
            let done = this.finish(&p, reply, usage).await.map(ChatEvent::Done);
            let _ = tx.unbounded_send(done);
        });
        Ok(rx.boxed())
    }

    /// What Homi remembers about the user, summarised by the chat model (with
    /// no memories, a plain answer without a model call).
    pub async fn summary(&self, user_id: &str) -> Result<MemorySummary> {
        if user_id.trim().is_empty() {
            return Err(Error::invalid("user_id", "a user id is required"));
        }
        let scope = Scope::user(user_id);
        let budgets = self.inner.memory.budgets();
        if budgets.is_limited() {
            budgets.admit(user_id).await?;
        }
        let memory_count = self
            .inner
            .memory
            .count(&scope, ListOptions::default())
            .await?;
        // The newest memories, as many as the summary prompt takes.
        let memories = self
            .inner
            .memory
            .get_all(&scope, ListOptions::default().limit(SUMMARY_MEMORIES))
            .await?;
        if memories.is_empty() {
            return Ok(MemorySummary {
                user_id: user_id.to_owned(),
                summary: "I don't remember anything about you yet.".to_owned(),
                memory_count: 0,
            });
        }
        let list: String = memories
            .iter()
            .map(|m| format!("- {}\n", m.memory))
            .collect();
        let answer = self
            .model()?
            .complete(ChatRequest::new(vec![
                ChatMessage::system(
                    "Summarise, in a few sentences addressed to the user, what you know about them \
                     from these memories. Do not invent anything.",
                ),
                ChatMessage::user(list),
            ]))
            .await?;
        budgets
            .charge(
                user_id,
                answer.usage.prompt_tokens + answer.usage.completion_tokens,
            )
            .await;
        Ok(MemorySummary {
            user_id: user_id.to_owned(),
            summary: answer.content,
            memory_count: usize::try_from(memory_count).unwrap_or(usize::MAX),
        })
    }

    /// The user's conversations, most recent first.
    pub async fn conversations(
        &self,
        user_id: &str,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<Conversation>> {
        self.inner.store.conversations(user_id, limit, offset).await
    }

    /// The last `limit` messages of the user's conversation, oldest first.
    pub async fn messages(
        &self,
        user_id: &str,
        session_id: &str,
        limit: usize,
    ) -> Result<Vec<ConversationMessage>> {
        let messages = self
            .inner
            .store
            .recent_messages(session_id, user_id, limit)
            .await?;
        // Every conversation starts with the user's message: none means it is
        // not this user's (or does not exist).
        if messages.is_empty() && limit > 0 {
            return Err(Error::not_found(format!("conversation {session_id}")));
        }
        Ok(messages)
    }

    /// Deletes the user's conversation and its messages.
    pub async fn delete_conversation(&self, user_id: &str, session_id: &str) -> Result<bool> {
        self.inner
            .store
            .delete_conversation(session_id, user_id)
            .await
    }
}

/// The last message (which must be the user's) and the ones before it.
/// An OpenAI-style request's turn: the last user message, what came before
/// it, and the tool calls and results after it (an agent's loop), which the
/// model gets after the message.
fn split_last_user(mut messages: Vec<ChatMessage>) -> Result<(String, Given)> {
    let at = messages
        .iter()
        .rposition(|m| m.role == Role::User && m.raw.is_none())
        .ok_or_else(|| {
            Error::invalid(
                "messages",
                if messages.is_empty() {
                    "at least one message is required"
                } else {
                    "a user's message (role \"user\") is required"
                },
            )
        })?;
    let after = messages.split_off(at + 1);
    if let Some(i) = after.iter().position(|m| m.raw.is_none()) {
        return Err(Error::invalid(
            format!("messages[{}]", at + 1 + i),
            "after the last user message only tool calls and tool results may come",
        ));
    }
    let message = messages.pop().map(|m| m.content).unwrap_or_default();
    Ok((
        message,
        Given {
            earlier: messages,
            after,
        },
    ))
}

/// The conversation an OpenAI-style client sends with its turn.
struct Given {
    /// Before the turn's message (a system message replaces the persona).
    earlier: Vec<ChatMessage>,
    /// Tool calls and their results after it.
    after: Vec<ChatMessage>,
}

/// Runs a turn on its own task, so it finishes even when the caller stops
/// waiting (a request timeout, a client that hangs up, a cancelled Python
/// coroutine): the reply is stored and the extraction enqueued either way,
/// never a turn half-written.
async fn run_to_the_end<T: Send + 'static>(
    turn: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    match tokio::spawn(turn).await {
        Ok(result) => result,
        Err(e) => Err(Error::storage(format!(
            "the turn stopped unexpectedly: {e}"
        ))),
    }
}

struct Prepared {
    /// The extraction job written with the user's message.
    pending_job: Option<Uuid>,
    /// The scope's deletions when the message arrived.
    since: DeletionMark,
    /// Tokens the turn's memory search spent.
    search_tokens: u64,
    /// Provider time spent so far (the search's query embedding).
    provider_ms: f64,
    model: Arc<dyn ChatModel>,
    session_id: String,
    scope: Scope,
    message: String,
    memories: Vec<String>,
    request: ChatRequest,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_short() {
        assert_eq!(title_of("hi"), "hi");
        assert_eq!(title_of(&"x".repeat(100)).chars().count(), 61);
    }
}
