//! The fake's OpenAI routes (`/v1/chat/completions`, `/v1/embeddings`,
//! `/v1/models`) and the answers it makes up without a script.

use std::collections::HashMap;

use axum::extract::{Path, Query};

use super::*;

pub(super) fn api_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "type": kind, "param": null, "code": null}})),
    )
        .into_response()
}

/// A 200 answer that sends `start` and then nothing, keeping the connection.
fn stalled(content_type: &'static str, start: String) -> Response {
    let body = futures::StreamExt::chain(
        futures::stream::iter([Ok::<_, std::convert::Infallible>(start)]),
        futures::stream::pending(),
    );
    (
        StatusCode::OK,
        [("content-type", content_type)],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

/// The answer of a provider that stalls after its headers: a stream stops
/// after its first words, any other answer in the middle of its JSON.
fn stall(stream: bool) -> Response {
    if stream {
        return stalled(
            "text/event-stream",
            format!(
                "data: {}\n\n",
                json!({
                    "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                    "model": "fake-model",
                    "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Half an "},
                                 "finish_reason": null, "logprobs": null}]
                })
            ),
        );
    }
    stalled(
        "application/json",
        "{\"id\": \"chatcmpl-fake\", \"object\": ".to_owned(),
    )
}

/// Applies latency and a queued fault. Returns a response to send instead of
/// the normal answer, if any. `stream`: whether the request asked for a stream.
pub(super) async fn before_answer(
    shared: &Shared,
    target: Target,
    stream: bool,
) -> Option<Response> {
    let latency = shared.lock().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let (fail_every, stall_every) = shared.lock().chaos;
    if fail_every > 0 || stall_every > 0 {
        let n = shared.chaos_seen.fetch_add(1, Ordering::Relaxed) + 1;
        if fail_every > 0 && n.is_multiple_of(fail_every) {
            return Some(api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "The fake provider had an internal error.",
            ));
        }
        // Offset by one, so that no request is both.
        if stall_every > 0 && (n + 1).is_multiple_of(stall_every) {
            return Some(stall(stream));
        }
    }
    match shared.take_fault(target)? {
        Fault::ServerError => Some(api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The fake provider had an internal error.",
        )),
        Fault::RateLimited { retry_after_secs } => {
            let mut resp = api_error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "Rate limit reached for requests.",
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                resp.headers_mut().insert("retry-after", v);
            }
            Some(resp)
        }
        Fault::Timeout { delay_ms } => {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            None
        }
        Fault::Stall => Some(stall(stream)),
        Fault::MalformedJson => Some(
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                "{\"id\": \"chatcmpl-fake\", \"choices\": [",
            )
                .into_response(),
        ),
        Fault::WrongSchema => Some(match target {
            Target::Embeddings => {
                Json(json!({"object": "list", "data": "not a list", "model": "x"})).into_response()
            }
            _ => Json(completion_body(
                "fake-model",
                "{\"unexpected\": true}",
                1,
                1,
            ))
            .into_response(),
        }),
    }
}

pub(super) fn word_count(text: &str) -> u64 {
    text.split_whitespace().count().max(1) as u64
}

pub(super) fn completion_body(
    model: &str,
    content: &str,
    prompt_tokens: u64,
    completion_tokens: u64,
) -> Value {
    json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "finish_reason": "stop",
            "logprobs": null
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens
        }
    })
}

pub(super) fn message_text(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

pub(crate) async fn chat_completions(
    State(s): State<Arc<Shared>>,
    Json(body): Json<Value>,
) -> Response {
    chat_answer(s, body, "/v1/chat/completions").await
}

/// Azure OpenAI's shape of the same calls: the deployment in the path, the
/// key in an `api-key` header, an `api-version` query parameter.
fn azure_call(headers: &HeaderMap, query: &HashMap<String, String>) -> Option<Response> {
    if !headers.contains_key("api-key") || headers.contains_key("authorization") {
        return Some(api_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Azure OpenAI takes the key in the api-key header",
        ));
    }
    if !query.contains_key("api-version") {
        return Some(api_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "the api-version query parameter is required",
        ));
    }
    None
}

pub(crate) async fn azure_chat_completions(
    State(s): State<Arc<Shared>>,
    Path(deployment): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(refused) = azure_call(&headers, &query) {
        return refused;
    }
    let path = format!("/openai/deployments/{deployment}/chat/completions");
    chat_answer(s, body, &path).await
}

pub(crate) async fn azure_embeddings(
    State(s): State<Arc<Shared>>,
    Path(deployment): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(refused) = azure_call(&headers, &query) {
        return refused;
    }
    let path = format!("/openai/deployments/{deployment}/embeddings");
    embeddings_answer(s, body, &path).await
}

async fn chat_answer(s: Arc<Shared>, body: Value, path: &str) -> Response {
    s.chat_requests.fetch_add(1, Ordering::Relaxed);
    s.record(path, &body);
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    if let Some(resp) = before_answer(&s, Target::Chat, stream).await {
        return resp;
    }
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "'messages' is a required property",
        );
    };
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("fake-model");
    let prompt_tokens: u64 = messages.iter().map(|m| word_count(&message_text(m))).sum();
    let scripted = s.lock().replies.pop_front();
    let content = match scripted {
        Some(c) => c,
        None => default_reply(&body, messages),
    };
    let completion_tokens = word_count(&content);
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let include_usage = body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let delay = s.lock().chunk_delay;
        return sse_response(
            delay,
            model,
            &content,
            include_usage,
            prompt_tokens,
            completion_tokens,
        );
    }
    Json(completion_body(
        model,
        &content,
        prompt_tokens,
        completion_tokens,
    ))
    .into_response()
}

pub(super) fn sse_response(
    delay: Duration,
    model: &str,
    content: &str,
    include_usage: bool,
    prompt_tokens: u64,
    completion_tokens: u64,
) -> Response {
    let chunk = |delta: Value, finish: Value| {
        json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]
        })
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    // Split after each space so that the deltas concatenate to the content exactly.
    let mut start = 0;
    for (i, c) in content.char_indices() {
        if c == ' ' {
            events.push(chunk(json!({"content": &content[start..=i]}), Value::Null));
            start = i + 1;
        }
    }
    if start < content.len() {
        events.push(chunk(json!({"content": &content[start..]}), Value::Null));
    }
    events.push(chunk(json!({}), json!("stop")));
    if include_usage {
        events.push(json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens
            }
        }));
    }
    let mut body = String::new();
    for e in events {
        body.push_str("data: ");
        body.push_str(&e.to_string());
        body.push_str("\n\n");
    }
    body.push_str("data: [DONE]\n\n");
    let parts: Vec<String> = body.split_inclusive("\n\n").map(str::to_owned).collect();
    let stream = futures::StreamExt::then(futures::stream::iter(parts), move |part| async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok::<_, std::convert::Infallible>(part)
    });
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    (headers, axum::body::Body::from_stream(stream)).into_response()
}

/// mem0 2.x's extraction call (`response_format: json_object`, the new
/// messages under "## New Messages"): each new user message becomes one
/// memory, `{"memory": [{"text", "attributed_to": "user"}]}`, so mem0 can be
/// benchmarked against the same provider as Homi doing the same work.
pub(super) fn mem0_extraction(messages: &[Value]) -> String {
    let prompt = messages
        .iter()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(message_text)
        .collect::<Vec<_>>()
        .join("\n");
    let mut memories = Vec::new();
    if let Some((_, after)) = prompt.split_once("## New Messages") {
        for line in after.lines() {
            let line = line.trim();
            if line.starts_with("##") {
                break;
            }
            if let Some(text) = line.strip_prefix("user:") {
                let text = text.trim();
                if !text.is_empty() {
                    memories.push(
                        json!({"text": text, "attributed_to": "user", "linked_memory_ids": []}),
                    );
                }
            }
        }
    }
    json!({ "memory": memories }).to_string()
}

pub(super) fn default_reply(body: &Value, messages: &[Value]) -> String {
    let schema_name = body
        .pointer("/response_format/json_schema/name")
        .and_then(Value::as_str);
    if body
        .pointer("/response_format/type")
        .and_then(Value::as_str)
        == Some("json_schema")
    {
        return match schema_name {
            Some("memory_operations") => memory_operations(messages),
            _ => "{}".to_owned(),
        };
    }
    if body
        .pointer("/response_format/type")
        .and_then(Value::as_str)
        == Some("json_object")
    {
        return mem0_extraction(messages);
    }
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(message_text)
        .unwrap_or_default();
    let remembered: Vec<String> = messages
        .iter()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("system"))
        .flat_map(|m| {
            message_text(m)
                .lines()
                .filter_map(|l| l.trim().strip_prefix("- ").map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect();
    if remembered.is_empty() {
        format!("You said: {last_user}")
    } else {
        format!(
            "You said: {last_user} I remember: {}",
            remembered.join("; ")
        )
    }
}

/// Homi's extraction call: the last user message is a JSON document with
/// `existing_memories: [{id, text}]` and `messages: [{role, content}]`.
pub(super) fn memory_operations(messages: &[Value]) -> String {
    // The newest user message that is the JSON document (a repair request
    // follows it as plain text).
    let doc = messages
        .iter()
        .rev()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .filter_map(|m| serde_json::from_str::<Value>(&message_text(m)).ok())
        .find(|v| v.get("messages").is_some())
        .unwrap_or(Value::Null);
    let existing: Vec<(i64, String)> = doc
        .get("existing_memories")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|m| {
                    Some((
                        m.get("id")?.as_i64()?,
                        m.get("text")?.as_str()?.to_lowercase(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut facts = Vec::new();
    for m in doc
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if m.get("role").and_then(Value::as_str) != Some("user") {
            continue;
        }
        let text = message_text(m).trim().to_owned();
        if text.is_empty() {
            continue;
        }
        let lower = text.to_lowercase();
        match existing.iter().find(|(_, t)| *t == lower) {
            Some((id, _)) => facts.push(json!({"text": text, "event": "NONE", "target": id})),
            None => facts.push(json!({"text": text, "event": "ADD", "target": null})),
        }
    }
    json!({ "facts": facts }).to_string()
}

pub(super) fn dims_for(model: &str, requested: Option<u64>, default_dims: usize) -> usize {
    if let Some(d) = requested {
        return d as usize;
    }
    match model {
        "text-embedding-3-small" | "text-embedding-ada-002" => 1536,
        "text-embedding-3-large" => 3072,
        "all-minilm-l6-v2" | "all-MiniLM-L6-v2" => 384,
        _ => default_dims,
    }
}

pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A deterministic bag-of-words embedding: each lower-cased alphanumeric word
/// adds ±1 to one hashed dimension; the result is normalised.
pub fn lexical_embedding(text: &str, dims: usize) -> Vec<f32> {
    let mut v = vec![0f32; dims.max(1)];
    let lower = text.to_lowercase();
    let mut any = false;
    for word in lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let h = fnv1a(word.as_bytes());
        let idx = (h % v.len() as u64) as usize;
        let sign = if (h >> 63) == 0 { 1.0 } else { -1.0 };
        v[idx] += sign;
        any = true;
    }
    if !any {
        v[0] = 1.0;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    for x in &mut v {
        *x /= norm;
    }
    v
}

pub(crate) async fn embeddings(State(s): State<Arc<Shared>>, Json(body): Json<Value>) -> Response {
    embeddings_answer(s, body, "/v1/embeddings").await
}

async fn embeddings_answer(s: Arc<Shared>, body: Value, path: &str) -> Response {
    s.embedding_requests.fetch_add(1, Ordering::Relaxed);
    s.record(path, &body);
    if let Some(resp) = before_answer(&s, Target::Embeddings, false).await {
        return resp;
    }
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) if many.iter().all(Value::is_string) => many
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "'input' must be a string or a list of strings",
            );
        }
    };
    if inputs.is_empty() || inputs.iter().any(String::is_empty) {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "'input' must not be empty",
        );
    }
    s.embedding_inputs
        .fetch_add(inputs.len() as u64, Ordering::Relaxed);
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("text-embedding-3-small");
    let dims = dims_for(
        model,
        body.get("dimensions").and_then(Value::as_u64),
        s.default_dims,
    );
    let mut base64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    if base64 {
        match s.lock().base64 {
            Base64Support::Yes => {}
            Base64Support::Ignored => base64 = false,
            Base64Support::Refused => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "encoding_format 'base64' is not supported",
                );
            }
        }
    }
    let mut tokens = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            tokens += word_count(text);
            let v = lexical_embedding(text, dims);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Json(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
    }))
    .into_response()
}

pub(crate) async fn models() -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [
            {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "homi-testkit"},
            {"id": "text-embedding-3-small", "object": "model", "created": 0, "owned_by": "homi-testkit"}
        ]
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn lexical_embeddings_are_unit_and_share_words() {
        let a = lexical_embedding("I love pizza", 64);
        let b = lexical_embedding("pizza", 64);
        let c = lexical_embedding("the weather is cold", 64);
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
        assert!((dot(&a, &a) - 1.0).abs() < 1e-5);
        assert!(dot(&a, &b) > dot(&a, &c));
    }

    #[test]
    fn mem0_extraction_turns_new_user_messages_into_memories() {
        let prompt = "## Summary\n\n## Existing Memories\n[]\n\n## New Messages\nuser: I love pizza\nassistant: Nice\nuser: I live in Porto\n\n## Observation Date\n2026-11-25";
        let out: Value = serde_json::from_str(&mem0_extraction(&[
            json!({"role": "system", "content": "You are a Memory Extractor"}),
            json!({"role": "user", "content": prompt}),
        ]))
        .unwrap();
        let texts: Vec<&str> = out["memory"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["I love pizza", "I live in Porto"]);
    }

    #[test]
    fn memory_operations_marks_known_facts_none() {
        let doc = json!({
            "existing_memories": [{"id": 0, "text": "Likes tea"}],
            "messages": [{"role": "user", "content": "likes tea"}, {"role": "user", "content": "Has a cat"}]
        });
        let out = memory_operations(&[json!({"role": "user", "content": doc.to_string()})]);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["facts"][0]["event"], "NONE");
        assert_eq!(v["facts"][0]["target"], 0);
        assert_eq!(v["facts"][1]["event"], "ADD");
    }
}
