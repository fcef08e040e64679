//! `homi config check`: the effective configuration with its secrets
//! redacted, and whether the store and the model provider answer.

use serde::Serialize;
use serde_json::{Value, json};

use crate::config::Config;

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it answered as it should.
    pub ok: bool,
    /// What was found, or what failed.
    pub detail: String,
}

/// The configuration as a user may see it: every setting, no secret (only
/// whether it is set).
pub fn effective(config: &Config) -> Value {
    let a = &config.auth;
    let embedder = crate::provider::effective_embedder(config);
    json!({
        "database": {
            "url": config.redacted_database_url(),
            "max_connections": config.database_max_connections,
            "min_connections": config.database_min_connections,
            "acquire_timeout_secs": config.database_acquire_timeout.as_secs(),
        },
        "provider": {
            "base_url": config.provider.base_url.clone().unwrap_or_else(|| "https://api.openai.com/v1 (OpenAI)".into()),
            "api_key": if config.provider.api_key.is_some() { "set" } else { "not set" },
            "chat_model": config.provider.chat_model,
            "timeout_secs": config.provider.timeout.as_secs_f64(),
            "deadline_secs": config.provider.deadline.as_secs(),
            "stream_idle_secs": config.provider.stream_idle_timeout.as_secs(),
            "max_retries": config.provider.max_retries,
            "azure_deployment": config.provider.azure.as_ref().map(|a| a.deployment.clone()),
            "temperature": config.provider.sampling.temperature,
            "max_tokens": config.provider.sampling.max_tokens,
            "top_p": config.provider.sampling.top_p,
        },
        "embedder": {
            "kind": config.embedder.kind.as_str(),
            "effective": embedder.as_str(),
            "model": config.embedder.model_for(embedder),
            "dims": config.embedder.dims,
            "batch_size": config.embedder.batch_size,
            "model_dir": config.embedder.model_dir.as_ref().map(|d| d.display().to_string()),
            // Its own server, when it is not the chat model's.
            "server": config.embedder.provider.as_ref().map(|p| json!({
                "base_url": p.base_url.clone().unwrap_or_else(|| "https://api.openai.com/v1 (OpenAI)".into()),
                "api_key": if p.api_key.is_some() { "set" } else { "not set" },
                "azure_deployment": p.azure.as_ref().map(|a| a.deployment.clone()),
            })),
        },
        "memory": {
            "extraction_instructions": config.memory.extraction_instructions.is_some(),
            "vector_cache_mb": config.memory.vector_cache_mb,
            "infer_context": config.memory.infer_context,
            "chat_memories": config.memory.chat_memories,
            "chat_token_budget": config.memory.chat_token_budget,
            "user_rpm": config.memory.user_rpm,
            "user_tokens_per_day": config.memory.user_tokens_per_day,
        },
        "jobs": {
            "lease_secs": config.memory.job_lease.as_secs(),
            "max_attempts": config.memory.job_max_attempts,
            "concurrency": config.memory.job_concurrency,
        },
        "auth": {
            "backend": if a.supabase.is_some() { "supabase" } else { "built-in" },
            "supabase_url": a.supabase.as_ref().map(|s| s.url.clone()),
            "jwt_secret": if a.jwt_secret.is_some() { "set" } else { "generated, kept in the store" },
            "jwt_issuer": a.jwt_issuer,
            "jwt_audience": a.jwt_audience,
            "access_token_ttl_secs": a.access_token_ttl.as_secs(),
            "session_ttl_secs": a.session_ttl.as_secs(),
            "refresh_reuse_grace_secs": a.refresh_reuse_grace.as_secs(),
            "password_length": [a.password_min_length, a.password_max_length],
            "reset_token_ttl_secs": a.reset_token_ttl.as_secs(),
            "require_email_confirmation": a.require_email_confirmation,
            "signin_max_failures": a.max_failed_signins,
            "signin_lockout_secs": a.signin_lockout.as_secs(),
            "smtp": if a.smtp_url.is_some() { "set" } else { "not set" },
            "smtp_from": a.smtp_from,
            "public_url": a.public_url,
        },
        "server": {
            "host": config.server.host,
            "port": config.server.port,
            "debug": config.server.debug,
            "request_timeout_secs": config.server.request_timeout.as_secs(),
            "header_timeout_secs": config.server.header_timeout.as_secs(),
            "keep_alive_secs": config.server.keep_alive_timeout.as_secs(),
            "body_timeout_secs": config.server.body_timeout.as_secs(),
            "max_connections": config.server.max_connections,
            "trusted_proxies": config.server.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "auth_rate_limit_per_minute": config.server.auth_rate_limit_per_minute,
            "cors_origins": config.server.cors_origins,
            "metrics_token": if config.server.metrics_token.is_some() { "set" } else { "not set (metrics open)" },
        },
    })
}

/// What the checks say, as one result: `Ok` when all passed, otherwise the
/// first failure as the error of its kind (the store's, or the provider's).
pub fn verdict(checks: &[Check]) -> crate::Result<()> {
    match checks.iter().find(|c| !c.ok) {
        None => Ok(()),
        Some(c) if c.name == "database" => Err(crate::Error::Storage(c.detail.clone().into())),
        Some(c) if c.detail.starts_with("not configured") => {
            Err(crate::Error::ProviderNotConfigured(c.detail.clone()))
        }
        Some(c) => Err(crate::Error::Provider {
            status: None,
            message: format!("the {} check failed: {}", c.name, c.detail),
            retry_after: None,
        }),
    }
}

/// Opens the store (running its migrations) and asks the embedder to embed a
/// word: does Homi work with this configuration?
#[cfg(all(feature = "memory", any(feature = "sqlite", feature = "postgres")))]
pub async fn check(config: &Config) -> Vec<Check> {
    let mut checks = Vec::new();
    let opened = crate::open::open_store(config).await;
    checks.push(match &opened {
        Ok(_) => Check {
            name: "database".into(),
            ok: true,
            detail: format!(
                "{} answers; migrations applied",
                config.redacted_database_url()
            ),
        },
        Err(e) => Check {
            name: "database".into(),
            ok: false,
            detail: e.to_string(),
        },
    });
    let kind = crate::provider::effective_embedder(config);
    if kind == crate::config::EmbedderKind::Local {
        checks.push(local_embedder_check(config).await);
    }
    checks.push(provider_check(config, kind != crate::config::EmbedderKind::Local).await);
    #[cfg(feature = "openai")]
    if checks.last().is_some_and(|c| c.ok) {
        checks.push(chat_model_check(config).await);
    }
    checks
}

/// Loads the local embedder (downloading its model when needed) and embeds a word.
#[cfg(all(feature = "memory", any(feature = "sqlite", feature = "postgres")))]
async fn local_embedder_check(config: &Config) -> Check {
    let name = "embedder".to_owned();
    let model = config
        .embedder
        .model_for(crate::config::EmbedderKind::Local);
    let embedder =
        crate::provider::open_embedder_of(config, crate::config::EmbedderKind::Local).await;
    let result = match embedder {
        Ok(Some(e)) => e.embed(&["homi config check".to_owned()]).await,
        Ok(None) => Err(crate::Error::config("HOMI_EMBEDDER", "no local embedder")),
        Err(e) => Err(e),
    };
    match result {
        Ok(out) => Check {
            name,
            ok: true,
            detail: format!(
                "the local embedder {model} answers ({} dimensions)",
                out.vectors.first().map_or(0, Vec::len)
            ),
        },
        Err(e) => Check {
            name,
            ok: false,
            detail: e.to_string(),
        },
    }
}

/// Asks the chat model for a one-word answer.
#[cfg(all(
    feature = "memory",
    feature = "openai",
    any(feature = "sqlite", feature = "postgres")
))]
async fn chat_model_check(config: &Config) -> Check {
    use crate::provider::{ChatMessage, ChatModel, ChatRequest};
    let name = "chat_model".to_owned();
    let model = match crate::provider::openai::OpenAiChatModel::new(&config.provider) {
        Ok(m) => m,
        Err(e) => {
            return Check {
                name,
                ok: false,
                detail: e.to_string(),
            };
        }
    };
    let request = ChatRequest::new(vec![ChatMessage::user("Reply with the word OK.")]);
    match model.complete(request).await {
        Ok(_) => Check {
            name,
            ok: true,
            detail: format!("the chat model {} answers", config.provider.chat_model),
        },
        Err(e) => Check {
            name,
            ok: false,
            detail: e.to_string(),
        },
    }
}

/// The provider: configured, and (when it is the embedder, `embeds`) its
/// embedder answers.
#[cfg(all(feature = "memory", any(feature = "sqlite", feature = "postgres")))]
async fn provider_check(config: &Config, embeds: bool) -> Check {
    let name = "provider".to_owned();
    if !config.provider.is_configured() {
        return Check {
            name,
            ok: false,
            detail: "not configured: set OPENAI_API_KEY, or OPENAI_BASE_URL for another OpenAI-compatible server".into(),
        };
    }
    if !embeds {
        return Check {
            name,
            ok: true,
            detail: "configured (the chat model is checked next)".into(),
        };
    }
    #[cfg(feature = "openai")]
    {
        let embedder = match crate::provider::open_embedder_of(
            config,
            crate::config::EmbedderKind::OpenAi,
        )
        .await
        {
            Ok(Some(e)) => e,
            Ok(None) => {
                return Check {
                    name,
                    ok: false,
                    detail: "not configured: set OPENAI_API_KEY, or OPENAI_BASE_URL for another OpenAI-compatible server".into(),
                };
            }
            Err(e) => {
                return Check {
                    name,
                    ok: false,
                    detail: e.to_string(),
                };
            }
        };
        match embedder.embed(&["homi config check".to_owned()]).await {
            Ok(out) => Check {
                name,
                ok: true,
                detail: format!(
                    "the embedder {} answers ({} dimensions)",
                    config
                        .embedder
                        .model_for(crate::config::EmbedderKind::OpenAi),
                    out.vectors.first().map_or(0, Vec::len)
                ),
            },
            Err(e) => Check {
                name,
                ok: false,
                detail: e.to_string(),
            },
        }
    }
    #[cfg(not(feature = "openai"))]
    {
        Check {
            name,
            ok: false,
            detail: "this build has no `openai` feature".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The effective configuration says whether a secret is set, never what
    /// it is.
    #[test]
    fn secrets_are_said_to_be_set_never_shown() {
        let mut config = Config::default()
            .with_database_url("postgres://homi:db-password@db/homi?sslpassword=tls-password")
            .with_openai_api_key("sk-provider-secret");
        config.server.metrics_token = Some("metrics-token-0123456789".to_owned().into());
        let mut embeddings = config.provider.clone();
        embeddings.base_url = Some("http://embeddings.local/v1".into());
        embeddings.api_key = Some("sk-embeddings-secret".to_owned().into());
        config.embedder.provider = Some(embeddings);
        let shown = effective(&config);
        let text = shown.to_string();
        for secret in [
            "db-password",
            "tls-password",
            "sk-provider-secret",
            "sk-embeddings-secret",
            "metrics-token",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(shown["server"]["metrics_token"], "set");
        assert_eq!(shown["provider"]["api_key"], "set");
        assert_eq!(shown["embedder"]["server"]["api_key"], "set");
        assert_eq!(
            shown["embedder"]["server"]["base_url"],
            "http://embeddings.local/v1"
        );
        assert_eq!(
            effective(&Config::default())["server"]["metrics_token"],
            "not set (metrics open)"
        );
    }
}
