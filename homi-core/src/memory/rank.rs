//! Hybrid ranking: how a query's semantic and keyword candidates, and the
//! memories written around them, become one ordered list with one score in
//! [0, 1]. Pure functions; the stores only fetch.
//!
//! For each memory `m` the search has loaded (the candidates of both rankings
//! and the memories written just before and after each):
//!
//! 1. `base = 0.6 · cos⁺ + 0.4 · kw`: `cos⁺` is the cosine similarity to the
//!    query clamped to [0, 1]; `kw` is the memory's keyword relevance divided
//!    by the best of the query (0 when it holds none of the words).
//! 2. Neighbours: `s = (base + 0.5 · max(base_before, base_after)) / 1.5`. A
//!    turn of a conversation is often found through the turn next to it ("Some
//!    fun ones like charades" answers the question asked just before).
//! 3. Speakers: a memory's speaker is its `actor_id`, or the name before the
//!    first `": "` of its text (one to three words). When the query names
//!    exactly one of the speakers seen, memories of the others score `× 0.6`.
//! 4. Dates: when the query names a day ("8 May 2023", "May 8, 2023") or a
//!    month ("May 2023"), `s = (s + 0.2 · d) / 1.2` where `d` is 1 for
//!    memories said (`created_at`) on that day or in that month. With a
//!    reference day (mem0's `reference_date`), relative dates count too:
//!    "yesterday", "3 days ago", "last week", "last month", "last Friday"…
//!    ([`relative_dates`]).
//!
//! The constants were measured on LoCoMo's development half (BENCHMARKS.md)
//! and hold with one conversation left out of the choice; the stop words,
//! speaker and date rules were written before any measurement.

use std::collections::{HashMap, HashSet};

use chrono::{Datelike, NaiveDate};
use uuid::Uuid;

use super::MemoryItem;
use crate::model::keywords;
use crate::store::Neighbour;

/// Weight of the semantic part of the base score (the keyword part has the rest).
pub const SEMANTIC_WEIGHT: f32 = 0.6;
/// Weight of the better neighbour's base score.
pub const NEIGHBOUR_WEIGHT: f32 = 0.5;
/// Factor for memories of another speaker than the one the query names.
pub const OTHER_SPEAKER: f32 = 0.6;
/// Weight of a date match.
pub const DATE_WEIGHT: f32 = 0.2;

/// The semantic part of a base score: the cosine clamped to [0, 1], from a
/// semantic score `(1 + cos) / 2`.
fn cos_plus(semantic_score: f32) -> f32 {
    (2.0 * semantic_score - 1.0).clamp(0.0, 1.0)
}

/// Ranks the loaded memories for `query`. `keyword` holds the keyword
/// candidates with the store's raw relevance; `loaded` every candidate and
/// neighbour with its semantic score (see [`crate::store::Store::hybrid_candidates`]).
/// Relative dates in the query are read from `reference`, when given.
pub fn hybrid(
    query: &str,
    reference: Option<NaiveDate>,
    keyword: &[(Uuid, f32)],
    loaded: Vec<Neighbour>,
) -> Vec<MemoryItem> {
    let best_kw = keyword.iter().map(|(_, s)| *s).fold(0.0_f32, f32::max);
    let kw: HashMap<Uuid, f32> = keyword
        .iter()
        .map(|(id, s)| {
            let s = if best_kw > 0.0 {
                (s / best_kw).clamp(0.0, 1.0)
            } else {
                0.0
            };
            (*id, s)
        })
        .collect();
    let base: HashMap<Uuid, f32> = loaded
        .iter()
        .map(|n| {
            let sem = cos_plus(n.item.score.unwrap_or(0.0));
            let k = kw.get(&n.item.id).copied().unwrap_or(0.0);
            (
                n.item.id,
                SEMANTIC_WEIGHT * sem + (1.0 - SEMANTIC_WEIGHT) * k,
            )
        })
        .collect();
    // Links are known for the candidates; a neighbour's link back to its
    // candidate follows from them.
    let mut links: HashMap<Uuid, (Option<Uuid>, Option<Uuid>)> = HashMap::new();
    for n in &loaded {
        let e = links.entry(n.item.id).or_default();
        e.0 = e.0.or(n.before);
        e.1 = e.1.or(n.after);
        if let Some(b) = n.before {
            links.entry(b).or_default().1.get_or_insert(n.item.id);
        }
        if let Some(a) = n.after {
            links.entry(a).or_default().0.get_or_insert(n.item.id);
        }
    }
    let base_of = |id: Option<Uuid>| id.and_then(|i| base.get(&i)).copied().unwrap_or(0.0);

    let words: HashSet<String> = keywords::words(query).collect();
    let speakers: HashSet<String> = loaded.iter().filter_map(|n| speaker(&n.item)).collect();
    let named: Vec<&String> = speakers
        .iter()
        .filter(|s| keywords::words(s).all(|w| words.contains(&w)))
        .collect();
    let named = match named.as_slice() {
        [one] => Some((*one).clone()),
        _ => None,
    };
    let mut dates = query_dates(query);
    if let Some(day) = reference {
        dates.extend(relative_dates(query, day));
    }

    let mut out: Vec<MemoryItem> = Vec::with_capacity(loaded.len());
    for n in loaded {
        let mut m = n.item;
        let (before, after) = links.get(&m.id).copied().unwrap_or((None, None));
        let own = base.get(&m.id).copied().unwrap_or(0.0);
        let neighbour = base_of(before).max(base_of(after));
        let mut s = (own + NEIGHBOUR_WEIGHT * neighbour) / (1.0 + NEIGHBOUR_WEIGHT);
        let mut speaker_factor = 1.0;
        if let Some(named) = &named
            && speaker(&m).is_some_and(|sp| &sp != named)
        {
            speaker_factor = OTHER_SPEAKER;
            s *= OTHER_SPEAKER;
        }
        let mut date_match = None;
        if !dates.is_empty() {
            let said = m.created_at.date_naive();
            let matched = dates.iter().any(|q| q.matches(said));
            date_match = Some(matched);
            let d = if matched { 1.0 } else { 0.0 };
            s = (s + DATE_WEIGHT * d) / (1.0 + DATE_WEIGHT);
        }
        let fused = s.clamp(0.0, 1.0);
        m.score_details = Some(crate::model::ScoreDetails {
            semantic: Some(cos_plus(m.score.unwrap_or(0.0))),
            keyword: Some(kw.get(&m.id).copied().unwrap_or(0.0)),
            base: Some(own),
            neighbour: Some(neighbour),
            speaker_factor: Some(speaker_factor),
            date_match,
            fused,
        });
        m.score = Some(fused);
        out.push(m);
    }
    out.sort_by(|a, b| {
        b.score
            .unwrap_or(0.0)
            .total_cmp(&a.score.unwrap_or(0.0))
            .then(a.created_at.cmp(&b.created_at))
            .then(a.id.cmp(&b.id))
    });
    out
}

/// The reranker's instructions (mem0's `llm_reranker`), when the
/// configuration gives none.
pub const RERANK_PROMPT: &str = "You are a relevance scoring assistant. Given a query and a \
document, rate how relevant the document is to the query, from 0.0 (not relevant) to 1.0 \
(perfectly relevant). Answer with the number only.";

/// A reranker's answer as a score in [0, 1]: its first number (0.5 when it
/// holds none, as mem0 does).
pub fn relevance(answer: &str) -> f32 {
    let number: String = answer
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|w| w.chars().any(|c| c.is_ascii_digit()))
        .map(|w| w.trim_matches('.').to_owned())
        .unwrap_or_default();
    number
        .parse::<f32>()
        .map(|x| x.clamp(0.0, 1.0))
        .unwrap_or(0.5)
}

/// `text`, cut to at most `max` bytes at a character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Who said a memory: its `actor_id`, or the one to three words before the
/// first `": "` of its text ("Caroline: I went…"), lower-case.
pub fn speaker(m: &MemoryItem) -> Option<String> {
    if let Some(a) = m.actor_id.as_deref().filter(|a| !a.trim().is_empty()) {
        return Some(a.trim().to_lowercase());
    }
    let (name, _) = m.memory.split_once(": ")?;
    let n = name.split_whitespace().count();
    ((1..=3).contains(&n)
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || " .'-".contains(c)))
    .then(|| name.trim().to_lowercase())
}

/// A day, a month or a span of days the query names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryDate {
    /// "8 May 2023", "May 8th, 2023", "yesterday".
    Day(NaiveDate),
    /// "May 2023", "last month".
    Month(i32, u32),
    /// From the first day to the last, both included: "last week", "last year".
    Days(NaiveDate, NaiveDate),
}

impl QueryDate {
    fn matches(self, day: NaiveDate) -> bool {
        match self {
            QueryDate::Day(d) => d == day,
            QueryDate::Month(y, m) => day.year() == y && day.month() == m,
            QueryDate::Days(first, last) => first <= day && day <= last,
        }
    }
}

/// A small count in words or digits ("a", "two", "3").
fn count(word: &str) -> Option<i64> {
    const WORDS: [&str; 10] = [
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ];
    match word {
        "a" | "an" => Some(1),
        w => WORDS
            .iter()
            .position(|n| *n == w)
            .map(|i| i as i64 + 1)
            .or_else(|| w.parse().ok().filter(|n| (1..=1000).contains(n))),
    }
}

/// The month `back` months before `(year, month)`.
fn months_before(year: i32, month: u32, back: i64) -> Option<QueryDate> {
    let index = i64::from(year) * 12 + i64::from(month) - 1 - back;
    let year = i32::try_from(index.div_euclid(12)).ok()?;
    let month = u32::try_from(index.rem_euclid(12)).ok()? + 1;
    Some(QueryDate::Month(year, month))
}

/// The whole year `year`.
fn whole_year(year: i32) -> Option<QueryDate> {
    Some(QueryDate::Days(
        NaiveDate::from_ymd_opt(year, 1, 1)?,
        NaiveDate::from_ymd_opt(year, 12, 31)?,
    ))
}

/// The dates a query names relative to the day `today` (mem0's
/// `reference_date`): "today", "tonight", "this morning"; "yesterday",
/// "last night", "the day before yesterday"; "N days ago"; "last week"
/// (Monday to Sunday before this week), "this week", "N weeks ago", "last
/// weekend"; "last month", "this month", "N months ago"; "last year",
/// "this year", "N years ago"; "last Friday" (the latest Friday before
/// today). Counts may be words up to ten ("two weeks ago", "a month ago").
pub fn relative_dates(query: &str, today: NaiveDate) -> Vec<QueryDate> {
    let words: Vec<String> = query
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    let days = chrono::Duration::days;
    let monday = today - days(i64::from(today.weekday().num_days_from_monday()));
    let (y, m) = (today.year(), today.month());
    let mut out = Vec::new();
    for i in 0..words.len() {
        let prev = i.checked_sub(1).map_or("", w);
        let found = match (w(i), w(i + 1)) {
            ("today" | "tonight", _) => Some(QueryDate::Day(today)),
            ("this", "morning" | "afternoon" | "evening") => Some(QueryDate::Day(today)),
            ("yesterday", _) if prev == "before" && i >= 2 && w(i - 2) == "day" => {
                Some(QueryDate::Day(today - days(2)))
            }
            ("yesterday", _) | ("last", "night") => Some(QueryDate::Day(today - days(1))),
            ("last", "week") => Some(QueryDate::Days(monday - days(7), monday - days(1))),
            ("this", "week") => Some(QueryDate::Days(monday, today)),
            ("last", "weekend") => Some(QueryDate::Days(monday - days(2), monday - days(1))),
            ("last", "month") => months_before(y, m, 1),
            ("this", "month") => Some(QueryDate::Month(y, m)),
            ("last", "year") => whole_year(y - 1),
            ("this", "year") => {
                NaiveDate::from_ymd_opt(y, 1, 1).map(|first| QueryDate::Days(first, today))
            }
            ("last", day) => weekday(day).map(|wd| {
                let back =
                    (7 + today.weekday().num_days_from_monday() - wd.num_days_from_monday() - 1)
                        % 7
                        + 1;
                QueryDate::Day(today - days(i64::from(back)))
            }),
            (n, unit) if w(i + 2) == "ago" => {
                count(n).and_then(|n| match unit.trim_end_matches('s') {
                    "day" => Some(QueryDate::Day(today - days(n))),
                    "week" => {
                        let start = monday - days(7 * n);
                        Some(QueryDate::Days(start, start + days(6)))
                    }
                    "month" => months_before(y, m, n),
                    "year" => whole_year(y - i32::try_from(n).ok()?),
                    _ => None,
                })
            }
            _ => None,
        };
        out.extend(found);
    }
    out
}

/// A weekday from its English name.
fn weekday(word: &str) -> Option<chrono::Weekday> {
    word.parse::<chrono::Weekday>()
        .ok()
        .filter(|_| word.len() >= 6 && word.ends_with("day"))
}

/// A month's number from its English name or its usual abbreviation.
fn month(word: &str) -> Option<u32> {
    const NAMES: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let w = word.trim_end_matches('.').to_lowercase();
    let i = NAMES.iter().position(|n| {
        *n == w || (w.len() == 3 && n.starts_with(&w)) || (w == "sept" && *n == "september")
    })?;
    u32::try_from(i + 1).ok()
}

fn day(word: &str) -> Option<u32> {
    let digits = word
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .trim_end_matches(',');
    let suffix = &word[digits.len()..].trim_end_matches(',').to_lowercase();
    if !["", "st", "nd", "rd", "th"].contains(&suffix.as_str()) {
        return None;
    }
    digits.parse().ok().filter(|d| (1..=31).contains(d))
}

fn year(word: &str) -> Option<i32> {
    let w = word.trim_end_matches(|c: char| !c.is_ascii_digit());
    (w.len() == 4)
        .then(|| w.parse().ok())
        .flatten()
        .filter(|y| (1000..=9999).contains(y))
}

/// The days the query names ("8 May 2023", "May 8, 2023", "May 8th 2023")
/// or, when it names none, the months ("May 2023"). Years alone are not
/// dates here.
pub fn query_dates(query: &str) -> Vec<QueryDate> {
    let words: Vec<&str> = query
        .split(|c: char| c.is_whitespace() || "?!.;:()\"".contains(c))
        .filter(|w| !w.is_empty())
        .map(|w| w.trim_end_matches(','))
        .collect();
    let mut days = Vec::new();
    let mut months = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let Some(m) = month(w) else { continue };
        let next = words.get(i + 1).copied();
        let after = words.get(i + 2).copied();
        let prev = i.checked_sub(1).and_then(|p| words.get(p)).copied();
        // "8 May 2023"
        if let (Some(d), Some(y)) = (prev.and_then(day), next.and_then(year))
            && let Some(date) = NaiveDate::from_ymd_opt(y, m, d)
        {
            days.push(QueryDate::Day(date));
            continue;
        }
        // "May 8, 2023"
        if let (Some(d), Some(y)) = (next.and_then(day), after.and_then(year))
            && let Some(date) = NaiveDate::from_ymd_opt(y, m, d)
        {
            days.push(QueryDate::Day(date));
            continue;
        }
        // "May 2023"
        if let Some(y) = next.and_then(year) {
            months.push(QueryDate::Month(y, m));
        }
    }
    if days.is_empty() { months } else { days }
}

#[cfg(test)]
mod rerank_tests {
    use super::*;

    #[test]
    fn a_rerankers_answer_is_its_first_number() {
        assert_eq!(relevance("0.8"), 0.8);
        assert_eq!(relevance("Score: 0.35 (fairly relevant)"), 0.35);
        assert_eq!(relevance("1"), 1.0);
        assert_eq!(relevance("7"), 1.0);
        assert_eq!(relevance("not relevant at all"), 0.5);
        assert_eq!(truncate("héllo", 2), "h");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn item(n: u128, text: &str, day: &str, semantic: f32) -> MemoryItem {
        let mut m: MemoryItem = serde_json::from_value(serde_json::json!({
            "id": Uuid::from_u128(n), "memory": text, "hash": "h", "metadata": {},
            "created_at": format!("{day}T12:00:00Z"), "updated_at": "2024-01-01T00:00:00Z",
            "valid_from": "2024-01-01T00:00:00Z"
        }))
        .unwrap();
        m.score = Some(semantic);
        m
    }

    fn loaded(m: MemoryItem, before: Option<u128>, after: Option<u128>) -> Neighbour {
        Neighbour {
            item: m,
            before: before.map(Uuid::from_u128),
            after: after.map(Uuid::from_u128),
        }
    }

    #[test]
    fn dates_in_questions() {
        let d = |y, m, d| QueryDate::Day(NaiveDate::from_ymd_opt(y, m, d).unwrap());
        assert_eq!(
            query_dates("What did she do on 8 May 2023?"),
            [d(2023, 5, 8)]
        );
        assert_eq!(
            query_dates("after May 8th, 2023 and Jan 2, 2024"),
            [d(2023, 5, 8), d(2024, 1, 2)]
        );
        assert_eq!(query_dates("in June 2022?"), [QueryDate::Month(2022, 6)]);
        assert!(query_dates("in 2022, may we go?").is_empty());
        // No such day: the month is still named.
        assert_eq!(query_dates("31 February 2023"), [QueryDate::Month(2023, 2)]);
        assert!(query_dates("nothing here").is_empty());
    }

    #[test]
    fn speakers_from_actor_or_prefix() {
        let mut m = item(1, "Caroline: I went to a support group", "2023-05-08", 0.5);
        assert_eq!(speaker(&m).as_deref(), Some("caroline"));
        m.memory = "Note: a very long prefix that is not a name: x".into();
        assert_eq!(speaker(&m).as_deref(), Some("note"));
        m.memory = "The plan for the four of us: go".into();
        assert_eq!(speaker(&m), None);
        m.actor_id = Some("Mel".into());
        assert_eq!(speaker(&m).as_deref(), Some("mel"));
    }

    #[test]
    fn neighbours_speakers_and_dates_move_scores_within_range() {
        // 1 and 2 are a question and its answer; 3 is the other speaker.
        let q = "What games does Melanie like on 8 May 2023?";
        let a = item(1, "Caroline: What games do you like?", "2023-05-08", 0.9);
        let b = item(2, "Melanie: Charades, mostly", "2023-05-08", 0.7);
        let c = item(3, "Melanie: I paint on weekends", "2023-06-01", 0.6);
        let d = item(4, "Caroline: I like board games", "2023-06-01", 0.7);
        let kw = vec![(Uuid::from_u128(1), 4.0), (Uuid::from_u128(4), 2.0)];
        let ranked = hybrid(
            q,
            None,
            &kw,
            vec![
                loaded(a, None, Some(2)),
                loaded(b, None, None),
                loaded(c, None, None),
                loaded(d, None, None),
            ],
        );
        let ids: Vec<u128> = ranked.iter().map(|m| m.id.as_u128()).collect();
        // The answer (2) rises above the other speaker's lines through its
        // neighbour, the date and the named speaker.
        assert_eq!(ids[0], 2, "{ranked:?}");
        assert!(
            ranked
                .iter()
                .all(|m| (0.0..=1.0).contains(&m.score.unwrap()))
        );
        let s = |id: u128| {
            ranked
                .iter()
                .find(|m| m.id.as_u128() == id)
                .unwrap()
                .score
                .unwrap()
        };
        // Without the date and speaker rules, 1 would be first: its own base
        // is the highest (0.6·0.8 + 0.4·1 = 0.88).
        assert!(s(1) < s(2));
        assert!(hybrid("x", None, &[], Vec::new()).is_empty());

        // Read from a reference day, "yesterday" is 7 May 2023: the lines
        // said then rise; without a reference day, nothing changes.
        let said = |id, day| loaded(item(id, "Melanie: hello there", day, 0.7), None, None);
        let ranked = |reference| {
            hybrid(
                "What did we say yesterday?",
                reference,
                &[],
                vec![said(1, "2023-05-06"), said(2, "2023-05-07")],
            )
        };
        let first = |r: Vec<MemoryItem>| r[0].id.as_u128();
        assert_eq!(first(ranked(NaiveDate::from_ymd_opt(2023, 5, 8))), 2);
        assert_eq!(first(ranked(None)), 1);
    }

    #[test]
    fn relative_dates_read_from_the_reference_day() {
        let d = |m, day| NaiveDate::from_ymd_opt(2023, m, day).unwrap();
        // Monday 8 May 2023.
        let today = d(5, 8);
        let at = |q: &str| relative_dates(q, today);
        assert_eq!(at("what did I eat yesterday?"), [QueryDate::Day(d(5, 7))]);
        assert_eq!(at("the day before yesterday"), [QueryDate::Day(d(5, 6))]);
        assert_eq!(at("plans for tonight"), [QueryDate::Day(today)]);
        assert_eq!(at("3 days ago"), [QueryDate::Day(d(5, 5))]);
        assert_eq!(at("two weeks ago"), [QueryDate::Days(d(4, 24), d(4, 30))]);
        assert_eq!(at("last week"), [QueryDate::Days(d(5, 1), d(5, 7))]);
        assert_eq!(at("last weekend"), [QueryDate::Days(d(5, 6), d(5, 7))]);
        assert_eq!(at("Last month"), [QueryDate::Month(2023, 4)]);
        assert_eq!(at("a month ago"), [QueryDate::Month(2023, 4)]);
        assert_eq!(at("six months ago"), [QueryDate::Month(2022, 11)]);
        assert_eq!(
            at("last year"),
            [QueryDate::Days(
                NaiveDate::from_ymd_opt(2022, 1, 1).unwrap(),
                NaiveDate::from_ymd_opt(2022, 12, 31).unwrap()
            )]
        );
        // The latest Friday before Monday the 8th; a Monday means a week back.
        assert_eq!(at("last Friday"), [QueryDate::Day(d(5, 5))]);
        assert_eq!(at("last monday"), [QueryDate::Day(d(5, 1))]);
        assert!(at("the last time we spoke").is_empty());
        assert!(at("what was said?").is_empty());
    }
}
