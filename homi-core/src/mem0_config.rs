//! mem0's configuration dictionary (`Memory.from_config(config)`), read into
//! a [`Config`], so a mem0 script keeps its config when it moves to Homi.
//!
//! ```
//! use homi_core::Config;
//! use serde_json::json;
//! let config = Config::default().apply_mem0(&json!({
//!     "llm": {"provider": "openai", "config": {"model": "gpt-4o-mini", "temperature": 0.2}},
//!     "embedder": {"provider": "ollama", "config": {"model": "nomic-embed-text"}},
//!     "vector_store": {"provider": "qdrant", "config": {"path": "/srv/memories"}}
//! }))?;
//! assert_eq!(config.database_url, "sqlite:///srv/memories/homi.db");
//! assert_eq!(config.provider.sampling.temperature, Some(0.2));
//! let embeddings = config.embedding_provider();
//! assert_eq!(embeddings.base_url.as_deref(), Some("http://localhost:11434/v1"));
//! # Ok::<(), homi_core::Error>(())
//! ```
//!
//! What is read:
//!
//! - `llm` and `embedder`: every provider of mem0's that speaks the OpenAI
//!   protocol, by its mem0 name and with its config keys, default base URL
//!   and API-key variable ([`LLM_PROVIDERS`]); `azure_openai` through
//!   `azure_kwargs`; `litellm` routed by the model's prefix as litellm does.
//!   The embedders `huggingface` and `fastembed` are Homi's local embedder.
//!   The chat model and the embedder may be different servers.
//!   `temperature`, `max_tokens` and `top_p` reach the model.
//! - `vector_store`: the embedded ones (`qdrant`, `chroma`, `faiss` with a
//!   local `path`, and `sqlite`) are Homi's SQLite store, kept in that
//!   directory (`<path>/homi.db`); `pgvector` and `supabase` are Homi's
//!   Postgres store. Servers (a Qdrant or Chroma server, Pinecone, …) are
//!   refused with where to go instead.
//! - `custom_instructions` (mem0 2.x), `custom_fact_extraction_prompt` and
//!   `custom_update_memory_prompt` (1.x): instructions added to Homi's
//!   extraction prompt, whose answer format stays Homi's.
//! - `history_db_path` and `version`: accepted; history lives in the store.
//!
//! A provider Homi cannot reach, an unknown key, a value of the wrong type
//! or a setting Homi cannot honour is an error that names it and says why.

use secrecy::SecretString;
use serde_json::{Map, Value};

use crate::config::{AzureSettings, Config, EmbedderKind, ProviderConfig};
use crate::error::{Error, Result};

/// One of mem0's model providers that speaks the OpenAI protocol.
#[derive(Debug, Clone, Copy)]
pub struct ProviderSpec {
    /// mem0's name for it.
    pub name: &'static str,
    /// The config key naming its base URL, if it has one.
    pub base_url_key: Option<&'static str>,
    /// The variable mem0 reads for the base URL.
    pub base_url_var: Option<&'static str>,
    /// Its base URL when none is given (`None`: OpenAI's).
    pub default_base_url: Option<&'static str>,
    /// The variable mem0 reads for the API key.
    pub api_key_var: Option<&'static str>,
    /// The key sent when none is given (local servers want any).
    pub default_api_key: Option<&'static str>,
    /// mem0's default chat model (`None`: Homi's, `MODEL_CHOICE`).
    pub default_model: Option<&'static str>,
    /// mem0's default embedding model and its size.
    pub default_embedding: Option<(&'static str, Option<usize>)>,
}

const fn spec(name: &'static str) -> ProviderSpec {
    ProviderSpec {
        name,
        base_url_key: None,
        base_url_var: None,
        default_base_url: None,
        api_key_var: None,
        default_api_key: None,
        default_model: None,
        default_embedding: None,
    }
}

/// mem0's providers Homi reaches over the OpenAI protocol.
pub const LLM_PROVIDERS: &[ProviderSpec] = &[
    ProviderSpec {
        base_url_key: Some("openai_base_url"),
        base_url_var: Some("OPENAI_BASE_URL"),
        api_key_var: Some("OPENAI_API_KEY"),
        default_embedding: Some(("text-embedding-3-small", None)),
        ..spec("openai")
    },
    ProviderSpec {
        base_url_key: Some("openai_base_url"),
        base_url_var: Some("OPENAI_BASE_URL"),
        api_key_var: Some("OPENAI_API_KEY"),
        ..spec("openai_structured")
    },
    spec("azure_openai"),
    spec("azure_openai_structured"),
    ProviderSpec {
        base_url_key: Some("ollama_base_url"),
        default_base_url: Some("http://localhost:11434"),
        default_api_key: Some("ollama"),
        default_model: Some("llama3.1:70b"),
        default_embedding: Some(("nomic-embed-text", None)),
        ..spec("ollama")
    },
    ProviderSpec {
        base_url_key: Some("lmstudio_base_url"),
        default_base_url: Some("http://localhost:1234/v1"),
        default_api_key: Some("lm-studio"),
        default_model: Some(
            "lmstudio-community/Meta-Llama-3.1-70B-Instruct-GGUF/Meta-Llama-3.1-70B-Instruct-IQ2_M.gguf",
        ),
        default_embedding: Some((
            "nomic-ai/nomic-embed-text-v1.5-GGUF/nomic-embed-text-v1.5.f16.gguf",
            None,
        )),
        ..spec("lmstudio")
    },
    ProviderSpec {
        base_url_key: Some("vllm_base_url"),
        base_url_var: Some("VLLM_BASE_URL"),
        default_base_url: Some("http://localhost:8000/v1"),
        api_key_var: Some("VLLM_API_KEY"),
        default_api_key: Some("vllm-api-key"),
        default_model: Some("Qwen/Qwen2.5-32B-Instruct"),
        ..spec("vllm")
    },
    ProviderSpec {
        base_url_key: Some("deepseek_base_url"),
        base_url_var: Some("DEEPSEEK_API_BASE"),
        default_base_url: Some("https://api.deepseek.com"),
        api_key_var: Some("DEEPSEEK_API_KEY"),
        default_model: Some("deepseek-chat"),
        ..spec("deepseek")
    },
    ProviderSpec {
        default_base_url: Some("https://api.together.xyz/v1"),
        api_key_var: Some("TOGETHER_API_KEY"),
        default_model: Some("MiniMaxAI/MiniMax-M3"),
        default_embedding: Some(("intfloat/multilingual-e5-large-instruct", Some(1024))),
        ..spec("together")
    },
    ProviderSpec {
        default_base_url: Some("https://api.groq.com/openai/v1"),
        api_key_var: Some("GROQ_API_KEY"),
        default_model: Some("llama-3.3-70b-versatile"),
        ..spec("groq")
    },
    ProviderSpec {
        base_url_key: Some("xai_base_url"),
        base_url_var: Some("XAI_API_BASE"),
        default_base_url: Some("https://api.x.ai/v1"),
        api_key_var: Some("XAI_API_KEY"),
        default_model: Some("grok-4.3"),
        ..spec("xai")
    },
    spec("litellm"),
];

/// litellm's model prefixes for the providers above, and the key variables
/// litellm reads for them.
const LITELLM_ROUTES: &[(&str, &str, Option<&str>)] = &[
    ("openai/", "openai", Some("OPENAI_API_KEY")),
    ("azure/", "azure_openai", None),
    ("ollama/", "ollama", None),
    ("ollama_chat/", "ollama", None),
    ("lm_studio/", "lmstudio", Some("LM_STUDIO_API_KEY")),
    ("hosted_vllm/", "vllm", Some("HOSTED_VLLM_API_KEY")),
    ("deepseek/", "deepseek", Some("DEEPSEEK_API_KEY")),
    ("together_ai/", "together", Some("TOGETHERAI_API_KEY")),
    ("groq/", "groq", Some("GROQ_API_KEY")),
    ("xai/", "xai", Some("XAI_API_KEY")),
];

/// Embedder providers of mem0's that are Homi's in-process embedder.
const LOCAL_EMBEDDERS: &[&str] = &["huggingface", "fastembed"];
/// mem0's embedder providers on the OpenAI protocol.
const OPENAI_EMBEDDERS: &[&str] = &["openai", "azure_openai", "ollama", "lmstudio", "together"];
/// mem0's vector stores that live in a local directory.
const EMBEDDED_STORES: &[&str] = &["qdrant", "chroma", "faiss"];

/// Keys of every LLM config (mem0's `BaseLlmConfig`) that need nothing.
const LLM_ACCEPTED: &[&str] = &[
    // mem0 never sends `top_k` to a provider; Homi works out on its own
    // which models take `max_completion_tokens`.
    "top_k",
    "is_reasoning_model",
    "vision_details",
    // Homi asks for JSON with its own schema.
    "lmstudio_response_format",
];

fn object<'a>(value: &'a Value, field: &str) -> Result<&'a Map<String, Value>> {
    value
        .as_object()
        .ok_or_else(|| Error::invalid(field, "must be a dict"))
}

fn string(map: &Map<String, Value>, key: &str, field: &str) -> Result<Option<String>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::invalid(format!("{field}.{key}"), "must be a string")),
    }
}

fn number(map: &Map<String, Value>, key: &str, field: &str) -> Result<Option<u64>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .map(Some)
            .ok_or_else(|| Error::invalid(format!("{field}.{key}"), "must be a whole number")),
    }
}

fn float(map: &Map<String, Value>, key: &str, field: &str, max: f64) -> Result<Option<f32>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(x) if (0.0..=max).contains(&x) => Ok(Some(x as f32)),
            _ => Err(Error::invalid(
                format!("{field}.{key}"),
                format!("must be a number from 0 to {max}"),
            )),
        },
    }
}

fn truthy(map: &Map<String, Value>, key: &str) -> bool {
    match map.get(key) {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// The `{provider, config}` pair of a section.
fn section(top: &Map<String, Value>, name: &str) -> Result<Option<(String, Map<String, Value>)>> {
    let Some(value) = top.get(name).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let section = object(value, name)?;
    for key in section.keys() {
        if key != "provider" && key != "config" {
            return Err(Error::invalid(
                format!("{name}.{key}"),
                "is not a key of this section (provider, config)",
            ));
        }
    }
    let provider = string(section, "provider", name)?.unwrap_or_else(|| "openai".to_owned());
    let config = match section.get("config") {
        None | Some(Value::Null) => Map::new(),
        Some(v) => object(v, &format!("{name}.config"))?.clone(),
    };
    Ok(Some((provider, config)))
}

/// Every key of `config` set to something is known or accepted.
fn check_keys(config: &Map<String, Value>, field: &str, known: &[&str]) -> Result<()> {
    for (key, value) in config {
        if value.is_null() || known.contains(&key.as_str()) {
            continue;
        }
        return Err(Error::invalid(
            format!("{field}.{key}"),
            format!(
                "is not a setting Homi can honour here (it reads: {})",
                known.join(", ")
            ),
        ));
    }
    Ok(())
}

fn names(list: impl IntoIterator<Item = &'static str>) -> String {
    list.into_iter()
        .map(|p| format!("'{p}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn spec_of(name: &str) -> Option<&'static ProviderSpec> {
    LLM_PROVIDERS.iter().find(|p| p.name == name)
}

/// What a section names: the server, and the model it gives (if any).
struct Endpoint {
    provider: ProviderConfig,
    model: Option<String>,
    spec: &'static ProviderSpec,
}

/// The server a model section names, from `base` (the environment's
/// provider: timeouts, and for `openai` its key and URL).
fn endpoint(
    spec: &'static ProviderSpec,
    config: &Map<String, Value>,
    field: &str,
    base: &ProviderConfig,
    env: &dyn Fn(&str) -> Option<String>,
    azure_prefix: &str,
) -> Result<Endpoint> {
    let mut provider = base.clone();
    let mut model = string(config, "model", field)?;
    if spec.name.starts_with("azure_openai") {
        let kwargs = match config.get("azure_kwargs") {
            None | Some(Value::Null) => Map::new(),
            Some(v) => object(v, &format!("{field}.azure_kwargs"))?.clone(),
        };
        let at = format!("{field}.azure_kwargs");
        check_keys(
            &kwargs,
            &at,
            &[
                "api_key",
                "azure_deployment",
                "azure_endpoint",
                "api_version",
            ],
        )?;
        let get = |key: &str, var: &str| -> Result<Option<String>> {
            Ok(string(&kwargs, key, &at)?.or_else(|| env(&format!("{azure_prefix}{var}"))))
        };
        let need = |v: Option<String>, key: &str, var: &str| {
            v.ok_or_else(|| {
                Error::invalid(
                    format!("{at}.{key}"),
                    format!("is required for Azure OpenAI (or {azure_prefix}{var})"),
                )
            })
        };
        let key = need(get("api_key", "AZURE_OPENAI_API_KEY")?, "api_key", "AZURE_OPENAI_API_KEY")
            .map_err(|_| {
                Error::invalid(
                    format!("{at}.api_key"),
                    format!(
                        "is required: Homi signs in to Azure OpenAI with a key (or {azure_prefix}AZURE_OPENAI_API_KEY), not with Azure AD"
                    ),
                )
            })?;
        let endpoint = need(
            get("azure_endpoint", "AZURE_ENDPOINT")?,
            "azure_endpoint",
            "AZURE_ENDPOINT",
        )?;
        let version = need(
            get("api_version", "AZURE_API_VERSION")?,
            "api_version",
            "AZURE_API_VERSION",
        )?;
        let deployment = match get("azure_deployment", "AZURE_DEPLOYMENT")? {
            Some(d) => d,
            None => need(model.clone(), "azure_deployment", "AZURE_DEPLOYMENT")?,
        };
        provider.base_url = Some(crate::config::check_http_url(
            &format!("{at}.azure_endpoint"),
            &endpoint,
        )?);
        provider.api_key = Some(SecretString::from(key));
        model.get_or_insert_with(|| deployment.clone());
        provider.azure = Some(AzureSettings::new(deployment, version));
        return Ok(Endpoint {
            provider,
            model,
            spec,
        });
    }
    provider.azure = None;
    let given_url = match spec.base_url_key {
        Some(k) => string(config, k, field)?,
        None => None,
    };
    let url = given_url
        .or_else(|| spec.base_url_var.and_then(env))
        .or_else(|| spec.default_base_url.map(str::to_owned));
    if spec.name.starts_with("openai") {
        // The environment's OpenAI settings stay unless the section names others.
        if url.is_some() {
            provider.base_url = url;
        }
    } else {
        let mut url = url.unwrap_or_default();
        if spec.name == "ollama" && !url.trim_end_matches('/').ends_with("/v1") {
            // mem0 talks to Ollama's own API; Homi to its OpenAI one.
            url = format!("{}/v1", url.trim_end_matches('/'));
        }
        provider.base_url = Some(url);
        provider.api_key = None;
    }
    if let Some(url) = &provider.base_url {
        let key = spec.base_url_key.unwrap_or("base_url");
        provider.base_url = Some(crate::config::check_http_url(
            &format!("{field}.{key}"),
            url,
        )?);
    }
    let key = string(config, "api_key", field)?
        .or_else(|| spec.api_key_var.and_then(env))
        .or_else(|| spec.default_api_key.map(str::to_owned));
    if let Some(key) = key {
        provider.api_key = Some(SecretString::from(key));
    }
    if !spec.name.starts_with("openai") && provider.api_key.is_none() {
        return Err(Error::invalid(
            format!("{field}.api_key"),
            format!(
                "is required for '{}'{}",
                spec.name,
                spec.api_key_var
                    .map(|v| format!(" (or {v})"))
                    .unwrap_or_default()
            ),
        ));
    }
    Ok(Endpoint {
        provider,
        model,
        spec,
    })
}

/// litellm's routing: the model's prefix names the provider.
fn litellm(
    config: &Map<String, Value>,
    field: &str,
    base: &ProviderConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Endpoint> {
    let model = string(config, "model", field)?.unwrap_or_else(|| base.chat_model.clone());
    let (name, bare, key_var) = match LITELLM_ROUTES.iter().find(|(p, _, _)| model.starts_with(p)) {
        Some((prefix, name, var)) => (*name, model[prefix.len()..].to_owned(), *var),
        None if !model.contains('/') => ("openai", model.clone(), Some("OPENAI_API_KEY")),
        None => {
            return Err(Error::invalid(
                format!("{field}.model"),
                format!(
                    "'{model}': through litellm, Homi reaches the providers that speak the OpenAI protocol: model names starting with {}",
                    names(LITELLM_ROUTES.iter().map(|r| r.0))
                ),
            ));
        }
    };
    let spec = spec_of(name).ok_or_else(|| Error::storage("litellm route without a provider"))?;
    let mut routed = config.clone();
    routed.insert("model".into(), Value::String(bare));
    // litellm reads keys from its own variables, never `api_key`.
    routed.remove("api_key");
    if let Some(key) = key_var.and_then(env) {
        routed.insert("api_key".into(), Value::String(key));
    }
    if name == "azure_openai" {
        let mut kwargs = Map::new();
        for (key, var) in [
            ("api_key", "AZURE_API_KEY"),
            ("azure_endpoint", "AZURE_API_BASE"),
            ("api_version", "AZURE_API_VERSION"),
        ] {
            if let Some(v) = env(var) {
                kwargs.insert(key.into(), Value::String(v));
            }
        }
        routed.insert("azure_kwargs".into(), Value::Object(kwargs));
    }
    endpoint(spec, &routed, field, base, env, "LLM_")
}

/// The configured value of `key` in the LLM section's keys.
fn llm_keys(spec: &ProviderSpec) -> Vec<&'static str> {
    let mut keys = vec![
        "model",
        "api_key",
        "temperature",
        "max_tokens",
        "top_p",
        "enable_vision",
    ];
    keys.extend_from_slice(LLM_ACCEPTED);
    if let Some(k) = spec.base_url_key {
        keys.push(k);
    }
    if spec.name.starts_with("azure_openai") {
        keys.push("azure_kwargs");
    }
    keys
}

impl Config {
    /// This configuration with mem0's configuration dictionary applied (see
    /// the [module](crate::mem0_config) documentation for what is read).
    /// Unset values keep this configuration's (for example `OPENAI_API_KEY`
    /// from the environment, as the openai SDK reads it). Providers' own
    /// variables (`DEEPSEEK_API_KEY`, …) are not read: see
    /// [`Config::apply_mem0_with`].
    pub fn apply_mem0(self, value: &Value) -> Result<Self> {
        self.apply_mem0_with(value, &|_| None)
    }

    /// [`Config::apply_mem0`], with `env` answering the variables mem0 reads
    /// for a provider's key and URL (`DEEPSEEK_API_KEY`, `VLLM_BASE_URL`,
    /// `LLM_AZURE_ENDPOINT`, …) when the dictionary leaves them out.
    pub fn apply_mem0_with(
        mut self,
        value: &Value,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let top = object(value, "config")?;
        let mut instructions = Vec::new();
        for (key, v) in top {
            match key.as_str() {
                "llm" | "embedder" | "vector_store" | "version" | "history_db_path" => {}
                "custom_instructions"
                | "custom_fact_extraction_prompt"
                | "custom_update_memory_prompt"
                | "custom_prompt" => {
                    if let Some(text) = string(top, key, "config")?.filter(|t| !t.trim().is_empty())
                    {
                        instructions.push(text);
                    }
                }
                "graph_store" if !v.is_null() => {
                    return Err(Error::invalid(
                        "graph_store",
                        "Homi has no graph store: memories are facts, found by meaning and by keyword (leave graph_store out)",
                    ));
                }
                "reranker" if !v.is_null() => {
                    self.memory.reranker = Some(reranker(top)?);
                }
                "graph_store" | "reranker" => {}
                other => {
                    return Err(Error::invalid(
                        other,
                        "is not a key of mem0's configuration (llm, embedder, vector_store, custom_instructions, history_db_path, version)",
                    ));
                }
            }
        }
        if !instructions.is_empty() {
            self.memory.extraction_instructions = Some(instructions.join("\n\n"));
        }
        let env_provider = self.provider.clone();
        let mut llm_named = false;
        if let Some((name, llm)) = section(top, "llm")? {
            let field = "llm.config";
            let endpoint = match name.as_str() {
                "litellm" => {
                    check_keys(&llm, field, &llm_keys(&spec("litellm")))?;
                    litellm(&llm, field, &env_provider, env)?
                }
                other => {
                    let spec = spec_of(other).ok_or_else(|| {
                        Error::invalid(
                            "llm.provider",
                            format!(
                                "'{other}' does not speak the OpenAI protocol Homi uses; Homi supports {} (any other OpenAI-compatible server through 'openai' and openai_base_url)",
                                names(LLM_PROVIDERS.iter().map(|p| p.name))
                            ),
                        )
                    })?;
                    check_keys(&llm, field, &llm_keys(spec))?;
                    endpoint(spec, &llm, field, &env_provider, env, "LLM_")?
                }
            };
            if truthy(&llm, "enable_vision") {
                return Err(Error::invalid(
                    "llm.config.enable_vision",
                    "Homi remembers text only: image parts of messages are left out (leave enable_vision out)",
                ));
            }
            let mut provider = endpoint.provider;
            provider.chat_model = endpoint
                .model
                .or_else(|| endpoint.spec.default_model.map(str::to_owned))
                .unwrap_or(env_provider.chat_model.clone());
            provider.sampling.temperature = float(&llm, "temperature", field, 2.0)?;
            provider.sampling.top_p = float(&llm, "top_p", field, 1.0)?;
            provider.sampling.max_tokens =
                number(&llm, "max_tokens", field)?.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
            llm_named = provider.base_url != env_provider.base_url
                || provider.azure.is_some()
                || !same_key(&provider, &env_provider);
            self.provider = provider;
        }
        match section(top, "embedder")? {
            Some((name, embedder))
                if LOCAL_EMBEDDERS.contains(&name.as_str())
                    && !(name == "huggingface"
                        && embedder
                            .get("huggingface_base_url")
                            .is_some_and(|v| !v.is_null())) =>
            {
                // mem0's in-process embedders: Homi's local one, with the model
                // named (a Hugging Face repository id; a bare
                // sentence-transformers name gets its organisation).
                self.embedder.kind = EmbedderKind::Local;
                check_keys(
                    &embedder,
                    "embedder.config",
                    &["model", "embedding_dims", "model_kwargs"],
                )?;
                if let Some(model) = string(&embedder, "model", "embedder.config")? {
                    self.embedder.model = Some(local_model_name(model));
                }
                if let Some(dims) = number(&embedder, "embedding_dims", "embedder.config")? {
                    self.embedder.dims = Some(dims as usize);
                }
            }
            Some((name, embedder)) => {
                let field = "embedder.config";
                let (spec, embedder) = if name == "huggingface" {
                    // Text Embeddings Inference: its OpenAI-compatible API.
                    let mut e = embedder.clone();
                    let url = e.remove("huggingface_base_url").unwrap_or(Value::Null);
                    e.insert("openai_base_url".into(), url);
                    if e.get("api_key").is_none_or(Value::is_null) {
                        e.insert(
                            "api_key".into(),
                            Value::String(
                                env("HUGGINGFACE_API_KEY").unwrap_or_else(|| "hf".into()),
                            ),
                        );
                    }
                    e.entry("model").or_insert(Value::String("tei".into()));
                    (spec_of("openai"), e)
                } else if OPENAI_EMBEDDERS.contains(&name.as_str()) {
                    (spec_of(&name), embedder)
                } else {
                    (None, embedder)
                };
                let Some(spec) = spec else {
                    return Err(Error::invalid(
                        "embedder.provider",
                        format!(
                            "'{name}' does not speak the OpenAI protocol Homi uses; Homi supports {} and, in process, {}",
                            names(OPENAI_EMBEDDERS.iter().copied()),
                            names(LOCAL_EMBEDDERS.iter().copied()),
                        ),
                    ));
                };
                let mut keys = vec!["model", "api_key", "embedding_dims"];
                keys.extend(spec.base_url_key);
                if spec.name == "azure_openai" {
                    keys.push("azure_kwargs");
                }
                check_keys(&embedder, field, &keys)?;
                // The embedder's server starts from the environment's, not the
                // chat model's: mem0 configures each on its own.
                let endpoint = endpoint(spec, &embedder, field, &env_provider, env, "EMBEDDING_")?;
                self.embedder.kind = EmbedderKind::OpenAi;
                let (default_model, default_dims) = match spec.default_embedding {
                    Some((m, d)) => (Some(m.to_owned()), d),
                    None => (None, None),
                };
                if let Some(model) = endpoint.model.or(default_model) {
                    self.embedder.model = Some(model);
                }
                self.embedder.dims = number(&embedder, "embedding_dims", field)?
                    .map(|d| d as usize)
                    .or(default_dims)
                    .or(self.embedder.dims);
                self.embedder.provider = Some(endpoint.provider);
            }
            // No embedder named: mem0's default, OpenAI's with the
            // environment's key, even when the chat model is elsewhere.
            None if llm_named => self.embedder.provider = Some(env_provider.clone()),
            None => {}
        }
        // One server for both: no separate embedder provider.
        if self
            .embedder
            .provider
            .as_ref()
            .is_some_and(|e| same_server(e, &self.provider))
        {
            self.embedder.provider = None;
        }
        if let Some((provider, store)) = section(top, "vector_store")? {
            self.apply_mem0_store(&provider, &store)?;
        }
        Ok(self)
    }

    fn apply_mem0_store(&mut self, provider: &str, store: &Map<String, Value>) -> Result<()> {
        let field = "vector_store.config";
        const HOMI_STORES: &str = "Homi keeps memories in its own store: SQLite in a local directory \
             (vector_store 'qdrant', 'chroma', 'faiss' or 'sqlite' with a path) or Postgres with pgvector \
             ('pgvector' or 'supabase' with a connection string). README's \"Coming from mem0\" says how \
             to bring memories over";
        // On Postgres a collection is a schema of its own (on SQLite a file).
        let collection = match provider {
            "pgvector" | "supabase" => {
                own_collection(string(store, "collection_name", field)?.as_deref())?
            }
            _ => None,
        };
        let database_url = match provider {
            p if EMBEDDED_STORES.contains(&p) => {
                let server = ["host", "port", "url", "api_key", "tenant", "client"]
                    .iter()
                    .find(|k| store.get(**k).is_some_and(|v| !v.is_null()));
                if let Some(key) = server {
                    return Err(Error::invalid(
                        format!("{field}.{key}"),
                        format!("a {p} server is not a store Homi uses. {HOMI_STORES}"),
                    ));
                }
                let known: &[&str] = match p {
                    "qdrant" => &[
                        "path",
                        "collection_name",
                        "embedding_model_dims",
                        "on_disk",
                        "https",
                    ],
                    "chroma" => &["path", "collection_name"],
                    _ => &[
                        "path",
                        "collection_name",
                        "embedding_model_dims",
                        "distance_strategy",
                        "normalize_L2",
                    ],
                };
                check_keys(store, field, known)?;
                let file = embedded_file(string(store, "collection_name", field)?.as_deref())?;
                match string(store, "path", field)? {
                    Some(dir) => format!("sqlite://{}/{file}", dir.trim_end_matches('/')),
                    // No directory: Homi's own default place (its file named
                    // for the collection, as in a directory).
                    None if file != "homi.db" => match self.database_url.strip_suffix("homi.db") {
                        Some(dir) => format!("{dir}{file}"),
                        None => self.database_url.clone(),
                    },
                    None => self.database_url.clone(),
                }
            }
            "sqlite" => {
                check_keys(
                    store,
                    field,
                    &["path", "db_path", "embedding_model_dims", "collection_name"],
                )?;
                let path = match string(store, "path", field)? {
                    Some(p) => Some(p),
                    None => string(store, "db_path", field)?,
                };
                match path {
                    Some(p) if p.starts_with("sqlite:") => p,
                    Some(p) => format!("sqlite://{p}"),
                    None => self.database_url.clone(),
                }
            }
            "pgvector" => {
                check_keys(
                    store,
                    field,
                    &[
                        "connection_string",
                        "user",
                        "password",
                        "host",
                        "port",
                        "dbname",
                        "embedding_model_dims",
                        "collection_name",
                        "index_method",
                        "index_measure",
                        "hnsw",
                        "diskann",
                        "minconn",
                        "maxconn",
                        "sslmode",
                    ],
                )?;
                match string(store, "connection_string", field)? {
                    Some(url) => url,
                    None => {
                        let part = |k: &str| string(store, k, field);
                        let (Some(user), Some(host), Some(dbname)) =
                            (part("user")?, part("host")?, part("dbname")?)
                        else {
                            return Err(Error::invalid(
                                field,
                                "pgvector needs connection_string, or user, host and dbname (password and port optional)",
                            ));
                        };
                        let password = part("password")?
                            .map(|p| format!(":{}", url_escape(&p)))
                            .unwrap_or_default();
                        let port = number(store, "port", field)?.unwrap_or(5432);
                        format!(
                            "postgresql://{}{password}@{host}:{port}/{dbname}",
                            url_escape(&user)
                        )
                    }
                }
            }
            "supabase" => {
                check_keys(
                    store,
                    field,
                    &[
                        "connection_string",
                        "embedding_model_dims",
                        "collection_name",
                        "index_method",
                        "index_measure",
                    ],
                )?;
                string(store, "connection_string", field)?.ok_or_else(|| {
                    Error::invalid(
                        format!("{field}.connection_string"),
                        "supabase needs the database's connection string",
                    )
                })?
            }
            other => {
                return Err(Error::invalid(
                    "vector_store.provider",
                    format!("'{other}' is not a store Homi uses. {HOMI_STORES}"),
                ));
            }
        };
        self.database_url = database_url;
        self.collection = collection;
        if let Some(dims) = number(store, "embedding_model_dims", field)? {
            match self.embedder.dims {
                Some(d) if d as u64 != dims => {
                    return Err(Error::invalid(
                        format!("{field}.embedding_model_dims"),
                        format!("is {dims} but the embedder makes {d}-dimension vectors"),
                    ));
                }
                _ => self.embedder.dims = Some(dims as usize),
            }
        }
        Ok(())
    }
}

/// A local model's Hugging Face id: a bare sentence-transformers name gets
/// its organisation.
fn local_model_name(model: String) -> String {
    if model.contains('/') {
        model
    } else {
        format!("sentence-transformers/{model}")
    }
}

/// The embedding model, as Homi names it, that made the vectors of a mem0
/// store configured with `value`: its `embedder` section's `model`, or that
/// provider's default in mem0 (mem0's default embedder: OpenAI's
/// `text-embedding-3-small`).
///
/// ```
/// use homi_core::mem0_config::mem0_embedding_model;
/// use serde_json::json;
/// assert_eq!(mem0_embedding_model(&json!({})).unwrap(), "text-embedding-3-small");
/// let hf = json!({"embedder": {"provider": "huggingface", "config": {"model": "all-MiniLM-L6-v2"}}});
/// assert_eq!(mem0_embedding_model(&hf).unwrap(), "sentence-transformers/all-MiniLM-L6-v2");
/// ```
pub fn mem0_embedding_model(value: &Value) -> Result<String> {
    let top = object(value, "config")?;
    let Some((name, embedder)) = section(top, "embedder")? else {
        return Ok(crate::config::DEFAULT_EMBEDDING_MODEL.to_owned());
    };
    let model = string(&embedder, "model", "embedder.config")?;
    if LOCAL_EMBEDDERS.contains(&name.as_str()) {
        // mem0's defaults for its in-process embedders.
        let default = if name == "fastembed" {
            "thenlper/gte-large"
        } else {
            "multi-qa-MiniLM-L6-cos-v1"
        };
        return Ok(local_model_name(
            model.unwrap_or_else(|| default.to_owned()),
        ));
    }
    model
        .or_else(|| {
            spec_of(&name)
                .and_then(|s| s.default_embedding)
                .map(|(m, _)| m.to_owned())
        })
        .ok_or_else(|| {
            Error::invalid(
                "embedder.config.model",
                format!("name the model mem0's '{name}' embedder used"),
            )
        })
}

/// mem0's `reranker` section: `llm_reranker`, scored by Homi's chat model.
fn reranker(top: &Map<String, Value>) -> Result<crate::config::RerankerConfig> {
    let (name, config) = section(top, "reranker")?.unwrap_or_default();
    if name != "llm_reranker" {
        return Err(Error::invalid(
            "reranker.provider",
            format!(
                "'{name}' is a model Homi does not run; 'llm_reranker' reranks with the chat model \
                 (the llm section), and without a reranker Homi ranks by meaning and keyword together"
            ),
        ));
    }
    let field = "reranker.config";
    // The model is the chat model: another one named here cannot be honoured.
    for key in ["llm", "provider", "model", "api_key"] {
        if config.get(key).is_some_and(|v| !v.is_null()) {
            return Err(Error::invalid(
                format!("{field}.{key}"),
                "llm_reranker scores with the chat model of the llm section (leave it out)",
            ));
        }
    }
    check_keys(
        &config,
        field,
        &["top_k", "scoring_prompt", "temperature", "max_tokens"],
    )?;
    Ok(crate::config::RerankerConfig {
        top_k: number(&config, "top_k", field)?
            .map(|n| n as usize)
            .filter(|&n| n > 0),
        prompt: string(&config, "scoring_prompt", field)?.filter(|p| !p.trim().is_empty()),
    })
}

/// The file of Homi's store for a mem0 collection in a directory: mem0's
/// default collection (`mem0`) is `homi.db`, another one `homi-<name>.db`, so
/// that collections in one directory never see each other's memories.
fn embedded_file(collection: Option<&str>) -> Result<String> {
    Ok(match own_collection(collection)? {
        None => "homi.db".to_owned(),
        Some(name) => format!("homi-{name}.db"),
    })
}

/// A mem0 `collection_name` other than mem0's default (`mem0`), checked.
fn own_collection(collection: Option<&str>) -> Result<Option<String>> {
    match collection.map(str::trim) {
        None | Some("") | Some("mem0") => Ok(None),
        Some(name) => match crate::config::collection_name(name) {
            Ok(n) => Ok(Some(n.to_owned())),
            Err(Error::InvalidInput { reason, .. }) => Err(Error::invalid(
                "vector_store.config.collection_name",
                reason,
            )),
            Err(e) => Err(e),
        },
    }
}

/// What to tell a user whose mem0 configuration names an embedded vector
/// store holding mem0's memories, and no Homi store there yet: how to bring
/// the memories over. `None` otherwise.
pub fn mem0_data_notice(value: &Value) -> Option<String> {
    let top = value.as_object()?;
    let (provider, store) = section(top, "vector_store").ok()??;
    let dir = std::path::PathBuf::from(string(&store, "path", "").ok()??);
    let collection = string(&store, "collection_name", "")
        .ok()
        .flatten()
        .unwrap_or_else(|| "mem0".to_owned());
    let file = embedded_file(Some(&collection)).ok()?;
    if dir.join(&file).exists() {
        return None;
    }
    let shown = dir.display();
    match provider.as_str() {
        "qdrant" if dir.join("collection").join(&collection).is_dir() => Some(format!(
            "{shown} holds mem0's Qdrant memories (collection '{collection}'); Homi keeps its own \
             store beside them ({shown}/{file}). Bring them over once with \
             homi.import_mem0(config), the config given to mem0"
        )),
        "chroma" if dir.join("chroma.sqlite3").exists() => Some(format!(
            "{shown} holds mem0's Chroma memories, which Homi cannot read; Homi keeps its own store \
             beside them ({shown}/{file}): read them with mem0 (Memory.get_all) and add each to \
             Homi with add(..., infer=False)"
        )),
        "faiss" if dir.join(format!("{collection}.faiss")).exists() => Some(format!(
            "{shown} holds mem0's FAISS memories, which Homi cannot read; Homi keeps its own store \
             beside them ({shown}/{file}): read them with mem0 (Memory.get_all) and add each to \
             Homi with add(..., infer=False)"
        )),
        _ => None,
    }
}

fn same_key(a: &ProviderConfig, b: &ProviderConfig) -> bool {
    use secrecy::ExposeSecret;
    a.api_key.as_ref().map(|k| k.expose_secret().to_owned())
        == b.api_key.as_ref().map(|k| k.expose_secret().to_owned())
}

fn same_server(a: &ProviderConfig, b: &ProviderConfig) -> bool {
    a.base_url == b.base_url && a.azure == b.azure && same_key(a, b)
}

/// Percent-encodes what may not stand in a URL's user or password.
fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use secrecy::ExposeSecret;
    use serde_json::json;

    use super::*;

    fn key(p: &ProviderConfig) -> Option<String> {
        p.api_key.as_ref().map(|k| k.expose_secret().to_owned())
    }

    #[test]
    fn the_original_memory_agent_config_reads() {
        // The shape memory-agent.py passes to mem0's Memory.from_config.
        let c = Config::default()
            .apply_mem0(&json!({
                "llm": {"provider": "openai", "config": {"model": "gpt-4o-mini"}},
                "vector_store": {"provider": "supabase", "config": {
                    "connection_string": "postgresql://u:p@localhost:5432/postgres",
                    "collection_name": "memories"
                }}
            }))
            .unwrap();
        assert_eq!(c.provider.chat_model, "gpt-4o-mini");
        assert_eq!(c.database_url, "postgresql://u:p@localhost:5432/postgres");
        // Its collection is a schema of its own; mem0's default is the default schema.
        assert_eq!(c.collection.as_deref(), Some("memories"));
        let pg = |name: &str| {
            Config::default()
                .apply_mem0(&json!({"vector_store": {"provider": "pgvector", "config": {
                "connection_string": "postgresql://u@h/db", "collection_name": name}}}))
        };
        assert_eq!(pg("mem0").unwrap().collection, None);
        assert_eq!(pg("work").unwrap().collection.as_deref(), Some("work"));
        let err = pg("no/slashes").unwrap_err();
        assert!(
            err.to_string()
                .contains("vector_store.config.collection_name"),
            "{err}"
        );
    }

    #[test]
    fn mem0_readme_quickstart_config_reads() {
        // mem0's own quickstart: Qdrant on disk, OpenAI for both models.
        let env = Config::default().with_openai_api_key("sk-env");
        let c = env
            .apply_mem0(&json!({
                "vector_store": {"provider": "qdrant", "config": {"collection_name": "test", "path": "/tmp/q", "on_disk": true}},
                "llm": {"provider": "openai", "config": {"model": "gpt-4.1-nano", "temperature": 0.2, "max_tokens": 2000, "top_p": 0.9, "top_k": 1}},
                "embedder": {"provider": "openai", "config": {"model": "text-embedding-3-small"}},
                "history_db_path": "/tmp/history.db",
                "version": "v1.1"
            }))
            .unwrap();
        assert_eq!(c.database_url, "sqlite:///tmp/q/homi-test.db");
        assert_eq!(c.provider.chat_model, "gpt-4.1-nano");
        let s = c.provider.sampling;
        assert_eq!(
            (s.temperature, s.max_tokens, s.top_p),
            (Some(0.2), Some(2000), Some(0.9))
        );
        // One server for both: no separate embedder provider.
        assert!(c.embedder.provider.is_none());
        assert_eq!(key(c.embedding_provider()).as_deref(), Some("sk-env"));
        for (store, path) in [("chroma", "/data/c"), ("faiss", "/data/f/")] {
            let c = Config::default()
                .apply_mem0(&json!({"vector_store": {"provider": store, "config": {"path": path}}}))
                .unwrap();
            assert_eq!(
                c.database_url,
                format!("sqlite://{}/homi.db", path.trim_end_matches('/'))
            );
        }
        // Collections in one directory: one store each.
        let c = Config::default()
            .apply_mem0(&json!({"vector_store": {"provider": "qdrant", "config": {"path": "/q", "collection_name": "work"}}}))
            .unwrap();
        assert_eq!(c.database_url, "sqlite:///q/homi-work.db");
        let err = Config::default()
            .apply_mem0(&json!({"vector_store": {"provider": "qdrant", "config": {"path": "/q", "collection_name": "../x"}}}))
            .unwrap_err();
        assert!(err.to_string().contains("collection_name"), "{err}");
        // No path: Homi's default place, a file per collection.
        let c = Config::default()
            .apply_mem0(&json!({"vector_store": {"provider": "qdrant", "config": {}}}))
            .unwrap();
        assert_eq!(c.database_url, Config::default().database_url);
        let c = Config::default()
            .with_database_url("sqlite:///home/ada/.homi/homi.db")
            .apply_mem0(&json!({"vector_store": {"provider": "qdrant", "config": {"collection_name": "x"}}}))
            .unwrap();
        assert_eq!(c.database_url, "sqlite:///home/ada/.homi/homi-x.db");
    }

    #[test]
    fn providers_by_their_mem0_names() {
        let env = |name: &str| match name {
            "DEEPSEEK_API_KEY" => Some("sk-deep".to_owned()),
            "GROQ_API_KEY" => Some("gsk".to_owned()),
            "VLLM_BASE_URL" => Some("http://gpu:8000/v1".to_owned()),
            _ => None,
        };
        let base = Config::default().with_openai_api_key("sk-openai");
        for (provider, config, url, api_key, model) in [
            (
                "deepseek",
                json!({}),
                "https://api.deepseek.com",
                Some("sk-deep"),
                "deepseek-chat",
            ),
            (
                "groq",
                json!({"model": "llama3-70b-8192"}),
                "https://api.groq.com/openai/v1",
                Some("gsk"),
                "llama3-70b-8192",
            ),
            (
                "ollama",
                json!({"model": "llama3.1"}),
                "http://localhost:11434/v1",
                Some("ollama"),
                "llama3.1",
            ),
            (
                "ollama",
                json!({"model": "q", "ollama_base_url": "http://box:11434/"}),
                "http://box:11434/v1",
                Some("ollama"),
                "q",
            ),
            (
                "lmstudio",
                json!({"model": "m"}),
                "http://localhost:1234/v1",
                Some("lm-studio"),
                "m",
            ),
            (
                "vllm",
                json!({}),
                "http://gpu:8000/v1",
                Some("vllm-api-key"),
                "Qwen/Qwen2.5-32B-Instruct",
            ),
            (
                "xai",
                json!({"api_key": "xk", "xai_base_url": "http://x.test/v1"}),
                "http://x.test/v1",
                Some("xk"),
                "grok-4.3",
            ),
            (
                "together",
                json!({"api_key": "tk", "model": "meta/llama"}),
                "https://api.together.xyz/v1",
                Some("tk"),
                "meta/llama",
            ),
            (
                "litellm",
                json!({"model": "groq/llama-3.1-8b"}),
                "https://api.groq.com/openai/v1",
                Some("gsk"),
                "llama-3.1-8b",
            ),
            (
                "litellm",
                json!({"model": "ollama/llama3"}),
                "http://localhost:11434/v1",
                Some("ollama"),
                "llama3",
            ),
        ] {
            let c = base
                .clone()
                .apply_mem0_with(
                    &json!({"llm": {"provider": provider, "config": config}}),
                    &env,
                )
                .unwrap();
            assert_eq!(c.provider.base_url.as_deref(), Some(url), "{provider}");
            assert_eq!(key(&c.provider).as_deref(), api_key, "{provider}");
            assert_eq!(c.provider.chat_model, model, "{provider}");
            // mem0's default embedder stays OpenAI's, with the environment's key.
            assert_eq!(
                key(c.embedding_provider()).as_deref(),
                Some("sk-openai"),
                "{provider}"
            );
            assert_eq!(c.embedding_provider().base_url, None, "{provider}");
        }
        // A provider's key is never the OpenAI key.
        let err = base
            .clone()
            .apply_mem0(&json!({"llm": {"provider": "deepseek"}}))
            .unwrap_err();
        assert!(err.to_string().contains("DEEPSEEK_API_KEY"), "{err}");
    }

    #[test]
    fn azure_and_separate_embedder_servers() {
        let c = Config::default()
            .apply_mem0(&json!({
                "llm": {"provider": "azure_openai", "config": {"model": "gpt-4o", "azure_kwargs": {
                    "api_key": "az", "azure_deployment": "chat-dep", "azure_endpoint": "https://r.openai.azure.com", "api_version": "2024-10-21"}}},
                "embedder": {"provider": "ollama", "config": {"model": "nomic-embed-text", "ollama_base_url": "http://emb:11434", "embedding_dims": 768}}
            }))
            .unwrap();
        let azure = c.provider.azure.as_ref().unwrap();
        assert_eq!(
            (azure.deployment.as_str(), azure.api_version.as_str()),
            ("chat-dep", "2024-10-21")
        );
        assert_eq!(
            c.provider.base_url.as_deref(),
            Some("https://r.openai.azure.com")
        );
        let e = c.embedding_provider();
        assert_eq!(
            (e.base_url.as_deref(), e.azure.is_none()),
            (Some("http://emb:11434/v1"), true)
        );
        assert_eq!(
            (c.embedder.model.as_deref(), c.embedder.dims),
            (Some("nomic-embed-text"), Some(768))
        );
        assert_eq!(c.embedder.kind, EmbedderKind::OpenAi);
        let env = |n: &str| (n == "EMBEDDING_AZURE_OPENAI_API_KEY").then(|| "ek".to_owned());
        let err = Config::default()
            .apply_mem0_with(
                &json!({"embedder": {"provider": "azure_openai", "config": {"model": "e"}}}),
                &env,
            )
            .unwrap_err();
        assert!(err.to_string().contains("azure_endpoint"), "{err}");
        let err = Config::default()
            .apply_mem0(&json!({"llm": {"provider": "azure_openai", "config": {"azure_kwargs": {"azure_endpoint": "https://r"}}}}))
            .unwrap_err();
        assert!(err.to_string().contains("api_key"), "{err}");
    }

    #[test]
    fn local_embedders_and_dims() {
        for (provider, model, want) in [
            (
                "huggingface",
                "all-MiniLM-L6-v2",
                "sentence-transformers/all-MiniLM-L6-v2",
            ),
            (
                "fastembed",
                "BAAI/bge-small-en-v1.5",
                "BAAI/bge-small-en-v1.5",
            ),
        ] {
            let c = Config::default()
                .apply_mem0(
                    &json!({"embedder": {"provider": provider, "config": {"model": model}}}),
                )
                .unwrap();
            assert_eq!(c.embedder.kind, EmbedderKind::Local, "{provider}");
            assert_eq!(c.embedder.model.as_deref(), Some(want), "{provider}");
        }
        // A Text Embeddings Inference server: the OpenAI protocol.
        let c = Config::default()
            .apply_mem0(&json!({"embedder": {"provider": "huggingface", "config": {"huggingface_base_url": "http://tei:8080/v1"}}}))
            .unwrap();
        assert_eq!(c.embedder.kind, EmbedderKind::OpenAi);
        assert_eq!(
            c.embedding_provider().base_url.as_deref(),
            Some("http://tei:8080/v1")
        );
        let pg = Config::default()
            .apply_mem0(&json!({"vector_store": {"provider": "pgvector", "config": {
                "user": "me", "password": "p@ss", "host": "h", "dbname": "d"}}}))
            .unwrap();
        assert_eq!(pg.database_url, "postgresql://me:p%40ss@h:5432/d");
        let sqlite = Config::default()
            .apply_mem0(&json!({"vector_store": {"provider": "sqlite", "config": {"path": "/tmp/m.db", "embedding_model_dims": 64}}}))
            .unwrap();
        assert_eq!(
            (sqlite.database_url.as_str(), sqlite.embedder.dims),
            ("sqlite:///tmp/m.db", Some(64))
        );
    }

    #[test]
    fn instructions_from_every_mem0_version() {
        let c = Config::default()
            .apply_mem0(&json!({"custom_instructions": "Only remember food.", "custom_fact_extraction_prompt": "Write in French."}))
            .unwrap();
        let text = c.memory.extraction_instructions.unwrap();
        assert!(
            text.contains("Only remember food.") && text.contains("Write in French."),
            "{text}"
        );
        // Null sections, as a pydantic dump has them, are absent.
        let c = Config::default()
            .apply_mem0(&json!({"graph_store": null, "reranker": null, "custom_instructions": null,
                "vector_store": {"provider": "qdrant", "config": {"path": "/q", "host": null, "url": null, "embedding_model_dims": 1536}}}))
            .unwrap();
        assert_eq!(c.database_url, "sqlite:///q/homi.db");
    }

    #[test]
    fn mem0_data_where_the_store_goes_gets_a_notice() {
        let dir = tempfile::tempdir().unwrap();
        let config = json!({"vector_store": {"provider": "qdrant", "config": {"path": dir.path().to_str().unwrap()}}});
        assert_eq!(mem0_data_notice(&config), None, "nothing of mem0's there");
        std::fs::create_dir_all(dir.path().join("collection").join("mem0")).unwrap();
        let notice = mem0_data_notice(&config).unwrap();
        assert!(notice.contains("homi.import_mem0(config)"), "{notice}");
        std::fs::write(dir.path().join("homi.db"), b"").unwrap();
        assert_eq!(
            mem0_data_notice(&config),
            None,
            "Homi's store is there already"
        );
    }

    #[test]
    fn what_homi_cannot_honour_is_named() {
        for (bad, names) in [
            (json!({"llm": {"provider": "anthropic"}}), "llm.provider"),
            (
                json!({"embedder": {"provider": "gemini"}}),
                "embedder.provider",
            ),
            (
                json!({"vector_store": {"provider": "pinecone"}}),
                "Coming from mem0",
            ),
            (
                json!({"vector_store": {"provider": "qdrant", "config": {"host": "q", "port": 6333}}}),
                "vector_store.config.host",
            ),
            (
                json!({"vector_store": {"provider": "chroma", "config": {"api_key": "k", "tenant": "t"}}}),
                "vector_store.config.api_key",
            ),
            (
                json!({"vector_store": {"provider": "supabase", "config": {}}}),
                "connection_string",
            ),
            (json!({"llm": {"config": {"model": 3}}}), "llm.config.model"),
            (
                json!({"llm": {"config": {"modle": "x"}}}),
                "llm.config.modle",
            ),
            (
                json!({"llm": {"config": {"temperature": 7}}}),
                "llm.config.temperature",
            ),
            (
                json!({"llm": {"config": {"enable_vision": true}}}),
                "enable_vision",
            ),
            (
                json!({"llm": {"provider": "litellm", "config": {"model": "anthropic/claude"}}}),
                "litellm",
            ),
            (
                json!({"graph_store": {"provider": "neo4j"}}),
                "no graph store",
            ),
            (
                json!({"reranker": {"provider": "cohere"}}),
                "reranker.provider",
            ),
            (
                json!({"reranker": {"provider": "llm_reranker", "config": {"model": "gpt-5-mini"}}}),
                "reranker.config.model",
            ),
            (
                json!({"embedder": {"config": {"embedding_dims": 64}}, "vector_store": {"provider": "sqlite", "config": {"embedding_model_dims": 32}}}),
                "embedding_model_dims",
            ),
            (json!({"colour": 1}), "colour"),
            (json!("not a dict"), "config"),
        ] {
            let err = Config::default().apply_mem0(&bad).unwrap_err();
            assert!(err.to_string().contains(names), "{bad}: {err}");
        }
    }
}
