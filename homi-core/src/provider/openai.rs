//! [`ChatModel`] and [`Embedder`] for any OpenAI-compatible server, on
//! `async-openai`, with per-attempt timeouts and retries with backoff that honour
//! `Retry-After`. A provider that stalls after its headers cannot hold a
//! caller: a call that is not streamed has a deadline for the whole of it
//! (`HOMI_PROVIDER_DEADLINE_SECS`), and a stream an idle timeout between its
//! chunks (`HOMI_PROVIDER_STREAM_IDLE_SECS`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> homi_core::Result<()> {
//! # let fake = homi_testkit::FakeProvider::start().await.unwrap();
//! use homi_core::Config;
//! use homi_core::provider::openai::{OpenAiChatModel, OpenAiEmbedder};
//! use homi_core::provider::{ChatMessage, ChatModel, ChatRequest, Embedder};
//! // Any OpenAI-compatible server; here the test kit's fake one.
//! let config = Config::default().with_openai_base_url(fake.base_url()).with_chat_model("llama3.1");
//! let model = OpenAiChatModel::new(&config.provider)?;
//! let answer = model.complete(ChatRequest::new(vec![ChatMessage::user("Hi!")])).await?;
//! assert_eq!(answer.content, "You said: Hi!");
//!
//! let embedder = OpenAiEmbedder::new(&config.provider, &config.embedder)?;
//! let out = embedder.embed(&["one".to_string(), "two".to_string()]).await?;
//! assert_eq!((out.vectors.len(), out.vectors[0].len(), out.requests), (2, 1536, 1));
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_openai::Client;
use async_openai::config::{AzureConfig, Config as ClientConfig, OpenAIConfig};
use async_openai::error::OpenAIError;
use async_openai::middleware::{HttpRequestFactory, ReqwestService};
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
    ChatCompletionStreamOptions, CreateChatCompletionRequest, ResponseFormat,
    ResponseFormatJsonSchema,
};
use async_openai::types::embeddings::{
    CreateEmbeddingRequest, CreateEmbeddingResponse, EmbeddingInput, EncodingFormat,
};
use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use secrecy::ExposeSecret;
use tower::ServiceExt;

use super::{
    ChatChunk, ChatMessage, ChatModel, ChatRequest, ChatResponse, Embedder, Embeddings, Role,
    TokenUsage, check_vectors, known_dims,
};
use crate::config::{EmbedderConfig, ProviderConfig, Sampling};
use crate::error::{Error, Result};

/// Longest `Retry-After` we wait for inside one call; longer asks are returned
/// to the caller as a rate-limit error carrying the wait.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(20);
/// Cap of the exponential backoff between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// First backoff step.
const BASE_BACKOFF: Duration = Duration::from_millis(200);

/// The final failure of a request after retries, carried through
/// `OpenAIError::Boxed` so the status and `Retry-After` survive.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("HTTP {status}: {message}")]
    Status {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
}

/// A tower service around `ReqwestService`: a timeout per attempt, and retries
/// on 429, 5xx, timeouts and connection errors.
#[derive(Clone)]
struct RetryService {
    inner: ReqwestService,
    timeout: Duration,
    max_retries: u32,
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = std::result::Result<reqwest::Response, OpenAIError>> + Send>>;

fn parse_retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn backoff(attempt: u32) -> Duration {
    let step = BASE_BACKOFF.saturating_mul(1u32 << attempt.min(10));
    let cap = step.min(MAX_BACKOFF);
    // Full jitter keeps concurrent clients from retrying in lockstep.
    cap.mul_f64(0.5 + fastrand::f64() * 0.5)
}

async fn error_message(response: reqwest::Response) -> String {
    let body = match tokio::time::timeout(Duration::from_secs(5), response.bytes()).await {
        Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        _ => return "(no readable body)".to_owned(),
    };
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        })
        .unwrap_or(body)
}

impl tower::Service<HttpRequestFactory> for RetryService {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = ResponseFuture;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::result::Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequestFactory) -> Self::Future {
        let inner = self.inner.clone();
        let timeout = self.timeout;
        let max_retries = self.max_retries;
        Box::pin(async move {
            let mut attempt: u32 = 0;
            loop {
                let outcome =
                    tokio::time::timeout(timeout, inner.clone().oneshot(request.clone())).await;
                let last = attempt >= max_retries;
                let wait = match outcome {
                    Err(_) => {
                        if last {
                            return Err(OpenAIError::Boxed(Box::new(Failure::Timeout(timeout))));
                        }
                        backoff(attempt)
                    }
                    Ok(Ok(response)) => {
                        let status = response.status();
                        if !(status.as_u16() == 429 || status.is_server_error()) {
                            return Ok(response);
                        }
                        let retry_after = parse_retry_after(response.headers());
                        let too_long = retry_after.is_some_and(|d| d > MAX_RETRY_WAIT);
                        if last || too_long {
                            let message = error_message(response).await;
                            return Err(OpenAIError::Boxed(Box::new(Failure::Status {
                                status: status.as_u16(),
                                message,
                                retry_after,
                            })));
                        }
                        tracing::warn!(
                            status = status.as_u16(),
                            attempt,
                            "model provider asked to retry"
                        );
                        retry_after.unwrap_or_else(|| backoff(attempt))
                    }
                    Ok(Err(OpenAIError::Reqwest(e)))
                        if !last && (e.is_connect() || e.is_timeout()) =>
                    {
                        tracing::warn!(error = %e, attempt, "model provider unreachable, retrying");
                        backoff(attempt)
                    }
                    Ok(Err(e)) => return Err(e),
                };
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        })
    }
}

fn map_error(e: OpenAIError) -> Error {
    match e {
        OpenAIError::Boxed(boxed) => match boxed.downcast::<Failure>() {
            Ok(f) => match *f {
                Failure::Timeout(d) => Error::ProviderTimeout(d),
                Failure::Status {
                    status,
                    message,
                    retry_after,
                } => Error::Provider {
                    status: Some(status),
                    message,
                    retry_after,
                },
            },
            Err(other) => Error::Provider {
                status: None,
                message: other.to_string(),
                retry_after: None,
            },
        },
        OpenAIError::ApiError(api) => Error::Provider {
            status: Some(api.status_code.as_u16()),
            message: api.api_error.to_string(),
            retry_after: None,
        },
        OpenAIError::JSONDeserialize(err, raw) => Error::ProviderInvalidResponse {
            reason: format!("the response is not the expected JSON ({err})"),
            raw,
        },
        OpenAIError::Reqwest(e) => {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                message.push_str(": ");
                message.push_str(&s.to_string());
                source = s.source();
            }
            Error::Provider {
                status: e.status().map(|s| s.as_u16()),
                message,
                retry_after: None,
            }
        }
        other => Error::Provider {
            status: None,
            message: other.to_string(),
            retry_after: None,
        },
    }
}

/// The message a user sees when no provider is configured.
pub const NOT_CONFIGURED: &str = "set OPENAI_API_KEY to use OpenAI, or OPENAI_BASE_URL to use any \
     OpenAI-compatible server (Ollama, vLLM, llama.cpp, …)";

/// The client's protocol: OpenAI's, or Azure OpenAI's paths and header.
type Api = std::sync::Arc<dyn ClientConfig>;

fn client(config: &ProviderConfig) -> Result<Client<Api>> {
    if !config.is_configured() {
        return Err(Error::ProviderNotConfigured(NOT_CONFIGURED.to_owned()));
    }
    // Set both explicitly: OpenAIConfig::default() would read the environment.
    let key = config
        .api_key
        .as_ref()
        .map(|k| k.expose_secret().to_owned())
        .unwrap_or_default();
    let base = config
        .base_url
        .clone()
        .unwrap_or_else(|| "https://api.openai.com/v1".to_owned());
    let api: Api = match &config.azure {
        Some(azure) => std::sync::Arc::new(
            AzureConfig::new()
                .with_api_base(base.trim_end_matches('/'))
                .with_api_key(key)
                .with_deployment_id(azure.deployment.as_str())
                .with_api_version(azure.api_version.as_str()),
        ),
        None => std::sync::Arc::new(OpenAIConfig::new().with_api_key(key).with_api_base(base)),
    };
    let http = reqwest::Client::builder()
        .connect_timeout(config.timeout.min(Duration::from_secs(10)))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| {
            Error::config(
                "OPENAI_BASE_URL",
                format!("cannot build an HTTP client: {e}"),
            )
        })?;
    let service = RetryService {
        inner: ReqwestService::new(http.clone()),
        timeout: config.timeout,
        max_retries: config.max_retries,
    };
    Ok(Client::with_config(api)
        .with_http_client(http)
        .with_http_service(service))
}

fn to_openai_message(m: &ChatMessage) -> ChatCompletionRequestMessage {
    // A client's message Homi has no words for goes as it came; one the
    // protocol cannot read at all goes as its text.
    if let Some(message) = m
        .raw
        .as_ref()
        .and_then(|raw| serde_json::from_value(raw.clone()).ok())
    {
        return message;
    }
    match m.role {
        Role::System => ChatCompletionRequestSystemMessage::from(m.content.as_str()).into(),
        Role::User => ChatCompletionRequestUserMessage::from(m.content.as_str()).into(),
        Role::Assistant => ChatCompletionRequestAssistantMessage::from(m.content.as_str()).into(),
    }
}

/// Whether `model` is one of OpenAI's reasoning models (o1, o3, o4, gpt-5),
/// which refuse `max_tokens`.
fn is_reasoning_model(model: &str) -> bool {
    let base = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    ["o1", "o3", "o4", "gpt-5"].iter().any(|p| {
        base == *p || base.starts_with(&format!("{p}-")) || base.starts_with(&format!("{p}."))
    })
}

/// `call`, or [`Error::ProviderTimeout`] once `limit` has passed.
async fn within<T>(limit: Duration, call: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or(Err(Error::ProviderTimeout(limit)))
}

/// A chat model on an OpenAI-compatible server.
#[derive(Clone)]
pub struct OpenAiChatModel {
    client: Client<Api>,
    model: String,
    deadline: Duration,
    stream_idle: Duration,
    sampling: Sampling,
}

impl std::fmt::Debug for OpenAiChatModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiChatModel")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl OpenAiChatModel {
    /// A chat model from the provider config (`MODEL_CHOICE` names the model).
    pub fn new(config: &ProviderConfig) -> Result<Self> {
        Ok(Self {
            client: client(config)?,
            model: config.chat_model.clone(),
            deadline: config.deadline,
            stream_idle: config.stream_idle_timeout,
            sampling: config.sampling,
        })
    }

    fn request(&self, request: ChatRequest, stream: bool) -> CreateChatCompletionRequest {
        // OpenAI's reasoning models take `max_completion_tokens` only; other
        // servers know `max_tokens` (mem0 draws the same line).
        let reasoning = is_reasoning_model(&self.model);
        #[allow(deprecated)]
        CreateChatCompletionRequest {
            max_tokens: self.sampling.max_tokens.filter(|_| !reasoning),
            max_completion_tokens: self.sampling.max_tokens.filter(|_| reasoning),
            model: self.model.clone(),
            messages: request.messages.iter().map(to_openai_message).collect(),
            temperature: self.sampling.temperature.or(request.temperature),
            top_p: self.sampling.top_p,
            response_format: request.json_schema.map(|s| ResponseFormat::JsonSchema {
                json_schema: ResponseFormatJsonSchema {
                    description: None,
                    name: s.name,
                    schema: s.schema,
                    strict: Some(true),
                },
            }),
            stream: stream.then_some(true),
            stream_options: stream.then_some(ChatCompletionStreamOptions {
                include_usage: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

#[async_trait]
impl ChatModel for OpenAiChatModel {
    fn model(&self) -> &str {
        &self.model
    }

    async fn complete(&self, request: ChatRequest) -> Result<ChatResponse> {
        let call = async {
            self.client
                .chat()
                .create(self.request(request, false))
                .await
                .map_err(map_error)
        };
        let response = within(self.deadline, call).await?;
        let usage = response
            .usage
            .as_ref()
            .map(|u| TokenUsage {
                prompt_tokens: u64::from(u.prompt_tokens),
                completion_tokens: u64::from(u.completion_tokens),
            })
            .unwrap_or_default();
        let Some(choice) = response.choices.into_iter().next() else {
            return Err(Error::ProviderInvalidResponse {
                reason: "the answer has no choices".into(),
                raw: String::new(),
            });
        };
        if let Some(refusal) = choice.message.refusal.filter(|r| !r.is_empty()) {
            return Err(Error::ProviderInvalidResponse {
                reason: "the model refused".into(),
                raw: refusal,
            });
        }
        Ok(ChatResponse {
            content: choice.message.content.unwrap_or_default(),
            usage,
        })
    }

    async fn stream(&self, request: ChatRequest) -> Result<BoxStream<'static, Result<ChatChunk>>> {
        let call = async {
            self.client
                .chat()
                .create_stream(self.request(request, true))
                .await
                .map_err(map_error)
        };
        let inner = within(self.deadline, call).await?;
        struct St<S> {
            inner: S,
            usage: Option<TokenUsage>,
            done: bool,
            idle: Duration,
        }
        let state = St {
            inner,
            usage: None,
            done: false,
            idle: self.stream_idle,
        };
        let stream = futures::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            loop {
                let Ok(next) = tokio::time::timeout(st.idle, st.inner.next()).await else {
                    // The provider stopped mid-stream: end it with the reason.
                    st.done = true;
                    return Some((Err(Error::ProviderTimeout(st.idle)), st));
                };
                match next {
                    None => {
                        st.done = true;
                        let usage = st.usage.take();
                        return Some((Ok(ChatChunk::Done(usage)), st));
                    }
                    Some(Err(e)) => {
                        st.done = true;
                        return Some((Err(map_error(e)), st));
                    }
                    Some(Ok(chunk)) => {
                        if let Some(u) = chunk.usage {
                            st.usage = Some(TokenUsage {
                                prompt_tokens: u64::from(u.prompt_tokens),
                                completion_tokens: u64::from(u.completion_tokens),
                            });
                        }
                        let text: String = chunk
                            .choices
                            .into_iter()
                            .filter_map(|c| c.delta.content)
                            .collect();
                        if !text.is_empty() {
                            return Some((Ok(ChatChunk::Delta(text)), st));
                        }
                    }
                }
            }
        });
        Ok(stream.boxed())
    }
}

/// An embedder on an OpenAI-compatible server.
#[derive(Clone)]
pub struct OpenAiEmbedder {
    client: Client<Api>,
    model: String,
    deadline: Duration,
    dims: Option<usize>,
    send_dims: bool,
    batch_size: usize,
    /// Ask for base64-encoded vectors (as the official SDKs do): a quarter of
    /// the bytes of a JSON float array and no number parsing. Cleared for
    /// good when the server answers with something else.
    base64: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for OpenAiEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiEmbedder")
            .field("model", &self.model)
            .field("dims", &self.dims)
            .finish_non_exhaustive()
    }
}

impl OpenAiEmbedder {
    /// An embedder from the provider and embedder configs.
    pub fn new(provider: &ProviderConfig, embedder: &EmbedderConfig) -> Result<Self> {
        let model = embedder.model_for(crate::config::EmbedderKind::OpenAi);
        if model.trim().is_empty() {
            return Err(Error::config("HOMI_EMBEDDING_MODEL", "must not be empty"));
        }
        // OpenAI's v3 models can shorten their vectors on request; other servers
        // may reject the field, so it is only sent to those models.
        let send_dims = embedder.dims.is_some() && model.starts_with("text-embedding-3");
        Ok(Self {
            client: client(provider)?,
            model: model.to_owned(),
            deadline: provider.deadline,
            dims: embedder.dims.or_else(|| known_dims(model)),
            send_dims,
            batch_size: embedder.batch_size.max(1),
            base64: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
        })
    }

    async fn embed_batch(&self, texts: Vec<String>) -> Result<(Vec<Vec<f32>>, u64)> {
        use std::sync::atomic::Ordering;
        let count = texts.len();
        let mut request = CreateEmbeddingRequest {
            model: self.model.clone(),
            input: EmbeddingInput::StringArray(texts),
            encoding_format: None,
            user: None,
            dimensions: if self.send_dims {
                self.dims.and_then(|d| u32::try_from(d).ok())
            } else {
                None
            },
        };
        if self.base64.load(Ordering::Relaxed) {
            request.encoding_format = Some(EncodingFormat::Base64);
            match self
                .client
                .embeddings()
                .create_base64(request.clone())
                .await
            {
                Ok(mut response) => {
                    response.data.sort_by_key(|e| e.index);
                    let vectors = response
                        .data
                        .into_iter()
                        .map(|e| decode_base64_vector(&e.embedding.0))
                        .collect::<Result<Vec<_>>>()?;
                    check_vectors(&vectors, count, self.dims)?;
                    return Ok((vectors, u64::from(response.usage.prompt_tokens)));
                }
                Err(e) => match map_error(e) {
                    // A server that ignores the field answers float arrays:
                    // use this answer, and ask for floats from now on.
                    Error::ProviderInvalidResponse { reason, raw } => {
                        let Ok(response) = serde_json::from_str::<CreateEmbeddingResponse>(&raw)
                        else {
                            return Err(Error::ProviderInvalidResponse { reason, raw });
                        };
                        self.floats_from_now_on();
                        return floats(response, count, self.dims);
                    }
                    // One that refuses the field: ask again for floats.
                    Error::Provider {
                        status: Some(400 | 422),
                        message,
                        ..
                    } if message.contains("encoding_format") || message.contains("base64") => {
                        self.floats_from_now_on();
                        request.encoding_format = None;
                    }
                    other => return Err(other),
                },
            }
        }
        let response = self
            .client
            .embeddings()
            .create(request)
            .await
            .map_err(map_error)?;
        floats(response, count, self.dims)
    }

    fn floats_from_now_on(&self) {
        if self
            .base64
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::info!(
                model = %self.model,
                "the provider does not return base64 embeddings; asking for floats from now on"
            );
        }
    }
}

/// The vectors of a float-array embeddings answer, in input order.
fn floats(
    mut response: CreateEmbeddingResponse,
    count: usize,
    dims: Option<usize>,
) -> Result<(Vec<Vec<f32>>, u64)> {
    response.data.sort_by_key(|e| e.index);
    let vectors: Vec<Vec<f32>> = response.data.into_iter().map(|e| e.embedding).collect();
    check_vectors(&vectors, count, dims)?;
    Ok((vectors, u64::from(response.usage.prompt_tokens)))
}

/// A base64 embedding: little-endian f32s.
fn decode_base64_vector(encoded: &str) -> Result<Vec<f32>> {
    use base64::Engine;
    let invalid = |reason: &str| Error::ProviderInvalidResponse {
        reason: format!("an embedding is not valid base64 of f32 values: {reason}"),
        raw: String::new(),
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| invalid(&e.to_string()))?;
    if bytes.len() % 4 != 0 {
        return Err(invalid("its length is not a multiple of 4 bytes"));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn model(&self) -> &str {
        &self.model
    }

    fn dims(&self) -> Option<usize> {
        self.dims
    }

    async fn embed(&self, texts: &[String]) -> Result<Embeddings> {
        if texts.is_empty() {
            return Ok(Embeddings::default());
        }
        let batches: Vec<Vec<String>> = texts
            .chunks(self.batch_size)
            .map(<[String]>::to_vec)
            .collect();
        let requests = batches.len() as u32;
        let results: Vec<Result<(Vec<Vec<f32>>, u64)>> = futures::stream::iter(batches)
            .map(|b| within(self.deadline, self.embed_batch(b)))
            .buffered(4)
            .collect()
            .await;
        let mut out = Embeddings {
            vectors: Vec::with_capacity(texts.len()),
            tokens: 0,
            requests,
        };
        for r in results {
            let (vectors, tokens) = r?;
            out.vectors.extend(vectors);
            out.tokens += tokens;
        }
        check_vectors(&out.vectors, texts.len(), None)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(3)));
        let later = std::time::SystemTime::now() + Duration::from_secs(30);
        h.insert(
            "retry-after",
            httpdate::fmt_http_date(later).parse().unwrap(),
        );
        let d = parse_retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(parse_retry_after(&h), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) <= BASE_BACKOFF);
        assert!(backoff(20) <= MAX_BACKOFF);
        assert!(backoff(3) >= BASE_BACKOFF * 4);
    }

    #[test]
    fn unconfigured_provider_says_what_to_set() {
        let err = OpenAiChatModel::new(&crate::Config::default().provider).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::ProviderNotConfigured);
        assert!(err.to_string().contains("OPENAI_API_KEY"));
        assert!(err.to_string().contains("OPENAI_BASE_URL"));
    }
}
