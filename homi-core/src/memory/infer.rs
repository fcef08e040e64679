//! The pure steps of `add(infer=true)`: the nearest memories the model is
//! shown, the prompt and JSON schema of the extraction call, the parsing and
//! validation of the model's answer, and the plan of writes it makes.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::messages::InputMessage;
use super::{AddEvent, MemoryItem};
use crate::model::types::{Event, text_hash};
use crate::provider::{ChatMessage, JsonSchema};

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

/// The system prompt of a procedural memory (an agent's summary of what it
/// did), when the call gives none.
pub(crate) const PROCEDURE_INSTRUCTIONS: &str = "\
You summarise an AI agent's execution history so that the agent can continue its task later \
without losing context.

Write, in the language of the conversation:
- Task: the overall goal and how far it has come (percent done, milestones reached).
- Steps, numbered in order. For each: the agent's action, with its parameters; the result, \
verbatim when it is data the agent will need (extracted text, errors, identifiers, links); \
what the agent learned or decided next.

Be precise and complete: keep every result the agent cannot get again cheaply. Answer with the \
summary only.";

/// The messages of the extraction call.
pub(crate) fn prompt(
    existing: &[String],
    conversation: &[&InputMessage],
    today: &str,
    instructions: Option<&str>,
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
        ChatMessage::system(match instructions {
            // The application's own rules come after Homi's: they choose what
            // is worth remembering and how it is written, never the format.
            Some(own) => format!(
                "{INSTRUCTIONS}\nToday is {today}.\n\nThe application adds these instructions \
                 (the answer's JSON format stays as described above):\n{own}"
            ),
            None => format!("{INSTRUCTIONS}\nToday is {today}."),
        }),
        ChatMessage::user(doc.to_string()),
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

/// The memories shown to the model: the best `limit` of the nearest ones
/// found for each new message, each once with its best score, best first.
pub(crate) fn nearest(found: Vec<Vec<MemoryItem>>, limit: usize) -> Vec<MemoryItem> {
    let mut best: HashMap<Uuid, MemoryItem> = HashMap::new();
    for m in found.into_iter().flatten() {
        let keep = best
            .get(&m.id)
            .is_none_or(|old| old.score.unwrap_or(0.0) < m.score.unwrap_or(0.0));
        if keep {
            best.insert(m.id, m);
        }
    }
    let mut out: Vec<MemoryItem> = best.into_values().collect();
    out.sort_by(|a, b| {
        b.score
            .unwrap_or(0.0)
            .total_cmp(&a.score.unwrap_or(0.0))
            .then(a.id.cmp(&b.id))
    });
    out.truncate(limit);
    out
}

/// The event of a memory `add` leaves as it is.
pub(crate) fn unchanged(m: &MemoryItem) -> AddEvent {
    AddEvent {
        id: m.id,
        memory: m.memory.clone(),
        event: Event::None,
        previous_memory: None,
        superseded_by: None,
    }
}

/// What the model's decisions come to.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Plan {
    /// The facts to write, with their text's hash: each `Add`, or an
    /// `Update`/`Delete` (supersede) of one of the memories shown.
    pub writes: Vec<(FactOp, String)>,
    /// The memories left as they are, each once.
    pub unchanged: Vec<AddEvent>,
}

/// Plans the writes of the model's decisions about the memories it was
/// shown (`existing`), given `known`: the scope's current memories whose
/// hash is one of the facts' (by hash).
///
/// - `NONE` leaves its memory as it is; so does an `UPDATE` to the same text.
/// - A second decision about one memory would race the first: that fact is
///   added as new instead.
/// - An `ADD` of a text the scope already holds (shown or not) writes
///   nothing and reports that memory; one text is added once.
pub(crate) fn plan(
    ops: Vec<FactOp>,
    existing: &[MemoryItem],
    known: &HashMap<String, MemoryItem>,
) -> Plan {
    let shown: HashMap<&str, &MemoryItem> = existing.iter().map(|m| (m.hash.as_str(), m)).collect();
    let mut targeted = HashSet::new();
    let mut planned = HashSet::new();
    let mut out = Plan::default();
    for op in ops {
        let hash = text_hash(&op.text);
        let decision = match op.decision {
            Decision::None(t) => {
                if targeted.insert(t) {
                    out.unchanged.push(unchanged(&existing[t]));
                }
                continue;
            }
            Decision::Update(t) | Decision::Delete(t) if !targeted.insert(t) => Decision::Add,
            Decision::Update(t) if existing[t].hash == hash => {
                out.unchanged.push(unchanged(&existing[t]));
                continue;
            }
            d => d,
        };
        if decision == Decision::Add {
            if let Some(m) = shown
                .get(hash.as_str())
                .copied()
                .or_else(|| known.get(&hash))
            {
                if planned.insert(hash) {
                    out.unchanged.push(unchanged(m));
                }
                continue;
            }
            if !planned.insert(hash.clone()) {
                continue;
            }
        } else {
            planned.insert(hash.clone());
        }
        out.writes.push((
            FactOp {
                text: op.text,
                decision,
            },
            hash,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn memory(text: &str, score: f32) -> MemoryItem {
        let mut m: MemoryItem = serde_json::from_value(json!({
            "id": Uuid::new_v4(), "memory": text, "hash": text_hash(text), "metadata": {},
            "user_id": "alice", "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z", "valid_from": "2024-01-01T00:00:00Z"
        }))
        .unwrap();
        m.score = Some(score);
        m
    }

    fn op(text: &str, decision: Decision) -> FactOp {
        FactOp {
            text: text.to_owned(),
            decision,
        }
    }

    fn texts(p: &Plan) -> (Vec<(&str, Decision)>, Vec<&str>) {
        (
            p.writes
                .iter()
                .map(|(o, _)| (o.text.as_str(), o.decision.clone()))
                .collect(),
            p.unchanged.iter().map(|e| e.memory.as_str()).collect(),
        )
    }

    #[test]
    fn the_model_is_shown_each_nearest_memory_once_best_first() {
        let a = memory("Has a dog", 0.5);
        let mut a_better = a.clone();
        a_better.score = Some(0.9);
        let b = memory("Lives in Lisbon", 0.7);
        let c = memory("Likes tea", 0.1);
        let shown = nearest(vec![vec![a, b.clone()], vec![a_better, c]], 2);
        let got: Vec<(&str, Option<f32>)> =
            shown.iter().map(|m| (m.memory.as_str(), m.score)).collect();
        assert_eq!(
            got,
            [("Has a dog", Some(0.9)), ("Lives in Lisbon", Some(0.7))]
        );
        assert!(nearest(vec![vec![b]], 0).is_empty());
    }

    #[test]
    fn new_facts_are_added_once_and_known_texts_are_not_added_again() {
        let existing = [memory("Has a dog", 0.9)];
        let elsewhere = memory("Likes tea", 0.0);
        let known = HashMap::from([(elsewhere.hash.clone(), elsewhere)]);
        let p = plan(
            vec![
                op("Plays chess", Decision::Add),
                op("Plays chess", Decision::Add),
                op("Has a dog", Decision::Add),
                op("Likes tea", Decision::Add),
                op("Likes tea", Decision::Add),
            ],
            &existing,
            &known,
        );
        assert_eq!(
            texts(&p),
            (
                vec![("Plays chess", Decision::Add)],
                vec!["Has a dog", "Likes tea"]
            )
        );
        assert_eq!(p.writes[0].1, text_hash("Plays chess"));
    }

    #[test]
    fn one_memory_gets_one_decision_and_a_same_text_update_changes_nothing() {
        let existing = [
            memory("Has a dog", 0.9),
            memory("Lives in Porto", 0.8),
            memory("Likes tea", 0.7),
        ];
        let p = plan(
            vec![
                op("Has a beagle named Rex", Decision::Update(0)),
                // A second decision about memory 0: kept as a new fact.
                op("Walks the dog daily", Decision::Delete(0)),
                op("Lives in Lisbon", Decision::Delete(1)),
                op("Likes tea", Decision::Update(2)),
                op("Likes tea", Decision::None(2)),
            ],
            &existing,
            &HashMap::new(),
        );
        assert_eq!(
            texts(&p),
            (
                vec![
                    ("Has a beagle named Rex", Decision::Update(0)),
                    ("Walks the dog daily", Decision::Add),
                    ("Lives in Lisbon", Decision::Delete(1)),
                ],
                vec!["Likes tea"]
            )
        );
    }

    #[test]
    fn none_reports_its_memory_once() {
        let existing = [memory("Has a dog", 0.9)];
        let p = plan(
            vec![
                op("Has a dog", Decision::None(0)),
                op("Owns a dog", Decision::None(0)),
            ],
            &existing,
            &HashMap::new(),
        );
        assert_eq!(texts(&p), (vec![], vec!["Has a dog"]));
        assert_eq!(p.unchanged[0].id, existing[0].id);
        assert_eq!(p.unchanged[0].event, Event::None);
    }

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
