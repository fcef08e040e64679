//! mem0's call styles, turned into Homi's scope, filter and limit. mem0 1.x
//! takes `user_id=`/`agent_id=`/`run_id=` and `limit=`; mem0 2.x takes
//! `filters={"user_id": …}` and `top_k=`. Both work, and may be mixed as long
//! as they agree. Used by the Python `Memory` and the CLI.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use super::filter::Filter;
use crate::error::{Error, Result};
use crate::model::{MemoryItem, Scope};

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

/// A count a door caps (REST's `limit` ≤ 20 and `top_k` ≤ 100, the MCP
/// tools' `top_k`): `n`, if it is between 1 and `max`.
pub fn within(field: &str, n: usize, max: usize) -> Result<usize> {
    if (1..=max).contains(&n) {
        Ok(n)
    } else {
        Err(Error::invalid(
            field,
            format!("{n} is not between 1 and {max}"),
        ))
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

/// mem0's `expiration_date` ("YYYY-MM-DD": the last day the memory holds)
/// as the end of its validity window: midnight UTC after that day. mem0
/// hides a memory once the UTC date is past its expiration date; so does
/// this end.
pub fn expiration_end(date: &str) -> Result<DateTime<Utc>> {
    let day = NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d").map_err(|_| {
        Error::invalid(
            "expiration_date",
            format!("'{date}' is not a date in YYYY-MM-DD format"),
        )
    })?;
    day.succ_opt()
        .and_then(|next| next.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| Error::invalid("expiration_date", format!("'{date}' is out of range")))
}

/// The mem0 `expiration_date` of a memory that has one: the last day of
/// its window, when that window ends by expiry (not by being superseded).
pub fn expiration_date(item: &MemoryItem) -> Option<String> {
    item.valid_to
        .filter(|_| item.superseded_by.is_none())
        .map(last_day)
}

/// The day before a window's end (the end is exclusive).
fn last_day(end: DateTime<Utc>) -> String {
    let last = end - chrono::Duration::microseconds(1);
    last.date_naive().format("%Y-%m-%d").to_string()
}

/// Adds mem0's `expiration_date` key to the memories of a rendered answer
/// (one memory, or an object whose `results` are memories), where they have
/// one.
pub fn add_expiration_dates(value: &mut Value) {
    fn one(v: &mut Value) {
        if v.get("superseded_by").is_some_and(|s| !s.is_null()) {
            return;
        }
        let end = v
            .get("valid_to")
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        if let (Some(end), Value::Object(map)) = (end, v) {
            let day = last_day(end.with_timezone(&Utc));
            map.insert("expiration_date".into(), Value::String(day));
        }
    }
    match value.get_mut("results").and_then(Value::as_array_mut) {
        Some(items) => items.iter_mut().for_each(one),
        None => one(value),
    }
}

/// mem0's `reference_date` of a search: a date ("YYYY-MM-DD", or an ISO
/// 8601 time, whose UTC day counts) or Unix seconds.
pub fn reference_date(value: &Value) -> Result<NaiveDate> {
    if let Value::String(s) = value
        && let Ok(day) = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
    {
        return Ok(day);
    }
    time_value("reference_date", value).map(|t| t.date_naive())
}

#[cfg(test)]
mod tests {

    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn expiration_dates_end_after_their_day() {
        let end = expiration_end("2026-03-09").unwrap();
        assert_eq!(end.to_rfc3339(), "2026-03-10T00:00:00+00:00");
        let err = expiration_end("09/03/2026").unwrap_err();
        assert!(err.to_string().contains("expiration_date"), "{err}");
        assert!(expiration_end("2026-02-30").is_err());
        let mut item: MemoryItem = serde_json::from_value(json!({
            "id": "6f1c1b8e-8c61-4b1e-9a3c-2b7f7a0c9d10", "memory": "m", "hash": "h", "metadata": {},
            "created_at": "2026-01-01T00:00:00+00:00", "updated_at": "2026-01-01T00:00:00+00:00",
            "valid_from": "2026-01-01T00:00:00+00:00", "valid_to": end.to_rfc3339(),
        }))
        .unwrap();
        assert_eq!(expiration_date(&item).as_deref(), Some("2026-03-09"));
        let mut answer = json!({"results": [serde_json::to_value(&item).unwrap()]});
        add_expiration_dates(&mut answer);
        assert_eq!(answer["results"][0]["expiration_date"], "2026-03-09");
        // A superseded memory's window did not end by expiry.
        item.superseded_by = Some(uuid::Uuid::new_v4());
        assert_eq!(expiration_date(&item), None);
        let mut one = serde_json::to_value(&item).unwrap();
        add_expiration_dates(&mut one);
        assert!(one.get("expiration_date").is_none());
    }

    #[test]
    fn reference_dates_are_days_times_or_seconds() {
        let day = NaiveDate::from_ymd_opt(2023, 5, 8).unwrap();
        assert_eq!(reference_date(&json!("2023-05-08")).unwrap(), day);
        assert_eq!(reference_date(&json!("2023-05-08T23:30:00Z")).unwrap(), day);
        assert_eq!(reference_date(&json!(1_683_540_000)).unwrap(), day);
        let err = reference_date(&json!("last tuesday")).unwrap_err();
        assert!(err.to_string().contains("reference_date"), "{err}");
    }

    #[test]
    fn capped_counts_name_their_field() {
        assert_eq!(within("top_k", 100, 100).unwrap(), 100);
        for n in [0, 101] {
            let err = within("top_k", n, 100).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid top_k: {n} is not between 1 and 100")
            );
        }
    }

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
