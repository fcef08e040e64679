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

/// The configuration as a user may see it: no secret, only whether it is set.
pub fn effective(config: &Config) -> Value {
    json!({
        "database_url": config.redacted_database_url(),
        "provider": {
            "base_url": config.provider.base_url.clone().unwrap_or_else(|| "https://api.openai.com/v1 (OpenAI)".into()),
            "api_key": if config.provider.api_key.is_some() { "set" } else { "not set" },
            "chat_model": config.provider.chat_model,
            "timeout_secs": config.provider.timeout.as_secs_f64(),
            "max_retries": config.provider.max_retries,
        },
        "embedder": {
            "model": config.embedder.model,
            "dims": config.embedder.dims,
            "batch_size": config.embedder.batch_size,
        },
        "auth": {
            "backend": if config.auth.supabase.is_some() { "supabase" } else { "built-in" },
            "jwt_secret": if config.auth.jwt_secret.is_some() { "set" } else { "generated, kept in the store" },
            "smtp": if config.auth.smtp_url.is_some() { "set" } else { "not set" },
        },
        "server": {
            "host": config.server.host,
            "port": config.server.port,
            "request_timeout_secs": config.server.request_timeout.as_secs(),
            "auth_rate_limit_per_minute": config.server.auth_rate_limit_per_minute,
        },
        "jobs": {
            "lease_secs": config.memory.job_lease.as_secs(),
            "max_attempts": config.memory.job_max_attempts,
            "concurrency": config.memory.job_concurrency,
        },
    })
}

/// Opens the store (running its migrations) and asks the embedder to embed a
/// word: does Homi work with this configuration?
#[cfg(all(feature = "memory", any(feature = "sqlite", feature = "postgres")))]
pub async fn check(config: &Config) -> Vec<Check> {
    let mut checks = Vec::new();
    let opened = crate::store::open(config).await;
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
    checks.push(provider_check(config).await);
    checks
}

#[cfg(all(feature = "memory", any(feature = "sqlite", feature = "postgres")))]
async fn provider_check(config: &Config) -> Check {
    let name = "provider".to_owned();
    if !config.provider.is_configured() {
        return Check {
            name,
            ok: false,
            detail: "not configured: set OPENAI_API_KEY, or OPENAI_BASE_URL for another OpenAI-compatible server".into(),
        };
    }
    #[cfg(feature = "openai")]
    {
        use crate::provider::Embedder;
        let embedder = match crate::provider::openai::OpenAiEmbedder::new(
            &config.provider,
            &config.embedder,
        ) {
            Ok(e) => e,
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
                    config.embedder.model,
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
