//! Every error the server answers with, mapped in one place: JSON
//! `{"error": "<machine_code>", "detail": "<human sentence>"}` with the right
//! status, `WWW-Authenticate: Bearer` on 401 and `Retry-After` on 429.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use homi_core::{Error, ErrorKind};
use serde_json::json;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An answer with this status, code and sentence.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// 401 for a missing or malformed `Authorization` header.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 400 for headers that contradict each other or miss a companion.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The answer in the OpenAI API's error shape, for the `/v1` routes
    /// (`{"error": {"message", "type", "code"}}`), so OpenAI SDKs show it.
    pub fn openai_body(&self) -> serde_json::Value {
        json!({"error": {"message": self.detail, "type": self.code, "code": self.code, "param": null}})
    }

    /// The JSON body of the answer.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": self.code, "detail": self.detail})
    }

    /// 404 for a path the server does not have.
    pub fn no_route() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "there is no such endpoint",
        )
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let kind = e.kind();
        let status = match kind {
            ErrorKind::InvalidInput => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::ProviderNotConfigured | ErrorKind::Unavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorKind::ProviderUnavailable | ErrorKind::ProviderInvalidResponse => {
                StatusCode::BAD_GATEWAY
            }
            ErrorKind::ProviderTimeout => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        // The server's own failures are one code to clients; the kind is logged.
        let code = if status == StatusCode::INTERNAL_SERVER_ERROR {
            "internal"
        } else {
            kind.code()
        };
        if code.starts_with("provider_") {
            crate::metrics::record_provider_error(code);
        }
        // A cause that names the provider's address, quotes its answer or
        // a database goes to the log (in the request's span, with its id),
        // not to the client: the core's rule.
        let detail = e.told("the server's log, under this answer's x-request-id");
        Self {
            status,
            code,
            detail,
            retry_after: e.retry_after().map(|d| d.as_secs().max(1)),
        }
    }
}

impl ApiError {
    /// A request body that could not be read whole: 408 when the client
    /// stopped sending it (`HOMI_BODY_TIMEOUT_SECS`), 413 past `limit`
    /// bytes, 400 otherwise. Never a 5xx: the client's connection failed.
    pub fn unreadable_body(e: &axum::Error, limit: usize) -> Self {
        if let Some(timed_out) = cause::<crate::serve::BodyTimedOut>(e) {
            return Self::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                timed_out.to_string(),
            );
        }
        if cause::<http_body_util::LengthLimitError>(e).is_some() {
            return Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request body is larger than {limit} bytes"),
            );
        }
        Self::bad_request("the request body could not be read")
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        if let Some(timed_out) = cause::<crate::serve::BodyTimedOut>(&r) {
            return Self::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                timed_out.to_string(),
            );
        }
        let detail = r.body_text();
        match r {
            JsonRejection::JsonDataError(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", detail)
            }
            JsonRejection::JsonSyntaxError(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_json", detail)
            }
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is too large",
            ),
            other => Self::new(other.status(), "invalid_request", detail),
        }
    }
}

/// The shape of every error answer (for the OpenAPI document).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A machine-readable code, e.g. `invalid_input`, `unauthorized`.
    pub error: String,
    /// One sentence for people; names the field or header at fault.
    pub detail: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

/// The first error of type `E` in `e`'s chain of causes.
fn cause<'a, E: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a dependency said stays in the log: the provider's, Supabase's,
    /// the SMTP server's and the database's messages never reach a client.
    #[test]
    fn dependencies_words_never_reach_the_client() {
        let secret = "10.9.8.7:5432 relation homi_memories";
        let cases = [
            (
                Error::unavailable("Supabase Auth could not be reached", secret),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                Error::Storage(format!("connection to {secret} refused").into()),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                Error::Provider {
                    status: Some(500),
                    message: format!("error sending request for url (http://{secret})"),
                    retry_after: None,
                },
                StatusCode::BAD_GATEWAY,
            ),
            (
                Error::ProviderInvalidResponse {
                    reason: "not JSON".into(),
                    raw: secret.into(),
                },
                StatusCode::BAD_GATEWAY,
            ),
        ];
        for (e, status) in cases {
            let answer = ApiError::from(e);
            assert_eq!(answer.status(), status);
            let body = answer.body().to_string();
            assert!(!body.contains("10.9.8.7"), "{body}");
            assert!(body.contains("x-request-id"), "{body}");
        }
        // A client's own mistake is told as it is.
        let answer = ApiError::from(Error::invalid("limit", "must be at most 100"));
        assert!(answer.body().to_string().contains("must be at most 100"));
    }
}
