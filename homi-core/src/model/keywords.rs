//! The words of a query that keyword search looks for. Both stores get the
//! same terms, and their answers are scored here, so a score means the same
//! on each.

use std::collections::HashSet;

use super::types::MemoryItem;

/// BM25's term-frequency saturation (the usual value, also SQLite FTS5's and Lucene's).
pub const BM25_K1: f64 = 1.2;
/// BM25's document-length normalisation (the usual value, also SQLite FTS5's and Lucene's).
pub const BM25_B: f64 = 0.75;

/// Most terms one keyword search looks for.
pub const MAX_TERMS: usize = 32;

/// Words that say nothing about which memory is meant: generic English
/// function words and question words, and what apostrophes leave behind
/// ("Mel's" → "s"). Written before any measurement, not tuned to a data set.
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "of", "to", "in", "on", "at", "for", "with", "by", "from",
    "about", "as", "is", "are", "was", "were", "be", "been", "being", "do", "does", "did", "done",
    "doing", "have", "has", "had", "having", "what", "when", "where", "which", "who", "whom",
    "whose", "why", "how", "that", "this", "these", "those", "it", "its", "there", "their", "they",
    "them", "he", "she", "his", "her", "him", "i", "me", "my", "we", "our", "you", "your", "would",
    "could", "should", "can", "will", "may", "might", "shall", "into", "than", "then", "so", "if",
    "not", "no", "any", "some", "much", "many", "s", "t", "d", "ll", "m", "re", "ve",
];

/// Whether `word` (lower-case) is a stop word: never looked for.
pub fn is_stopword(word: &str) -> bool {
    STOPWORDS.contains(&word)
}

/// The lower-case runs of letters and digits of `text`, in order.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// The distinct words of `text` worth looking for: lower-case runs of
/// letters and digits, stop words left out, at most [`MAX_TERMS`], in order.
///
/// ```
/// use homi_core::memory::keywords::terms;
/// assert_eq!(terms("When did Caroline go to the LGBTQ support group?"),
///            ["caroline", "go", "lgbtq", "support", "group"]);
/// assert!(terms("what is it?").is_empty());
/// ```
pub fn terms(text: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    words(text)
        .filter(|w| !is_stopword(w))
        .filter(|w| seen.insert(w.clone()))
        .take(MAX_TERMS)
        .collect()
}

/// Keyword results alone: each score divided by the best one, in [0, 1].
pub fn keyword_only(mut keyword: Vec<MemoryItem>) -> Vec<MemoryItem> {
    let best = keyword
        .iter()
        .filter_map(|m| m.score)
        .fold(0.0_f32, f32::max);
    for m in &mut keyword {
        m.score = Some(match m.score {
            Some(s) if best > 0.0 => (s / best).clamp(0.0, 1.0),
            _ => 0.0,
        });
    }
    sort_by_score(&mut keyword);
    keyword
}

/// Best score first; ties by id, so both stores answer in one order.
pub(crate) fn sort_by_score(items: &mut [MemoryItem]) {
    items.sort_by(|a, b| {
        b.score
            .unwrap_or(0.0)
            .total_cmp(&a.score.unwrap_or(0.0))
            .then(a.id.cmp(&b.id))
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use uuid::Uuid;

    fn item(n: u128, score: f32) -> MemoryItem {
        let mut m: MemoryItem = serde_json::from_value(serde_json::json!({
            "id": Uuid::from_u128(n), "memory": format!("m{n}"), "hash": "h", "metadata": {},
            "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
            "valid_from": "2024-01-01T00:00:00Z"
        }))
        .unwrap();
        m.score = Some(score);
        m
    }

    #[test]
    fn terms_drop_stopwords_punctuation_and_repeats() {
        assert_eq!(
            terms("Where's Melanie's dog? The DOG, not the cat!"),
            ["melanie", "dog", "cat"]
        );
        assert_eq!(terms("Café in Zürich 2023"), ["café", "zürich", "2023"]);
        assert_eq!(terms(&"word ".repeat(100)), ["word"]);
        let many: String = (0..100).map(|i| format!("w{i} ")).collect();
        assert_eq!(terms(&many).len(), MAX_TERMS);
    }

    #[test]
    fn keyword_scores_are_relative_to_the_best() {
        let only = keyword_only(vec![item(5, 2.0), item(6, 8.0)]);
        assert_eq!(only[0].id.as_u128(), 6);
        assert_eq!(only[0].score, Some(1.0));
        assert_eq!(only[1].score, Some(0.25));
    }
}
