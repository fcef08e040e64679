//! Metadata filters in mem0's shape, parsed once and compiled to SQL by each store.
//!
//! ```
//! use homi_core::memory::Filter;
//! use serde_json::json;
//! let (scope, filter) = Filter::parse_mem0(&json!({
//!     "user_id": "alice",
//!     "category": "food",
//!     "OR": [{"rating": {"gte": 4}}, {"tags": {"contains": "favourite"}}]
//! })).unwrap();
//! assert_eq!(scope.user_id.as_deref(), Some("alice"));
//! assert!(filter.is_some());
//! ```

use serde_json::{Map, Value};

use super::types::Scope;
use crate::error::{Error, Result};

/// What a condition looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// A top-level key of the memory's metadata.
    Metadata(String),
    /// The memory's `actor_id`.
    ActorId,
    /// The memory's `role`.
    Role,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Equal.
    Eq,
    /// Not equal (a missing key counts as not equal).
    Ne,
    /// One of a list.
    In,
    /// None of a list (a missing key counts).
    Nin,
    /// Greater than (numbers, or strings such as ISO dates).
    Gt,
    /// Greater or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less or equal.
    Lte,
    /// A string containing the value, or an array containing it as an element.
    Contains,
    /// `Contains`, ignoring case (strings).
    Icontains,
    /// The key is present (mem0's `"*"`).
    Exists,
}

impl Op {
    fn parse(name: &str) -> Option<Op> {
        Some(match name {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "in" => Op::In,
            "nin" => Op::Nin,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "contains" => Op::Contains,
            "icontains" => Op::Icontains,
            _ => return None,
        })
    }
}

/// A filter over metadata (and `actor_id`, `role`).
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// All must hold.
    And(Vec<Filter>),
    /// At least one must hold.
    Or(Vec<Filter>),
    /// Must not hold.
    Not(Box<Filter>),
    /// One comparison.
    Cond {
        /// What to look at.
        field: Field,
        /// How to compare.
        op: Op,
        /// With what (a scalar; a list for `In`/`Nin`; ignored for `Exists`).
        value: Value,
    },
}

const MAX_KEY_LEN: usize = 128;
const MAX_DEPTH: usize = 16;
const SCOPE_KEYS: [&str; 3] = ["user_id", "agent_id", "run_id"];

impl Filter {
    /// `key == value` on metadata.
    pub fn eq(key: impl Into<String>, value: impl Into<Value>) -> Filter {
        Filter::Cond {
            field: Field::Metadata(key.into()),
            op: Op::Eq,
            value: value.into(),
        }
    }

    /// Parses mem0's filter object. Top-level `user_id`, `agent_id` and `run_id`
    /// become the returned scope (mem0 2.x passes the scope this way); the rest
    /// becomes the filter. Keys `AND`, `OR` (lists of objects) and `NOT` (an
    /// object or a list) combine; a key maps to a scalar (equality), `"*"`
    /// (present), a list (one of) or an object of operators (`eq, ne, in, nin,
    /// gt, gte, lt, lte, contains, icontains`).
    pub fn parse_mem0(value: &Value) -> Result<(Scope, Option<Filter>)> {
        let Value::Object(map) = value else {
            return Err(Error::invalid("filters", "must be a JSON object"));
        };
        let mut scope = Scope::default();
        let mut rest = Map::new();
        for (k, v) in map {
            if SCOPE_KEYS.contains(&k.as_str()) {
                // Integer ids are strings, as mem0 makes them.
                let id = match v {
                    Value::String(id) => id.clone(),
                    Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                    _ => {
                        return Err(Error::invalid(
                            format!("filters.{k}"),
                            "must be a string (or an integer)",
                        ));
                    }
                };
                let id = &id;
                match k.as_str() {
                    "user_id" => scope.user_id = Some(id.clone()),
                    "agent_id" => scope.agent_id = Some(id.clone()),
                    _ => scope.run_id = Some(id.clone()),
                }
            } else {
                rest.insert(k.clone(), v.clone());
            }
        }
        let filter = parse_object(&rest, "filters", 0)?;
        Ok((scope, filter))
    }
}

fn parse_object(map: &Map<String, Value>, path: &str, depth: usize) -> Result<Option<Filter>> {
    if depth > MAX_DEPTH {
        return Err(Error::invalid(
            path,
            format!("nests deeper than {MAX_DEPTH} levels"),
        ));
    }
    let mut parts = Vec::new();
    for (key, value) in map {
        let here = format!("{path}.{key}");
        match key.as_str() {
            "AND" | "OR" => {
                let Value::Array(items) = value else {
                    return Err(Error::invalid(here, "must be a list of filter objects"));
                };
                let mut subs = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let Value::Object(m) = item else {
                        return Err(Error::invalid(format!("{here}[{i}]"), "must be an object"));
                    };
                    if let Some(f) = parse_object(m, &format!("{here}[{i}]"), depth + 1)? {
                        subs.push(f);
                    }
                }
                if subs.is_empty() {
                    return Err(Error::invalid(here, "must not be empty"));
                }
                parts.push(if key == "AND" {
                    Filter::And(subs)
                } else {
                    Filter::Or(subs)
                });
            }
            "NOT" => {
                let inner = match value {
                    Value::Object(m) => parse_object(m, &here, depth + 1)?,
                    Value::Array(items) => {
                        let mut subs = Vec::new();
                        for (i, item) in items.iter().enumerate() {
                            let Value::Object(m) = item else {
                                return Err(Error::invalid(
                                    format!("{here}[{i}]"),
                                    "must be an object",
                                ));
                            };
                            if let Some(f) = parse_object(m, &format!("{here}[{i}]"), depth + 1)? {
                                subs.push(f);
                            }
                        }
                        (!subs.is_empty()).then_some(Filter::And(subs))
                    }
                    _ => {
                        return Err(Error::invalid(
                            here,
                            "must be an object or a list of objects",
                        ));
                    }
                };
                let Some(inner) = inner else {
                    return Err(Error::invalid(here, "must not be empty"));
                };
                parts.push(Filter::Not(Box::new(inner)));
            }
            k if SCOPE_KEYS.contains(&k) => {
                return Err(Error::invalid(
                    here,
                    "user_id, agent_id and run_id belong at the top level of filters",
                ));
            }
            _ => parts.extend(parse_conditions(key, value, &here)?),
        }
    }
    Ok(match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => Some(Filter::And(parts)),
    })
}

fn field_for(key: &str, path: &str) -> Result<Field> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(Error::invalid(
            path,
            format!("keys must be 1..={MAX_KEY_LEN} bytes"),
        ));
    }
    if key.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        return Err(Error::invalid(
            path,
            "keys must not contain quotes, backslashes or control characters",
        ));
    }
    Ok(match key {
        "actor_id" => Field::ActorId,
        "role" => Field::Role,
        _ => Field::Metadata(key.to_owned()),
    })
}

fn check_scalar(value: &Value, path: &str) -> Result<()> {
    match value {
        Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null => Ok(()),
        _ => Err(Error::invalid(
            path,
            "must be a string, number, boolean or null",
        )),
    }
}

fn parse_conditions(key: &str, value: &Value, path: &str) -> Result<Vec<Filter>> {
    let field = field_for(key, path)?;
    let cond = |op: Op, value: Value| Filter::Cond {
        field: field.clone(),
        op,
        value,
    };
    match value {
        Value::String(s) if s == "*" => Ok(vec![cond(Op::Exists, Value::Null)]),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_scalar(item, &format!("{path}[{i}]"))?;
            }
            Ok(vec![cond(Op::In, value.clone())])
        }
        Value::Object(ops) => {
            if ops.is_empty() {
                return Err(Error::invalid(path, "must name at least one operator"));
            }
            let mut out = Vec::new();
            for (name, operand) in ops {
                let here = format!("{path}.{name}");
                let Some(op) = Op::parse(name) else {
                    return Err(Error::invalid(
                        here,
                        "unknown operator (use eq, ne, in, nin, gt, gte, lt, lte, contains, icontains)",
                    ));
                };
                match op {
                    Op::In | Op::Nin => {
                        let Value::Array(items) = operand else {
                            return Err(Error::invalid(here, "must be a list"));
                        };
                        for (i, item) in items.iter().enumerate() {
                            check_scalar(item, &format!("{here}[{i}]"))?;
                        }
                    }
                    Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
                        if !(operand.is_number() || operand.is_string()) {
                            return Err(Error::invalid(here, "must be a number or a string"));
                        }
                    }
                    Op::Contains | Op::Icontains => {
                        if !operand.is_string()
                            && !(op == Op::Contains
                                && (operand.is_number() || operand.is_boolean()))
                        {
                            return Err(Error::invalid(here, "must be a string"));
                        }
                    }
                    _ => check_scalar(operand, &here)?,
                }
                out.push(cond(op, operand.clone()));
            }
            Ok(out)
        }
        scalar => {
            check_scalar(scalar, path)?;
            Ok(vec![cond(Op::Eq, scalar.clone())])
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    #[test]
    fn scope_keys_are_lifted() {
        let (scope, f) = Filter::parse_mem0(&json!({"user_id": "u", "run_id": "r"})).unwrap();
        assert_eq!(scope, Scope::user("u").with_run("r"));
        assert!(f.is_none());
    }

    #[test]
    fn operators_and_logic() {
        let (_, f) = Filter::parse_mem0(&json!({
            "a": 1,
            "b": {"gte": 2, "lt": 5},
            "c": ["x", "y"],
            "d": "*",
            "NOT": {"e": {"contains": "z"}},
            "OR": [{"f": true}, {"role": "user"}]
        }))
        .unwrap();
        let Some(Filter::And(parts)) = f else {
            panic!("expected AND")
        };
        assert_eq!(parts.len(), 7);
        assert!(parts.contains(&Filter::Cond {
            field: Field::Metadata("d".into()),
            op: Op::Exists,
            value: Value::Null
        }));
    }

    #[test]
    fn errors_name_the_path() {
        for (input, path) in [
            (json!({"a": {"between": 1}}), "filters.a.between"),
            (json!({"a": {"in": 3}}), "filters.a.in"),
            (json!({"OR": {}}), "filters.OR"),
            (json!({"AND": [{"user_id": "x"}]}), "filters.AND[0].user_id"),
            (json!({"a": {"gt": [1]}}), "filters.a.gt"),
            (json!({"user_id": true}), "filters.user_id"),
        ] {
            let e = Filter::parse_mem0(&input).unwrap_err();
            assert!(e.to_string().contains(path), "{input}: {e}");
        }
        assert!(Filter::parse_mem0(&json!([1])).is_err());
    }
}
