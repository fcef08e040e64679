//! mem0's call styles, turned into Homi's scope, filter and limit. mem0 1.x
//! takes `user_id=`/`agent_id=`/`run_id=` and `limit=`; mem0 2.x takes
//! `filters={"user_id": …}` and `top_k=`. Both work, and may be mixed as long
//! as they agree. Used by the Python `Memory` and the CLI.

use serde_json::Value;

use super::filter::Filter;
use crate::error::{Error, Result};
use crate::model::Scope;

/// The scope (keyword ids merged with the ids inside `filters`) and the
/// metadata filter of a mem0-style call.
pub fn scope_and_filter(
    user_id: Option<&str>,
    agent_id: Option<&str>,
    run_id: Option<&str>,
    filters: Option<&Value>,
) -> Result<(Scope, Option<Filter>)> {
    let (from_filters, filter) = match filters {
        None | Some(Value::Null) => (Scope::default(), None),
        Some(f) => Filter::parse_mem0(f)?,
    };
    let merge = |name: &str, kw: Option<&str>, inner: Option<String>| -> Result<Option<String>> {
        match (kw, inner) {
            (Some(a), Some(b)) if a != b => Err(Error::invalid(
                name,
                format!("is '{a}' but filters.{name} is '{b}'"),
            )),
            (Some(a), _) => Ok(Some(a.to_owned())),
            (None, b) => Ok(b),
        }
    };
    let scope = Scope {
        user_id: merge("user_id", user_id, from_filters.user_id)?,
        agent_id: merge("agent_id", agent_id, from_filters.agent_id)?,
        run_id: merge("run_id", run_id, from_filters.run_id)?,
    };
    Ok((scope, filter))
}

/// The limit of a mem0-style call: `limit` or `top_k` (equal if both).
pub fn limit(limit: Option<usize>, top_k: Option<usize>, default: usize) -> Result<usize> {
    match (limit, top_k) {
        (Some(a), Some(b)) if a != b => Err(Error::invalid(
            "top_k",
            format!("is {b} but limit is {a}: give one of them"),
        )),
        (Some(n), _) | (None, Some(n)) => {
            if n == 0 {
                Err(Error::invalid("limit", "must be at least 1"))
            } else {
                Ok(n)
            }
        }
        (None, None) => Ok(default),
    }
}

/// mem0 2.x's `top_k` default, for `search` and `get_all` in its style.
pub const V2_TOP_K: usize = 20;
/// mem0 2.x's `search` threshold default, for calls in its style.
pub const V2_THRESHOLD: f32 = 0.1;
/// mem0 1.x's `limit` default.
pub const V1_LIMIT: usize = 100;

/// The limit and threshold of a mem0-style read (`search`, `get_all`), with
/// the defaults of the mem0 version whose style the call has: 2.x's (20
/// results, threshold 0.1) for `top_k=` or ids given inside `filters`, 1.x's
/// (100 results, no threshold) for `limit=` or ids given as keywords. Given
/// values always win.
///
/// ```
/// use homi_core::memory::mem0::read_limits;
/// assert_eq!(read_limits(false, true, None, None, None).unwrap(), (20, Some(0.1)));
/// assert_eq!(read_limits(true, false, None, None, None).unwrap(), (100, None));
/// assert_eq!(read_limits(false, true, None, Some(5), Some(0.3)).unwrap(), (5, Some(0.3)));
/// ```
pub fn read_limits(
    ids_as_keywords: bool,
    ids_in_filters: bool,
    limit_: Option<usize>,
    top_k: Option<usize>,
    threshold: Option<f32>,
) -> Result<(usize, Option<f32>)> {
    let v2 = match (limit_, top_k) {
        (Some(_), None) => false,
        (None, Some(_)) => true,
        _ => ids_in_filters && !ids_as_keywords,
    };
    if let Some(t) = threshold
        && !(0.0..=1.0).contains(&t)
    {
        return Err(Error::invalid("threshold", "must be from 0 to 1"));
    }
    if v2 {
        Ok((
            limit(limit_, top_k, V2_TOP_K)?,
            threshold.or(Some(V2_THRESHOLD)),
        ))
    } else {
        Ok((limit(limit_, top_k, V1_LIMIT)?, threshold))
    }
}

/// A time given in JSON (a REST body's `as_of`, `timestamp`): an ISO 8601
/// string or Unix seconds.
pub fn time_value(field: &str, value: &Value) -> Result<chrono::DateTime<chrono::Utc>> {
    match value {
        Value::String(s) => crate::model::types::parse_timestamp(field, s),
        Value::Number(n) => match n.as_f64() {
            Some(secs) => crate::model::types::unix_seconds(field, secs),
            None => Err(Error::invalid(field, "is not a number of seconds")),
        },
        _ => Err(Error::invalid(
            field,
            "must be an ISO 8601 string or Unix seconds",
        )),
    }
}

/// The new text of a mem0-style `update`: `data` (mem0 1.x, and the second
/// positional argument of both) or `text=` (mem0 2.x), equal if both.
pub fn update_text(data: Option<String>, text: Option<String>) -> Result<String> {
    match (data, text) {
        (Some(a), Some(b)) if a != b => Err(Error::invalid(
            "text",
            "differs from data: give the new text once",
        )),
        (Some(t), _) | (None, Some(t)) => Ok(t),
        (None, None) => Err(Error::invalid("data", "the new text is required")),
    }
}

#[cfg(test)]
mod tests {

    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn update_takes_data_or_text() {
        assert_eq!(update_text(Some("a".into()), None).unwrap(), "a");
        assert_eq!(update_text(None, Some("b".into())).unwrap(), "b");
        assert_eq!(
            update_text(Some("c".into()), Some("c".into())).unwrap(),
            "c"
        );
        let both = update_text(Some("a".into()), Some("b".into())).unwrap_err();
        assert_eq!(both.kind(), crate::ErrorKind::InvalidInput);
        assert!(
            update_text(None, None)
                .unwrap_err()
                .to_string()
                .contains("data")
        );
    }

    #[test]
    fn both_styles_and_their_mix() {
        let (s, f) = scope_and_filter(Some("alice"), None, None, None).unwrap();
        assert_eq!(s.user_id.as_deref(), Some("alice"));
        assert!(f.is_none());
        let (s, f) = scope_and_filter(
            None,
            None,
            None,
            Some(&json!({"user_id": "alice", "agent_id": "a", "topic": "food"})),
        )
        .unwrap();
        assert_eq!(
            (s.user_id.as_deref(), s.agent_id.as_deref()),
            (Some("alice"), Some("a"))
        );
        assert!(f.is_some());
        let (s, _) = scope_and_filter(
            Some("alice"),
            None,
            None,
            Some(&json!({"user_id": "alice"})),
        )
        .unwrap();
        assert_eq!(s.user_id.as_deref(), Some("alice"));
        let err = scope_and_filter(Some("alice"), None, None, Some(&json!({"user_id": "bob"})))
            .unwrap_err();
        assert!(err.to_string().contains("user_id"));
    }

    #[test]
    fn limit_or_top_k() {
        assert_eq!(limit(None, None, 100).unwrap(), 100);
        assert_eq!(limit(Some(3), None, 100).unwrap(), 3);
        assert_eq!(limit(None, Some(5), 100).unwrap(), 5);
        assert_eq!(limit(Some(5), Some(5), 100).unwrap(), 5);
        assert!(limit(Some(3), Some(5), 100).is_err());
        assert!(limit(Some(0), None, 100).is_err());
    }
}
