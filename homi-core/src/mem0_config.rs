//! mem0's configuration dictionary (`Memory.from_config(config)`), read into
//! a [`Config`], so a mem0 script keeps its config when it moves to Homi.
//!
//! ```
//! use homi_core::Config;
//! use serde_json::json;
//! let config = Config::default().apply_mem0(&json!({
//!     "llm": {"provider": "openai", "config": {"model": "gpt-4o-mini"}},
//!     "embedder": {"provider": "openai", "config": {"model": "text-embedding-3-small"}},
//!     "vector_store": {"provider": "supabase", "config": {
//!         "connection_string": "postgresql://postgres:pw@db.example.supabase.co:5432/postgres",
//!         "collection_name": "memories"
//!     }}
//! }))?;
//! assert!(config.database_url.starts_with("postgresql://"));
//! assert_eq!(config.provider.chat_model, "gpt-4o-mini");
//! # Ok::<(), homi_core::Error>(())
//! ```
//!
//! What is read: `llm` and `embedder` with provider `openai` (any
//! OpenAI-compatible server through `openai_base_url`; `model`, `api_key`,
//! `embedding_dims`), and `vector_store` with provider `sqlite` (`path` or
//! `db_path`), `pgvector` (`connection_string`, or `user`, `password`, `host`,
//! `port`, `dbname`) or `supabase` (`connection_string`), plus
//! `embedding_model_dims`. Homi keeps history in the same store, so
//! `history_db_path` is not needed, and it keeps every collection in its own
//! tables (`collection_name` and mem0's index options have no effect). A
//! provider Homi does not have, an unknown key, a value of the wrong type or
//! a setting that would change behaviour Homi cannot honour (custom prompts)
//! is an error that names it.

use secrecy::SecretString;
use serde_json::{Map, Value};

use crate::config::Config;
use crate::error::{Error, Result};

/// Keys mem0 accepts that do not change what Homi does.
const IGNORED_TOP: &[&str] = &["version", "history_db_path"];
const IGNORED_LLM: &[&str] = &[
    "temperature",
    "max_tokens",
    "top_p",
    "top_k",
    "enable_vision",
];
const IGNORED_STORE: &[&str] = &[
    "collection_name",
    "index_method",
    "index_measure",
    "hnsw",
    "diskann",
    "minconn",
    "maxconn",
    "sslmode",
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

/// The `{provider, config}` pair of a section, its provider checked.
fn section(
    top: &Map<String, Value>,
    name: &str,
    providers: &[&str],
) -> Result<Option<(String, Map<String, Value>)>> {
    let Some(value) = top.get(name) else {
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
    let provider = string(section, "provider", name)?.unwrap_or_else(|| providers[0].to_owned());
    if !providers.contains(&provider.as_str()) {
        return Err(Error::invalid(
            format!("{name}.provider"),
            format!(
                "'{provider}' is not supported; Homi supports {}",
                providers
                    .iter()
                    .map(|p| format!("'{p}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let config = match section.get("config") {
        None | Some(Value::Null) => Map::new(),
        Some(v) => object(v, &format!("{name}.config"))?.clone(),
    };
    Ok(Some((provider, config)))
}

fn check_keys(
    config: &Map<String, Value>,
    field: &str,
    known: &[&str],
    ignored: &[&str],
) -> Result<()> {
    for key in config.keys() {
        if !known.contains(&key.as_str()) && !ignored.contains(&key.as_str()) {
            return Err(Error::invalid(
                format!("{field}.{key}"),
                format!("is not supported (known: {})", known.join(", ")),
            ));
        }
    }
    Ok(())
}

impl Config {
    /// This configuration with mem0's configuration dictionary applied (see
    /// the [module](crate::mem0_config) documentation for what is read).
    /// Unset values keep this configuration's (for example `OPENAI_API_KEY`
    /// from the environment, as the openai SDK reads it).
    pub fn apply_mem0(mut self, value: &Value) -> Result<Self> {
        let top = object(value, "config")?;
        for key in top.keys() {
            match key.as_str() {
                "llm" | "embedder" | "vector_store" => {}
                k if IGNORED_TOP.contains(&k) => {}
                "custom_fact_extraction_prompt"
                | "custom_update_memory_prompt"
                | "custom_prompt" => {
                    return Err(Error::invalid(
                        key.as_str(),
                        "custom prompts are not supported: Homi extracts and reconciles facts in one call with its own prompt",
                    ));
                }
                other => {
                    return Err(Error::invalid(
                        other,
                        "is not a key of mem0's configuration (llm, embedder, vector_store, history_db_path, version)",
                    ));
                }
            }
        }
        let mut provider_url: Option<(String, &'static str)> = None;
        let mut provider_key: Option<(String, &'static str)> = None;
        let mut same_provider = |url: Option<String>,
                                 key: Option<String>,
                                 field: &'static str|
         -> Result<()> {
            if let Some(url) = url {
                match &provider_url {
                    Some((seen, at)) if *seen != url => {
                        return Err(Error::invalid(
                            format!("{field}.config.openai_base_url"),
                            format!(
                                "differs from {at}'s: Homi uses one provider for the chat model and the embedder"
                            ),
                        ));
                    }
                    _ => provider_url = Some((url, field)),
                }
            }
            if let Some(key) = key {
                match &provider_key {
                    Some((seen, at)) if *seen != key => {
                        return Err(Error::invalid(
                            format!("{field}.config.api_key"),
                            format!(
                                "differs from {at}'s: Homi uses one provider for the chat model and the embedder"
                            ),
                        ));
                    }
                    _ => provider_key = Some((key, field)),
                }
            }
            Ok(())
        };
        if let Some((_, llm)) = section(top, "llm", &["openai"])? {
            check_keys(
                &llm,
                "llm.config",
                &["model", "api_key", "openai_base_url"],
                IGNORED_LLM,
            )?;
            if let Some(model) = string(&llm, "model", "llm.config")? {
                self.provider.chat_model = model;
            }
            same_provider(
                string(&llm, "openai_base_url", "llm.config")?,
                string(&llm, "api_key", "llm.config")?,
                "llm",
            )?;
        }
        if let Some((provider, embedder)) =
            section(top, "embedder", &["openai", "huggingface", "fastembed"])?
            && provider != "openai"
        {
            // mem0's in-process embedders: Homi's local one, with the model
            // named (a Hugging Face repository id; a bare sentence-transformers
            // name gets its organisation).
            self.embedder.kind = crate::config::EmbedderKind::Local;
            check_keys(
                &embedder,
                "embedder.config",
                &["model", "embedding_dims"],
                &["model_kwargs"],
            )?;
            if let Some(model) = string(&embedder, "model", "embedder.config")? {
                self.embedder.model = Some(if model.contains('/') {
                    model
                } else {
                    format!("sentence-transformers/{model}")
                });
            }
            if let Some(dims) = number(&embedder, "embedding_dims", "embedder.config")? {
                self.embedder.dims = Some(dims as usize);
            }
        } else if let Some((_, embedder)) = section(top, "embedder", &["openai"])? {
            // Named in the dict: the provider's embedder, not the local one.
            self.embedder.kind = crate::config::EmbedderKind::OpenAi;
            check_keys(
                &embedder,
                "embedder.config",
                &["model", "api_key", "openai_base_url", "embedding_dims"],
                &[],
            )?;
            if let Some(model) = string(&embedder, "model", "embedder.config")? {
                self.embedder.model = Some(model);
            }
            if let Some(dims) = number(&embedder, "embedding_dims", "embedder.config")? {
                self.embedder.dims = Some(dims as usize);
            }
            same_provider(
                string(&embedder, "openai_base_url", "embedder.config")?,
                string(&embedder, "api_key", "embedder.config")?,
                "embedder",
            )?;
        }
        if let Some((url, _)) = provider_url {
            self.provider.base_url = Some(url);
        }
        if let Some((key, _)) = provider_key {
            self.provider.api_key = Some(SecretString::from(key));
        }
        if let Some((provider, store)) =
            section(top, "vector_store", &["sqlite", "pgvector", "supabase"])?
        {
            let field = "vector_store.config";
            let known: &[&str] = match provider.as_str() {
                "sqlite" => &["path", "db_path", "embedding_model_dims"],
                "pgvector" => &[
                    "connection_string",
                    "user",
                    "password",
                    "host",
                    "port",
                    "dbname",
                    "embedding_model_dims",
                ],
                _ => &["connection_string", "embedding_model_dims"],
            };
            check_keys(&store, field, known, IGNORED_STORE)?;
            self.database_url = match provider.as_str() {
                "sqlite" => {
                    let path = match string(&store, "path", field)? {
                        Some(p) => Some(p),
                        None => string(&store, "db_path", field)?,
                    };
                    match path {
                        Some(p) if p.starts_with("sqlite:") => p,
                        Some(p) => format!("sqlite://{p}"),
                        None => self.database_url.clone(),
                    }
                }
                "pgvector" => match string(&store, "connection_string", field)? {
                    Some(url) => url,
                    None => {
                        let part = |k: &str| string(&store, k, field);
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
                        let port = number(&store, "port", field)?.unwrap_or(5432);
                        format!(
                            "postgresql://{}{password}@{host}:{port}/{dbname}",
                            url_escape(&user)
                        )
                    }
                },
                _ => string(&store, "connection_string", field)?.ok_or_else(|| {
                    Error::invalid(
                        format!("{field}.connection_string"),
                        "supabase needs the database's connection string",
                    )
                })?,
            };
            if let Some(dims) = number(&store, "embedding_model_dims", field)? {
                match self.embedder.dims {
                    Some(d) if d as u64 != dims => {
                        return Err(Error::invalid(
                            format!("{field}.embedding_model_dims"),
                            format!("is {dims} but embedder.config.embedding_dims is {d}"),
                        ));
                    }
                    _ => self.embedder.dims = Some(dims as usize),
                }
            }
        }
        Ok(self)
    }
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
    }

    #[test]
    fn provider_settings_and_dims() {
        let c = Config::default()
            .apply_mem0(&json!({
                "llm": {"provider": "openai", "config": {"model": "m", "api_key": "sk-1", "openai_base_url": "http://x/v1", "temperature": 0.1}},
                "embedder": {"provider": "openai", "config": {"model": "e", "embedding_dims": 64}},
                "vector_store": {"provider": "sqlite", "config": {"path": "/tmp/m.db", "embedding_model_dims": 64}},
                "history_db_path": "/tmp/h.db",
                "version": "v1.1"
            }))
            .unwrap();
        assert_eq!(c.provider.base_url.as_deref(), Some("http://x/v1"));
        assert_eq!(c.provider.api_key.as_ref().unwrap().expose_secret(), "sk-1");
        assert_eq!(
            (c.embedder.model.as_deref(), c.embedder.dims),
            (Some("e"), Some(64))
        );
        assert_eq!(c.embedder.kind, crate::config::EmbedderKind::OpenAi);
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
            assert_eq!(
                c.embedder.kind,
                crate::config::EmbedderKind::Local,
                "{provider}"
            );
            assert_eq!(c.embedder.model.as_deref(), Some(want), "{provider}");
        }
        let err = Config::default()
            .apply_mem0(&json!({"embedder": {"provider": "ollama"}}))
            .unwrap_err();
        assert!(err.to_string().contains("huggingface"), "{err}");
        assert_eq!(c.database_url, "sqlite:///tmp/m.db");
        let pg = Config::default()
            .apply_mem0(&json!({"vector_store": {"provider": "pgvector", "config": {
                "user": "me", "password": "p@ss", "host": "h", "dbname": "d"}}}))
            .unwrap();
        assert_eq!(pg.database_url, "postgresql://me:p%40ss@h:5432/d");
    }

    #[test]
    fn what_homi_cannot_honour_is_named() {
        for (bad, names) in [
            (json!({"llm": {"provider": "anthropic"}}), "llm.provider"),
            (
                json!({"vector_store": {"provider": "qdrant"}}),
                "vector_store.provider",
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
                json!({"custom_fact_extraction_prompt": "..."}),
                "custom_fact_extraction_prompt",
            ),
            (json!({"graph_store": {}}), "graph_store"),
            (
                json!({"llm": {"config": {"openai_base_url": "http://a"}}, "embedder": {"config": {"openai_base_url": "http://b"}}}),
                "openai_base_url",
            ),
            (
                json!({"embedder": {"config": {"embedding_dims": 64}}, "vector_store": {"provider": "sqlite", "config": {"embedding_model_dims": 32}}}),
                "embedding_model_dims",
            ),
            (json!("not a dict"), "config"),
        ] {
            let err = Config::default().apply_mem0(&bad).unwrap_err();
            assert!(err.to_string().contains(names), "{bad}: {err}");
        }
    }
}
