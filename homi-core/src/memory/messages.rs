//! The `messages` argument of `add`: a string, one `{role, content}` message, or a list.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::provider::{ChatMessage, Role};

/// Longest message `add` accepts, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Most messages one `add` accepts.
pub const MAX_MESSAGES: usize = 10_000;

/// One input message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputMessage {
    /// Who wrote it.
    pub role: Role,
    /// What it says.
    pub content: String,
    /// Who, by name (becomes the memory's `actor_id`).
    pub name: Option<String>,
}

/// What `add` stores or extracts from.
///
/// ```
/// use homi_core::Messages;
/// use serde_json::json;
/// let m = Messages::from_json(&json!([
///     {"role": "user", "content": "I'm vegetarian"},
///     {"role": "assistant", "content": "Noted!"}
/// ])).unwrap();
/// assert_eq!(m.len(), 2);
/// let s: Messages = "I love hiking".into();
/// assert_eq!(s.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Messages(pub Vec<InputMessage>);

impl Messages {
    /// Number of messages.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses mem0's shapes: a string (one user message), a `{role, content,
    /// name?}` object, or a list of such objects.
    pub fn from_json(value: &Value) -> Result<Self> {
        match value {
            Value::String(s) => Ok(Messages::from(s.as_str())),
            Value::Object(_) => Ok(Messages(
                parse_one(value, "messages")?.into_iter().collect(),
            )),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.extend(parse_one(item, &format!("messages[{i}]"))?);
                }
                Ok(Messages(out))
            }
            _ => Err(Error::invalid(
                "messages",
                "must be a string, a {role, content} object or a list of them",
            )),
        }
    }

    /// Checks sizes.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.0.len() > MAX_MESSAGES {
            return Err(Error::invalid(
                "messages",
                format!("more than {MAX_MESSAGES} messages in one call"),
            ));
        }
        for (i, m) in self.0.iter().enumerate() {
            crate::error::reject_nul(&format!("messages[{i}].content"), &m.content)?;
            if m.content.len() > MAX_MESSAGE_BYTES {
                return Err(Error::invalid(
                    format!("messages[{i}].content"),
                    format!("is longer than {MAX_MESSAGE_BYTES} bytes"),
                ));
            }
        }
        Ok(())
    }
}

/// One message, or `None` for what mem0 leaves out too: a tool's or a
/// function's message, no content (an assistant's tool call), content with no
/// text part. Image parts are dropped (Homi remembers text).
fn parse_one(value: &Value, path: &str) -> Result<Option<InputMessage>> {
    let Value::Object(map) = value else {
        return Err(Error::invalid(path, "must be a {role, content} object"));
    };
    let role = match map.get("role") {
        None => Role::User,
        Some(Value::String(r)) if r == "tool" || r == "function" => return Ok(None),
        Some(Value::String(r)) => Role::parse(r).ok_or_else(|| {
            Error::invalid(
                format!("{path}.role"),
                format!("'{r}' is not one of system, user, assistant (tool and function messages are left out)"),
            )
        })?,
        Some(_) => return Err(Error::invalid(format!("{path}.role"), "must be a string")),
    };
    let text = |part: &Value| -> Option<String> {
        match part.get("type").and_then(Value::as_str) {
            Some("text") | None => part.get("text").and_then(Value::as_str).map(str::to_owned),
            Some(other) => {
                tracing::info!(
                    part = other,
                    message = path,
                    "a non-text part of a message is left out"
                );
                None
            }
        }
    };
    let content = match map.get("content") {
        Some(Value::String(c)) => c.clone(),
        // OpenAI's content parts: the text parts, as mem0 joins them.
        Some(Value::Array(parts)) => {
            let texts: Vec<String> = parts.iter().filter_map(text).collect();
            if texts.is_empty() {
                return Ok(None);
            }
            texts.join(" ")
        }
        Some(part @ Value::Object(_)) => match text(part) {
            Some(t) => t,
            None => return Ok(None),
        },
        Some(Value::Null) | None => return Ok(None),
        Some(_) => {
            return Err(Error::invalid(
                format!("{path}.content"),
                "must be a string or a list of content parts",
            ));
        }
    };
    let name = match map.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() => Some(n.clone()),
        _ => None,
    };
    Ok(Some(InputMessage {
        role,
        content,
        name,
    }))
}

impl From<&str> for Messages {
    fn from(s: &str) -> Self {
        Messages(vec![InputMessage {
            role: Role::User,
            content: s.to_owned(),
            name: None,
        }])
    }
}

impl From<String> for Messages {
    fn from(s: String) -> Self {
        Messages::from(s.as_str())
    }
}

impl From<ChatMessage> for Messages {
    fn from(m: ChatMessage) -> Self {
        Messages(vec![InputMessage {
            role: m.role,
            content: m.content,
            name: None,
        }])
    }
}

impl From<Vec<ChatMessage>> for Messages {
    fn from(v: Vec<ChatMessage>) -> Self {
        Messages(
            v.into_iter()
                .map(|m| InputMessage {
                    role: m.role,
                    content: m.content,
                    name: None,
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes() {
        let one =
            Messages::from_json(&json!({"role": "assistant", "content": "hi", "name": "bot"}))
                .unwrap();
        assert_eq!(one.0[0].role, Role::Assistant);
        assert_eq!(one.0[0].name.as_deref(), Some("bot"));
        let e = Messages::from_json(&json!([{"role": "user", "content": 3}])).unwrap_err();
        assert!(e.to_string().contains("messages[0].content"), "{e}");
        let e = Messages::from_json(&json!([{"role": "wizard", "content": "x"}])).unwrap_err();
        assert!(e.to_string().contains("messages[0].role"), "{e}");
        assert!(Messages::from_json(&json!(3)).is_err());
    }

    #[test]
    fn what_mem0_leaves_out_is_left_out() {
        // An agent's transcript: a tool call, its result, an image.
        let m = Messages::from_json(&json!([
            {"role": "user", "content": [
                {"type": "text", "text": "Here is my cat"},
                {"type": "image_url", "image_url": {"url": "https://x/cat.png"}},
                {"type": "text", "text": "called Nori"}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function"}]},
            {"role": "tool", "tool_call_id": "c1", "content": "{\"ok\": true}"},
            {"role": "function", "name": "f", "content": "42"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
            {"role": "user", "content": {"type": "image_url", "image_url": {"url": "https://x/z.png"}}},
            {"role": "user"},
            {"role": "assistant", "content": "Nori is a lovely name"}
        ]))
        .unwrap();
        let kept: Vec<(&str, &str)> =
            m.0.iter()
                .map(|m| (m.role.as_str(), m.content.as_str()))
                .collect();
        assert_eq!(
            kept,
            [
                ("user", "Here is my cat called Nori"),
                ("assistant", "Nori is a lovely name")
            ]
        );
        let none = Messages::from_json(&json!({"role": "tool", "content": "x"})).unwrap();
        assert!(none.is_empty());
    }
}
