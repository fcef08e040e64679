//! The OpenAPI document served at `GET /openapi.json`: generated from the
//! route annotations and the request and response types (utoipa), so it
//! cannot drift from the routes the server has.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

/// The document's frame; [`crate::app`] adds every route.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Homi",
        description = "Persistent memory for chatbots: accounts, memory-augmented chat, memories, conversations, service API keys and an OpenAI-compatible endpoint. Errors are `{\"error\", \"detail\"}`."
    ),
    modifiers(&Security),
    tags(
        (name = "Auth", description = "Accounts and auth sessions (built-in or Supabase)"),
        (name = "Chat", description = "Memory-augmented turns"),
        (name = "Memories", description = "The caller's memories"),
        (name = "Conversations", description = "The caller's conversations (`session_id`)"),
        (name = "Admin", description = "Service API keys (an API key with the admin scope)"),
        (name = "OpenAI-compatible", description = "For OpenAI SDKs pointed at Homi"),
        (name = "Health", description = "Liveness and readiness")
    )
)]
pub struct ApiDoc;

/// The three ways to call: a user's access token, or a service API key plus
/// the user it acts for.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A Homi access token (sign in)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "A service API key (homi_sk_…)",
            ))),
        );
        components.add_security_scheme(
            "user_id",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-User-Id",
                "With an API key: the user the request is for (in the key's namespace)",
            ))),
        );
    }
}
