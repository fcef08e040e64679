//! Synthetic embeddings for the benchmarks, clustered like sentence
//! embeddings: 64 topics × 16 subtopics, `normalize(topic + 0.7·subtopic +
//! 0.8·noise)`. Queries are fresh draws from the same distribution.
#![allow(dead_code)]

use homi_core::store::normalize;

/// A seeded generator of clustered unit vectors.
pub struct Gen {
    state: u64,
    topics: Vec<Vec<f32>>,
    subtopics: Vec<Vec<f32>>,
    dims: usize,
}

impl Gen {
    /// A generator of `dims`-dimensional vectors.
    pub fn new(dims: usize, seed: u64) -> Self {
        let mut g = Gen {
            state: seed,
            topics: Vec::new(),
            subtopics: Vec::new(),
            dims,
        };
        g.topics = (0..64).map(|_| g.unit()).collect();
        g.subtopics = (0..64 * 16).map(|_| g.unit()).collect();
        g
    }

    /// A uniformly random u64 (splitmix64).
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn gauss(&mut self) -> f32 {
        // Sum of uniforms: close enough to normal for this purpose, and fast.
        let mut s = 0.0f32;
        for _ in 0..4 {
            s += (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        }
        (s - 2.0) * 1.732
    }

    fn unit(&mut self) -> Vec<f32> {
        let mut v: Vec<f32> = (0..self.dims).map(|_| self.gauss()).collect();
        normalize(&mut v);
        v
    }

    /// One embedding-like vector.
    pub fn sample(&mut self) -> Vec<f32> {
        let sub = (self.next_u64() % self.subtopics.len() as u64) as usize;
        let topic = sub / 16;
        let noise = self.unit();
        let mut v: Vec<f32> = (0..self.dims)
            .map(|i| self.topics[topic][i] + 0.7 * self.subtopics[sub][i] + 0.8 * noise[i])
            .collect();
        normalize(&mut v);
        v
    }
}

/// The value at percentile `p` (0..=1) of sorted durations, in milliseconds.
pub fn percentile_ms(sorted: &[std::time::Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3
}

impl Gen {
    /// `n` made-up words drawn from a Zipf distribution over 5,000 words
    /// (the first are common, most are rare), joined by spaces.
    pub fn words(&mut self, n: usize) -> String {
        self.zipf_words(n, 0)
    }

    /// Like [`Gen::words`], without the `skip` commonest words.
    pub fn query_words(&mut self, n: usize, skip: usize) -> String {
        self.zipf_words(n, skip)
    }

    fn zipf_words(&mut self, n: usize, skip: usize) -> String {
        const VOCAB: f64 = 5000.0;
        const SYLLABLES: [&str; 16] = [
            "ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "bri", "dan", "el", "fo", "gu", "hi",
            "jo", "pe",
        ];
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            // Inverse-CDF sample of Zipf(1): rank ≈ VOCAB^u.
            let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            let rank = VOCAB.powf(u).floor() as usize;
            if rank <= skip {
                continue;
            }
            let mut word = String::new();
            let mut r = rank;
            loop {
                word.push_str(SYLLABLES[r % 16]);
                r /= 16;
                if r == 0 {
                    break;
                }
            }
            out.push(word);
        }
        out.join(" ")
    }
}
