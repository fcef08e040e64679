//! The extraction call of `add(infer=true)`: the prompt, the JSON schema, and
//! the parsing and validation of the model's answer.

use serde::Deserialize;
use serde_json::{Value, json};

use super::messages::InputMessage;
use crate::provider::{ChatMessage, JsonSchema, Role};

/// Name of the structured-output schema.
pub(crate) const SCHEMA_NAME: &str = "memory_operations";

/// What the model decided for one fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    Add,
    Update(usize),
    Delete(usize),
    None(usize),
}

/// One fact and its decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FactOp {
    pub text: String,
    pub decision: Decision,
}

/// Longest fact accepted, in bytes.
const MAX_FACT_BYTES: usize = 4096;

pub(crate) fn schema() -> JsonSchema {
    JsonSchema {
        name: SCHEMA_NAME.to_owned(),
        schema: json!({
            "type": "object",
            "properties": {
                "facts": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "text": {
                                "type": "string",
                                "description": "The fact: a short, self-contained statement."
                            },
                            "event": {
                                "type": "string",
                                "enum": ["ADD", "UPDATE", "DELETE", "NONE"]
                            },
                            "target": {
                                "type": ["integer", "null"],
                                "description": "Id of the existing memory for UPDATE, DELETE and NONE; null for ADD."
                            }
                        },
                        "required": ["text", "event", "target"],
                        "additionalProperties": false
                    }
                }
            },
            "required": ["facts"],
            "additionalProperties": false
        }),
    }
}

const INSTRUCTIONS: &str = "\
You maintain the long-term memory a chatbot keeps about the person it talks with.

From the conversation, extract the facts worth remembering about the person: preferences, \
personal details, plans, relationships, health, work, opinions. Write each fact as a short, \
self-contained statement in the language of the conversation, without the person's name \
(for example \"Is vegetarian\", \"Has a dog named Rex\"). Ignore small talk and questions; \
ignore what the assistant said unless the person confirmed it.

Compare every fact with the existing memories, which are listed with integer ids, and choose \
one event:
- ADD: new information. target is null.
- UPDATE: the fact adds detail to an existing memory about the same thing without \
contradicting it. text is the complete new memory; target is that memory's id.
- DELETE: the fact contradicts an existing memory (it is no longer true). text is the new \
fact that replaces it; target is the contradicted memory's id.
- NONE: the fact is already known. target is the id of the memory that states it.

Use only ids from the list; never invent one. Target each existing memory at most once. \
If nothing is worth remembering, return an empty list of facts. Answer with JSON only.";

/// The messages of the extraction call.
pub(crate) fn prompt(
    existing: &[String],
    conversation: &[&InputMessage],
    today: &str,
) -> Vec<ChatMessage> {
    let existing: Vec<Value> = existing
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"id": i, "text": t}))
        .collect();
    let messages: Vec<Value> = conversation
        .iter()
        .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
        .collect();
    let doc = json!({"existing_memories": existing, "messages": messages});
    vec![
        ChatMessage::system(format!("{INSTRUCTIONS}\nToday is {today}.")),
        ChatMessage {
            role: Role::User,
            content: doc.to_string(),
        },
    ]
}

/// The follow-up message of the one repair attempt.
pub(crate) fn repair_message(reason: &str) -> ChatMessage {
    ChatMessage::user(format!(
        "That answer could not be used: {reason}. Reply again with only the JSON object that \
         follows the schema, using only the ids listed."
    ))
}

/// Removes a Markdown code fence around the JSON, if any.
pub(crate) fn strip_fences(raw: &str) -> &str {
    let t = raw.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let rest = rest
        .strip_prefix("json")
        .or_else(|| rest.strip_prefix("JSON"))
        .unwrap_or(rest);
    rest.trim_end().strip_suffix("```").unwrap_or(rest).trim()
}

#[derive(Deserialize)]
struct RawAnswer {
    facts: Vec<RawFact>,
}

#[derive(Deserialize)]
struct RawFact {
    text: String,
    event: String,
    #[serde(default)]
    target: Option<i64>,
}

/// Parses and validates the model's answer against `existing_len` shown memories.
pub(crate) fn parse(raw: &str, existing_len: usize) -> Result<Vec<FactOp>, String> {
    let body = strip_fences(raw);
    let answer: RawAnswer = serde_json::from_str(body)
        .map_err(|e| format!("it is not valid JSON for the schema ({e})"))?;
    let mut out = Vec::with_capacity(answer.facts.len());
    for (i, f) in answer.facts.into_iter().enumerate() {
        let text = f.text.trim().to_owned();
        if text.is_empty() {
            return Err(format!("facts[{i}].text is empty"));
        }
        if text.len() > MAX_FACT_BYTES {
            return Err(format!(
                "facts[{i}].text is longer than {MAX_FACT_BYTES} bytes"
            ));
        }
        let target = |name: &str| -> Result<usize, String> {
            match f.target {
                None => Err(format!("facts[{i}] is {name} but has no target")),
                Some(t) if t < 0 || t as usize >= existing_len => Err(format!(
                    "facts[{i}].target {t} is not one of the listed ids (0..{existing_len})"
                )),
                Some(t) => Ok(t as usize),
            }
        };
        let decision = match f.event.trim().to_ascii_uppercase().as_str() {
            "ADD" => Decision::Add,
            "UPDATE" => Decision::Update(target("UPDATE")?),
            "DELETE" => Decision::Delete(target("DELETE")?),
            "NONE" => Decision::None(target("NONE")?),
            other => {
                return Err(format!(
                    "facts[{i}].event '{other}' is not ADD, UPDATE, DELETE or NONE"
                ));
            }
        };
        out.push(FactOp { text, decision });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn fences_are_stripped() {
        assert_eq!(
            strip_fences("```json\n{\"facts\": []}\n```"),
            "{\"facts\": []}"
        );
        assert_eq!(strip_fences("  {\"facts\": []} "), "{\"facts\": []}");
        assert_eq!(strip_fences("```\n{}\n```"), "{}");
    }

    #[test]
    fn parses_and_validates() {
        let ops = parse(
            r#"{"facts": [{"text": "Likes tea", "event": "ADD", "target": null},
                          {"text": "Lives in Oslo", "event": "DELETE", "target": 1},
                          {"text": "x", "event": "none", "target": 0}]}"#,
            2,
        )
        .unwrap();
        assert_eq!(ops[0].decision, Decision::Add);
        assert_eq!(ops[1].decision, Decision::Delete(1));
        assert_eq!(ops[2].decision, Decision::None(0));
        assert!(
            parse(
                r#"{"facts": [{"text": "a", "event": "UPDATE", "target": 7}]}"#,
                2
            )
            .unwrap_err()
            .contains("target 7")
        );
        assert!(
            parse(
                r#"{"facts": [{"text": "a", "event": "UPDATE", "target": null}]}"#,
                2
            )
            .is_err()
        );
        assert!(
            parse(
                r#"{"facts": [{"text": " ", "event": "ADD", "target": null}]}"#,
                0
            )
            .is_err()
        );
        assert!(parse(r#"{"unexpected": true}"#, 0).is_err());
        assert!(parse("{facts: [", 0).is_err());
        assert!(
            parse(
                r#"{"facts": [{"text": "a", "event": "MERGE", "target": 0}]}"#,
                1
            )
            .is_err()
        );
    }
}
