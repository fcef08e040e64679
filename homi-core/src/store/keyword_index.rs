//! In-process keyword index of one scope: each memory's distinct stemmed
//! words, and for each stem the memories holding it. It ranks by BM25 as the
//! Postgres store does in SQL ([`crate::model::keywords`]): a stem counts once
//! per memory, a memory's length is its number of distinct stems against the
//! matches' average, and a stem's rarity is its document frequency among the
//! readable matches against the scope's size. The statistics are the scope's
//! own, never another user's.
//!
//! Words are lower-case runs of letters and digits
//! ([`crate::model::keywords::words`]), stop words left out, stemmed with
//! Snowball's English stemmer (the stemmer of Postgres' `english`
//! configuration).

use std::collections::{HashMap, HashSet};

use rust_stemmers::{Algorithm, Stemmer};

use crate::model::keywords::{self, BM25_B, BM25_K1};

/// The distinct stems of `text` in order of first appearance.
pub(crate) fn stems(text: &str) -> Vec<String> {
    let stemmer = Stemmer::create(Algorithm::English);
    let mut seen = HashSet::new();
    let mut out: Vec<String> = Vec::new();
    for word in keywords::words(text) {
        if keywords::is_stopword(&word) {
            continue;
        }
        let stem = stemmer.stem(&word).into_owned();
        if seen.insert(stem.clone()) {
            out.push(stem);
        }
    }
    out
}

/// One scope's keyword index, by row id.
#[derive(Debug, Default, Clone)]
pub(crate) struct KeywordIndex {
    /// Stem → its id.
    ids: HashMap<Box<str>, u32>,
    /// Stem id → the rows holding it (unordered).
    postings: Vec<Vec<i64>>,
    /// Row → its distinct stem ids.
    rows: HashMap<i64, Box<[u32]>>,
}

impl KeywordIndex {
    /// Indexes rows not indexed yet, their stems computed on every core.
    pub(crate) fn extend(&mut self, rows: Vec<(i64, String)>) {
        let threads = std::thread::available_parallelism()
            .map(|t| t.get())
            .unwrap_or(1)
            .min(rows.len().div_ceil(256))
            .max(1);
        let per = rows.len().div_ceil(threads).max(1);
        let stemmed: Vec<Vec<(i64, Vec<String>)>> = std::thread::scope(|scope| {
            let parts: Vec<_> = rows
                .chunks(per)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|(rid, text)| (*rid, stems(text)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            parts
                .into_iter()
                .map(|p| p.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        for (rid, stems) in stemmed.into_iter().flatten() {
            self.insert(rid, stems);
        }
    }

    /// Indexes `rid` with `text`, replacing what it held before.
    pub(crate) fn upsert(&mut self, rid: i64, text: &str) {
        self.remove(rid);
        self.insert(rid, stems(text));
    }

    fn insert(&mut self, rid: i64, stems: Vec<String>) {
        let mut held = Vec::new();
        for stem in stems {
            let id = match self.ids.get(stem.as_str()) {
                Some(&id) => id,
                None => {
                    // Past 2³² distinct stems a new one is not indexed
                    // rather than share another's list.
                    let Ok(id) = u32::try_from(self.postings.len()) else {
                        continue;
                    };
                    self.ids.insert(stem.into_boxed_str(), id);
                    self.postings.push(Vec::new());
                    id
                }
            };
            self.postings[id as usize].push(rid);
            held.push(id);
        }
        self.rows.insert(rid, held.into_boxed_slice());
    }

    /// Heap bytes held, roughly: a hash-map entry costs its key and value
    /// and about as much again in table overhead.
    pub(crate) fn bytes(&self) -> usize {
        let stems: usize = self.ids.keys().map(|k| k.len() + 2 * 20).sum();
        let postings: usize = self.postings.iter().map(|p| p.capacity() * 8 + 24).sum();
        let rows: usize = self.rows.values().map(|h| h.len() * 4 + 2 * 24).sum();
        stems + postings + rows
    }

    /// Forgets `rid`.
    pub(crate) fn remove(&mut self, rid: i64) {
        if let Some(held) = self.rows.remove(&rid) {
            for id in held.iter() {
                let list = &mut self.postings[*id as usize];
                if let Some(i) = list.iter().position(|r| *r == rid) {
                    list.swap_remove(i);
                }
            }
        }
    }

    /// The best `limit` rows for `terms` (query words, stemmed here) among
    /// those `readable` accepts, best first (ties: lower row id first), with
    /// their BM25 relevance. Each term counts, as in the Postgres store's
    /// query, even when two share a stem.
    pub(crate) fn search(
        &self,
        terms: &[String],
        limit: usize,
        readable: impl Fn(i64) -> bool,
    ) -> Vec<(i64, f32)> {
        let stemmer = Stemmer::create(Algorithm::English);
        let mut wanted: Vec<u32> = Vec::new();
        for t in terms {
            if let Some(id) = self.ids.get(stemmer.stem(&t.to_lowercase()).as_ref()) {
                wanted.push(*id);
            }
        }
        if wanted.is_empty() || limit == 0 {
            return Vec::new();
        }
        // Each readable match once, with the wanted stems it holds.
        let mut matches: HashMap<i64, Vec<usize>> = HashMap::new();
        let mut df = vec![0usize; wanted.len()];
        for (k, id) in wanted.iter().enumerate() {
            for &rid in &self.postings[*id as usize] {
                if readable(rid) {
                    matches.entry(rid).or_default().push(k);
                    df[k] += 1;
                }
            }
        }
        if matches.is_empty() {
            return Vec::new();
        }
        let n = self.rows.len() as f64;
        let idf: Vec<f64> = df
            .iter()
            .map(|&d| (1.0 + (n - d as f64 + 0.5) / (d as f64 + 0.5)).ln())
            .collect();
        let len = |rid: i64| self.rows.get(&rid).map_or(0, |h| h.len()) as f64;
        let avgdl = (matches.keys().map(|&r| len(r)).sum::<f64>() / matches.len() as f64).max(1.0);
        let mut scored: Vec<(i64, f32)> = matches
            .iter()
            .map(|(&rid, held)| {
                let sum: f64 = held.iter().map(|&k| idf[k]).sum();
                let norm = 1.0 + BM25_K1 * (1.0 - BM25_B + BM25_B * len(rid) / avgdl);
                (rid, (sum * (BM25_K1 + 1.0) / norm) as f32)
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(limit);
        scored
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn stems_are_distinct_and_leave_stop_words_out() {
        assert_eq!(
            stems("The runner was running; runners run. Hiking!"),
            ["runner", "run", "hike"]
        );
        assert!(stems("what is it?").is_empty());
    }

    #[test]
    fn a_rare_word_outranks_a_common_one_and_unreadable_rows_do_not_count() {
        let mut ix = KeywordIndex::default();
        for rid in 1..=20 {
            ix.upsert(rid, "we talked about the weather today");
        }
        ix.upsert(21, "Caroline went hiking in the mountains");
        ix.upsert(22, "the weather was good for hiking with Caroline");
        let found = ix.search(&["caroline".into(), "weather".into()], 5, |_| true);
        assert_eq!(found[0].0, 22, "{found:?}");
        assert_eq!(found[1].0, 21, "{found:?}");
        // Row 22 unreadable (superseded, deleted, another time): gone, and
        // it no longer counts in the statistics.
        let found = ix.search(&["caroline".into()], 5, |r| r != 22);
        assert_eq!(found.iter().map(|f| f.0).collect::<Vec<_>>(), [21]);
        // A stemmed query word finds the other forms.
        let found = ix.search(&["hikes".into()], 5, |_| true);
        assert_eq!(found.len(), 2);
    }

    #[test]
    fn upsert_replaces_and_remove_forgets() {
        let mut ix = KeywordIndex::default();
        ix.upsert(1, "a red bicycle");
        ix.upsert(2, "a blue bicycle");
        ix.upsert(1, "a green kayak");
        assert!(ix.search(&["red".into()], 5, |_| true).is_empty());
        assert_eq!(ix.search(&["kayak".into()], 5, |_| true)[0].0, 1);
        ix.remove(2);
        assert!(ix.search(&["bicycle".into()], 5, |_| true).is_empty());
        assert_eq!(ix.rows.len(), 1);
    }

    #[test]
    fn ties_go_to_the_lower_row_id_and_the_limit_holds() {
        let mut ix = KeywordIndex::default();
        for rid in [5, 3, 9, 1] {
            ix.upsert(rid, "garden party");
        }
        let found = ix.search(&["garden".into()], 3, |_| true);
        assert_eq!(found.iter().map(|f| f.0).collect::<Vec<_>>(), [1, 3, 5]);
    }
}
