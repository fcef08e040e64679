//! In-process vectors of one scope: unit-length f32 vectors plus 1-bit sign
//! codes, scanned with SIMD (simsimd).
//!
//! Small scopes are scanned exactly. Larger ones are scanned in three steps:
//! the Hamming distance between sign codes (1/32 of the bytes) picks a
//! generous candidate pool (see [`candidate_pool`]), an int8 dot product (1/4
//! of the bytes) narrows it to a few times the wanted count, and the exact f32
//! dot product ranks those and gives the scores. Recall against an exact scan
//! is measured in `benches/store.rs` and recorded in BENCHMARKS.md.

use std::collections::BTreeMap;

use simsimd::{BinarySimilarity, SpatialSimilarity};

/// Scopes up to this many vectors are scanned exactly.
pub(crate) const EXACT_SCAN_MAX: usize = 2048;

/// Vectors of one scope, in parallel arrays.
#[derive(Debug, Default)]
pub(crate) struct ScopeVectors {
    dims: usize,
    code_len: usize,
    /// The store's change counter this copy reflects.
    pub seq: i64,
    rids: Vec<i64>,
    /// Validity window, unix microseconds; `i64::MAX` while it has no end.
    valid_from: Vec<i64>,
    valid_to: Vec<i64>,
    /// Whether the window was closed by a newer memory (else an end is an expiry).
    superseded: Vec<bool>,
    vecs: Vec<f32>,
    codes: Vec<u8>,
    /// int8 copies of `vecs`, one scale per row.
    small: Vec<i8>,
    scales: Vec<f32>,
    /// Each row id's index in the arrays, in row-id order (the order the
    /// memories were written, which neighbours follow).
    pos: BTreeMap<i64, usize>,
    /// The same rows' words, for keyword search.
    pub keywords: super::keyword_index::KeywordIndex,
}

/// A row's validity window, unix microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub from: i64,
    /// Its end, if any.
    pub to: Option<i64>,
    /// Whether a newer memory closed it (else an end is an expiry).
    pub superseded: bool,
}

/// Which rows a scan accepts.
pub(crate) struct Accept<'a> {
    /// Only rows valid at this time (unix µs); `None` with `current_only` false accepts all.
    pub as_of: Option<i64>,
    /// Only rows not superseded, and (unless `show_expired`) not expired at `now`.
    pub current_only: bool,
    /// Expired rows too.
    pub show_expired: bool,
    /// The time of the read (unix µs).
    pub now: i64,
    /// Only these row ids (from a metadata filter evaluated in SQL).
    pub allowed: Option<&'a std::collections::HashSet<i64>>,
}

impl ScopeVectors {
    pub(crate) fn new(dims: usize, seq: i64) -> Self {
        Self {
            dims,
            code_len: dims.div_ceil(8),
            seq,
            ..Self::default()
        }
    }

    pub(crate) fn dims(&self) -> usize {
        self.dims
    }

    pub(crate) fn len(&self) -> usize {
        self.rids.len()
    }

    /// The cosine of `query` (unit length, `dims` long) with the cached
    /// vector of `rid`, if it is cached.
    pub(crate) fn cosine(&self, rid: i64, query: &[f32]) -> Option<f32> {
        let i = *self.pos.get(&rid)?;
        (query.len() == self.dims && i < self.rids.len()).then(|| self.dot(i, query))
    }

    /// Heap bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.vecs.capacity() * 4
            + self.codes.capacity()
            + self.small.capacity()
            + self.scales.capacity() * 4
            + self.rids.capacity() * 24
            // A B-tree entry and its share of the node.
            + self.pos.len() * 24
            + self.keywords.bytes()
    }

    /// Sign bits, eight dimensions a byte (written so that it vectorises).
    fn encode(v: &[f32], out: &mut [u8]) {
        out.fill(0);
        for (byte, chunk) in out.iter_mut().zip(v.chunks(8)) {
            let mut b = 0u8;
            for (j, x) in chunk.iter().enumerate() {
                b |= u8::from(*x > 0.0) << j;
            }
            *byte = b;
        }
    }

    /// int8 quantisation with one scale per vector: `v[i] ≈ q[i] * scale`.
    /// Rounds half away from zero by truncation (`round` is a library call
    /// per element on the baseline x86-64 target).
    fn quantize(v: &[f32], out: &mut [i8]) -> f32 {
        let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        if max == 0.0 || !max.is_finite() {
            out.fill(0);
            return 0.0;
        }
        let scale = max / 127.0;
        let inv = 127.0 / max;
        for (o, x) in out.iter_mut().zip(v) {
            let y = x * inv;
            *o = (y + 0.5f32.copysign(y)).clamp(-127.0, 127.0) as i8;
        }
        scale
    }

    /// Appends a row whose vector is `bytes` (little-endian f32, unit
    /// length); its codes are computed by [`ScopeVectors::derive`]. For
    /// loading a scope whole: rows already cached are left as they are.
    /// Whether the row was taken.
    pub(crate) fn append(&mut self, rid: i64, window: Window, bytes: &[u8]) -> bool {
        if bytes.len() != self.dims * 4 || self.pos.contains_key(&rid) {
            return false;
        }
        self.pos.insert(rid, self.rids.len());
        self.rids.push(rid);
        self.valid_from.push(window.from);
        self.valid_to.push(window.to.unwrap_or(i64::MAX));
        self.superseded.push(window.superseded);
        self.vecs.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        true
    }

    /// Computes the sign codes and int8 copies of every appended row, on
    /// every core.
    pub(crate) fn derive(&mut self) {
        let (n, d, c) = (self.rids.len(), self.dims, self.code_len);
        if d == 0 {
            return;
        }
        self.codes.resize(n * c, 0);
        self.small.resize(n * d, 0);
        self.scales.resize(n, 0.0);
        let threads = std::thread::available_parallelism()
            .map(|t| t.get())
            .unwrap_or(1)
            .min(n.div_ceil(256))
            .max(1);
        let per = n.div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let parts = self
                .vecs
                .chunks(per * d)
                .zip(self.codes.chunks_mut(per * c))
                .zip(self.small.chunks_mut(per * d))
                .zip(self.scales.chunks_mut(per));
            for (((vecs, codes), small), scales) in parts {
                scope.spawn(move || {
                    for (i, v) in vecs.chunks_exact(d).enumerate() {
                        Self::encode(v, &mut codes[i * c..(i + 1) * c]);
                        scales[i] = Self::quantize(v, &mut small[i * d..(i + 1) * d]);
                    }
                });
            }
        });
    }

    /// Inserts or replaces a row. `vec` must be unit length and `dims` long;
    /// whether it was.
    pub(crate) fn upsert(&mut self, rid: i64, window: Window, vec: &[f32]) -> bool {
        if vec.len() != self.dims {
            return false;
        }
        let (valid_from, valid_to) = (window.from, window.to.unwrap_or(i64::MAX));
        let i = match self.pos.get(&rid) {
            Some(&i) => i,
            None => {
                let i = self.rids.len();
                self.rids.push(rid);
                self.valid_from.push(valid_from);
                self.valid_to.push(valid_to);
                self.superseded.push(window.superseded);
                self.vecs.resize(self.vecs.len() + self.dims, 0.0);
                self.codes.resize(self.codes.len() + self.code_len, 0);
                self.small.resize(self.small.len() + self.dims, 0);
                self.scales.push(0.0);
                self.pos.insert(rid, i);
                i
            }
        };
        self.valid_from[i] = valid_from;
        self.valid_to[i] = valid_to;
        self.superseded[i] = window.superseded;
        self.vecs[i * self.dims..(i + 1) * self.dims].copy_from_slice(vec);
        let (start, end) = (i * self.code_len, (i + 1) * self.code_len);
        Self::encode(vec, &mut self.codes[start..end]);
        let d = self.dims;
        self.scales[i] = Self::quantize(vec, &mut self.small[i * d..(i + 1) * d]);
        true
    }

    /// Removes a row, if present.
    pub(crate) fn remove(&mut self, rid: i64) {
        self.keywords.remove(rid);
        let Some(i) = self.pos.remove(&rid) else {
            return;
        };
        let last = self.rids.len() - 1;
        if i != last {
            let moved = self.rids[last];
            self.rids.swap(i, last);
            self.valid_from.swap(i, last);
            self.valid_to.swap(i, last);
            self.superseded.swap(i, last);
            let d = self.dims;
            self.vecs.copy_within(last * d..(last + 1) * d, i * d);
            self.small.copy_within(last * d..(last + 1) * d, i * d);
            self.scales.swap(i, last);
            let c = self.code_len;
            self.codes.copy_within(last * c..(last + 1) * c, i * c);
            self.pos.insert(moved, i);
        }
        self.rids.pop();
        self.valid_from.pop();
        self.valid_to.pop();
        self.superseded.pop();
        self.vecs.truncate(last * self.dims);
        self.small.truncate(last * self.dims);
        self.scales.pop();
        self.codes.truncate(last * self.code_len);
    }

    /// Whether the row `rid` is accepted; `None` when it is not cached.
    pub(crate) fn accepted(&self, rid: i64, accept: &Accept<'_>) -> Option<bool> {
        self.pos.get(&rid).map(|&i| self.accepts(i, accept))
    }

    /// The accepted rows written just before and just after `rid` (which
    /// need not be cached itself), by row id.
    pub(crate) fn neighbours(&self, rid: i64, accept: &Accept<'_>) -> (Option<i64>, Option<i64>) {
        let ok = |(&r, &i): (&i64, &usize)| self.accepts(i, accept).then_some(r);
        let before = self.pos.range(..rid).rev().find_map(ok);
        let after = self.pos.range(rid.saturating_add(1)..).find_map(ok);
        (before, after)
    }

    fn accepts(&self, i: usize, accept: &Accept<'_>) -> bool {
        let expired_shown = accept.show_expired && !self.superseded[i];
        if let Some(t) = accept.as_of {
            if self.valid_from[i] > t || (self.valid_to[i] <= t && !expired_shown) {
                return false;
            }
        } else if accept.current_only
            && (self.superseded[i] || (self.valid_to[i] <= accept.now && !expired_shown))
        {
            return false;
        }
        match accept.allowed {
            Some(set) => set.contains(&self.rids[i]),
            None => true,
        }
    }

    fn dot(&self, i: usize, query: &[f32]) -> f32 {
        let v = &self.vecs[i * self.dims..(i + 1) * self.dims];
        f32::dot(v, query).map(|d| d as f32).unwrap_or(0.0)
    }

    /// The `k` rows closest to `query` (unit length), as `(rid, cosine)`, best first.
    pub(crate) fn search(&self, query: &[f32], k: usize, accept: &Accept<'_>) -> Vec<(i64, f32)> {
        if query.len() != self.dims || k == 0 {
            return Vec::new();
        }
        let n = self.rids.len();
        let all_eligible =
            accept.as_of.is_none() && !accept.current_only && accept.allowed.is_none();
        let eligible = if all_eligible {
            n
        } else {
            (0..n).filter(|&i| self.accepts(i, accept)).count()
        };
        let pool = candidate_pool(eligible, k);
        let candidates: Vec<u32> = if pool >= eligible {
            (0..n as u32)
                .filter(|&i| all_eligible || self.accepts(i as usize, accept))
                .collect()
        } else {
            let ham = self.hamming_candidates(query, pool, all_eligible, accept);
            // Step 2: int8 dot products.
            let keep = rerank_pool(k).min(pool);
            let mut qsmall = vec![0i8; self.dims];
            let qscale = Self::quantize(query, &mut qsmall);
            let d = self.dims;
            let mut approx: Vec<(f32, u32)> = ham
                .into_iter()
                .map(|i| {
                    let r = i as usize;
                    let dot =
                        i8::dot(&self.small[r * d..(r + 1) * d], &qsmall).unwrap_or(0.0) as f32;
                    (dot * self.scales[r] * qscale, i)
                })
                .collect();
            if keep < approx.len() {
                approx.select_nth_unstable_by(keep - 1, |a, b| b.0.total_cmp(&a.0));
                approx.truncate(keep);
            }
            approx.into_iter().map(|(_, i)| i).collect()
        };
        // Step 3: exact f32 dot products.
        let mut scored: Vec<(f32, usize)> = candidates
            .into_iter()
            .map(|i| (self.dot(i as usize, query), i as usize))
            .collect();
        let k = k.min(scored.len());
        if k == 0 {
            return Vec::new();
        }
        if k < scored.len() {
            scored.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
            scored.truncate(k);
        }
        scored.sort_unstable_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then(self.rids[a.1].cmp(&self.rids[b.1]))
        });
        scored.into_iter().map(|(s, i)| (self.rids[i], s)).collect()
    }

    /// Step 1: the `pool` eligible rows whose sign codes are nearest the
    /// query's (ties in row order). Distances are small integers (at most the
    /// dimension count), so a histogram finds the cut-off in one pass instead
    /// of sorting pairs.
    fn hamming_candidates(
        &self,
        query: &[f32],
        pool: usize,
        all_eligible: bool,
        accept: &Accept<'_>,
    ) -> Vec<u32> {
        let mut qcode = vec![0u8; self.code_len];
        Self::encode(query, &mut qcode);
        let c = self.code_len;
        let skip = u16::MAX;
        let mut histogram = vec![0u32; self.dims + 1];
        let dist: Vec<u16> = (0..self.rids.len())
            .map(|i| {
                if !all_eligible && !self.accepts(i, accept) {
                    return skip;
                }
                let d = u8::hamming(&self.codes[i * c..(i + 1) * c], &qcode).unwrap_or(f64::MAX);
                let d = (d as usize).min(self.dims);
                histogram[d] += 1;
                d as u16
            })
            .collect();
        // The smallest distance `cut` with at least `pool` rows at or below it.
        let mut below = 0usize;
        let mut cut = self.dims;
        for (d, count) in histogram.iter().enumerate() {
            if below + *count as usize >= pool {
                cut = d;
                break;
            }
            below += *count as usize;
        }
        let mut at_cut = pool - below;
        let mut out = Vec::with_capacity(pool);
        for (i, &d) in dist.iter().enumerate() {
            if d == skip {
                continue;
            }
            let d = d as usize;
            if d < cut {
                out.push(i as u32);
            } else if d == cut && at_cut > 0 {
                at_cut -= 1;
                out.push(i as u32);
            }
        }
        out
    }
}

/// How many int8-ranked candidates are ranked exactly for `k` wanted.
pub(crate) fn rerank_pool(k: usize) -> usize {
    k.saturating_mul(4).max(64)
}

/// How many Hamming candidates are re-ranked exactly for `n` eligible rows
/// and `k` wanted: everything up to [`EXACT_SCAN_MAX`], then the larger of
/// 40 per wanted result (at least 512) and 4% of the scope.
pub(crate) fn candidate_pool(n: usize, k: usize) -> usize {
    if n <= EXACT_SCAN_MAX {
        return n;
    }
    (k.saturating_mul(40)).max(512).max(n / 25).min(n)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn open(from: i64) -> Window {
        Window {
            from,
            to: None,
            superseded: false,
        }
    }

    fn closed(from: i64, to: i64) -> Window {
        Window {
            from,
            to: Some(to),
            superseded: true,
        }
    }

    fn unit(seed: u64, dims: usize) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut v: Vec<f32> = (0..dims)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect();
        crate::store::normalize(&mut v);
        v
    }

    #[test]
    fn upsert_remove_and_exact_search() {
        let mut sv = ScopeVectors::new(16, 0);
        for rid in 0..10 {
            sv.upsert(rid, open(0), &unit(rid as u64, 16));
        }
        sv.remove(3);
        sv.remove(9);
        assert_eq!(sv.len(), 8);
        let all = Accept {
            as_of: None,
            current_only: true,
            allowed: None,
            show_expired: false,
            now: 1_000,
        };
        let top = sv.search(&unit(5, 16), 3, &all);
        assert_eq!(top[0].0, 5);
        assert!((top[0].1 - 1.0).abs() < 1e-5);
        assert!(top.windows(2).all(|w| w[0].1 >= w[1].1));
        assert!(
            sv.search(&unit(3, 16), 10, &all)
                .iter()
                .all(|(r, _)| *r != 3)
        );
    }

    #[test]
    fn neighbours_follow_row_ids_among_accepted_rows() {
        let mut sv = ScopeVectors::new(8, 0);
        for rid in [10, 20, 30, 40, 50] {
            sv.upsert(rid, open(0), &unit(rid as u64, 8));
        }
        // 30 is superseded; 40 removed.
        sv.upsert(30, closed(0, 5), &unit(30, 8));
        sv.remove(40);
        let current = Accept {
            as_of: None,
            current_only: true,
            allowed: None,
            show_expired: false,
            now: 1_000,
        };
        assert_eq!(sv.neighbours(20, &current), (Some(10), Some(50)));
        assert_eq!(sv.neighbours(10, &current), (None, Some(20)));
        assert_eq!(sv.neighbours(50, &current), (Some(20), None));
        // A row not cached (no vector) still has neighbours.
        assert_eq!(sv.neighbours(35, &current), (Some(20), Some(50)));
        let all = Accept {
            as_of: None,
            current_only: false,
            allowed: None,
            show_expired: false,
            now: 1_000,
        };
        assert_eq!(sv.neighbours(20, &all), (Some(10), Some(30)));
        let then = Accept {
            as_of: Some(1),
            current_only: false,
            allowed: None,
            show_expired: false,
            now: 1_000,
        };
        assert_eq!(sv.neighbours(50, &then), (Some(30), None));
    }

    #[test]
    fn appended_rows_search_like_upserted_ones() {
        let dims = 40;
        let (mut a, mut b) = (ScopeVectors::new(dims, 0), ScopeVectors::new(dims, 0));
        for rid in 0..3000 {
            let v = unit(rid as u64, dims);
            a.upsert(rid, open(0), &v);
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            b.append(rid, open(0), &bytes);
        }
        b.derive();
        assert_eq!((a.codes == b.codes, a.small == b.small), (true, true));
        assert_eq!(a.scales, b.scales);
        let all = Accept {
            as_of: None,
            current_only: true,
            allowed: None,
            show_expired: false,
            now: 1_000,
        };
        let q = unit(77, dims);
        assert_eq!(a.search(&q, 10, &all), b.search(&q, 10, &all));
        // Half away from zero, within range.
        let mut out = [0i8; 4];
        let scale = ScopeVectors::quantize(&[1.0, -1.0, 0.5 / 127.0, -0.3], &mut out);
        assert_eq!(out, [127, -127, 1, -38]);
        assert!((scale - 1.0 / 127.0).abs() < 1e-9);
    }

    #[test]
    fn validity_windows_filter() {
        let mut sv = ScopeVectors::new(8, 0);
        sv.upsert(1, closed(100, 200), &unit(1, 8));
        sv.upsert(2, open(150), &unit(2, 8));
        let current = Accept {
            as_of: None,
            current_only: true,
            allowed: None,
            show_expired: false,
            now: 1_000,
        };
        assert_eq!(sv.search(&unit(1, 8), 5, &current).len(), 1);
        let then = Accept {
            as_of: Some(120),
            current_only: false,
            allowed: None,
            show_expired: false,
            now: 1_000,
        };
        let r = sv.search(&unit(1, 8), 5, &then);
        assert_eq!(r.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn expired_rows_leave_current_reads_unless_shown() {
        let mut sv = ScopeVectors::new(8, 0);
        let expires = |to| Window {
            from: 100,
            to: Some(to),
            superseded: false,
        };
        sv.upsert(1, expires(500), &unit(1, 8));
        sv.upsert(2, expires(2_000), &unit(2, 8));
        sv.upsert(3, closed(100, 300), &unit(3, 8));
        sv.upsert(4, open(100), &unit(4, 8));
        let read = |now, show_expired, as_of| Accept {
            as_of,
            current_only: true,
            allowed: None,
            show_expired,
            now,
        };
        let ids = |a: &Accept<'_>| {
            let mut r: Vec<i64> = sv.search(&unit(1, 8), 10, a).iter().map(|x| x.0).collect();
            r.sort_unstable();
            r
        };
        // At 1000, 1 has expired and 3 was superseded.
        assert_eq!(ids(&read(1_000, false, None)), [2, 4]);
        // Before its expiry, 1 is current.
        assert_eq!(ids(&read(400, false, None)), [1, 2, 4]);
        // Shown expired: 1 again, never the superseded 3.
        assert_eq!(ids(&read(1_000, true, None)), [1, 2, 4]);
        // As of 200: 3 still held; 1 too. As of 600, 1 had expired.
        assert_eq!(ids(&read(1_000, false, Some(200))), [1, 2, 3, 4]);
        assert_eq!(ids(&read(1_000, false, Some(600))), [2, 4]);
        assert_eq!(ids(&read(1_000, true, Some(600))), [1, 2, 4]);
    }

    #[test]
    fn quantized_scan_finds_near_duplicates() {
        let dims = 256;
        let mut sv = ScopeVectors::new(dims, 0);
        for rid in 0..5000 {
            sv.upsert(rid, open(0), &unit(rid as u64, dims));
        }
        let all = Accept {
            as_of: None,
            current_only: true,
            allowed: None,
            show_expired: false,
            now: 1_000,
        };
        for target in [7u64, 1234, 4999] {
            let mut q = unit(target, dims);
            q[0] += 0.05;
            crate::store::normalize(&mut q);
            let top = sv.search(&q, 5, &all);
            assert_eq!(top[0].0, target as i64);
        }
    }
}
