//! The MinHash core: shingling, signatures, banding and exact Jaccard.
//!
//! The scheme, end to end:
//! 1. **Shingles** are 64-bit hashes. [`word_shingles`] hashes every window of `k` consecutive
//!    token ids (xxh3-64 of the ids as little-endian `u32`s, seeded with [`WORD_SEED`]);
//!    [`char_shingles`] hashes every window of `k` characters of a string (xxh3-64 of its UTF-8
//!    bytes, seeded with [`CHAR_SEED`]), or the whole string when it has fewer than `k`
//!    characters. The two seeds keep the two shingle domains apart.
//! 2. **Signatures** ([`MinHasher`]): the shingle hash is folded to 32 bits and permutation `i`
//!    maps it to `a_i·x + b_i mod 2^32` with `a_i` odd; the signature holds the minimum of each
//!    map over the record's shingles. Because the shingle hashes are already uniformly mixed by
//!    xxh3, each map is a bijection that re-orders them at random. 32-bit lanes let
//!    thirty-two permutations run in four AVX2 registers per pass over the shingles (explicit
//!    intrinsics, selected at run time; the portable path computes the same values); with a
//!    few hundred shingles per record, 32-bit minima collide with negligible probability. `a_i`, `b_i` come from a fixed splitmix64 stream, so
//!    signatures are reproducible. One multiply-add per (shingle, permutation) keeps signing a
//!    60-token record to a few microseconds; the unit tests check that the estimator's error on
//!    random sets matches the binomial spread `sqrt(J(1-J)/128)` of ideal MinHash.
//! 3. **Bands** ([`Banding`], [`bands`]): the signature is cut into `b` bands of `r` rows and
//!    each band is folded into one `u64` (a multiply-xorshift chain over its rows, seeded with
//!    the band number). Only the band hashes are kept, 32 bits each (21 × 4 bytes per record
//!    with the default 21 × 6), which bounds the index to 84 bytes per record. Two records
//!    become candidates when any band hash is equal, which happens with probability
//!    `1 - (1 - J^r)^b` ([`Banding::probability`]).
//! 4. **Verification** ([`jaccard`]) is exact, over the sorted, deduplicated shingle sets.
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Permutations in the default signature.
pub const NUM_PERM: usize = 128;
/// Words (or characters, for the short-record fallback) per shingle.
pub const SHINGLE: usize = 5;
/// Seed of word-shingle hashes.
pub const WORD_SEED: u64 = 0x7475_6e65_6761_7465; // "tunegate"
/// Seed of character-shingle hashes (a different domain from word shingles).
pub const CHAR_SEED: u64 = 0x6368_6172_7368_696e; // "charshin"
/// Seed of the permutation parameters of [`MinHasher::default`].
pub const PERM_SEED: u64 = 0x6d69_6e68_6173_6831; // "minhash1"
/// Longest window [`word_shingles`] accepts.
pub const MAX_SHINGLE: usize = 32;

/// How a signature is cut into bands: `bands × rows` permutations are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Banding {
    /// Number of bands `b`.
    pub bands: usize,
    /// Rows (permutations) per band `r`.
    pub rows: usize,
}

impl Default for Banding {
    /// The banding for the default threshold 0.8 over [`NUM_PERM`] permutations: 21 bands × 6
    /// rows (126 permutations), candidate probability 0.998 at Jaccard 0.8, 0.28 at 0.5.
    fn default() -> Self {
        Banding::for_threshold(0.8, NUM_PERM)
    }
}

/// Candidate probability [`Banding::for_threshold`] guarantees for pairs right at the threshold.
pub const MIN_RECALL_AT_THRESHOLD: f64 = 0.99;

impl Banding {
    /// Probability that two records with Jaccard similarity `jaccard` share at least one band:
    /// `1 - (1 - J^r)^b`.
    pub fn probability(&self, jaccard: f64) -> f64 {
        let j = jaccard.clamp(0.0, 1.0);
        1.0 - (1.0 - j.powi(self.rows as i32)).powi(self.bands as i32)
    }

    /// The banding for a verification `threshold` with at most `num_perm` permutations: for each
    /// row count `r` the most bands that fit (`b = num_perm / r`, so `b × r ≤ num_perm`), and among
    /// those the split with the most rows per band (fewest false candidates, so least
    /// verification work) whose candidate probability at the threshold is still
    /// ≥ [`MIN_RECALL_AT_THRESHOLD`]: at most 1 % of pairs right at the threshold are missed, and
    /// far fewer above it. Falls back to one row per band. For 128 permutations: threshold 0.8
    /// gives 21 × 6 (0.998; 16 × 8 would miss 5.3 % of pairs at 0.8 and 0.6 % at 0.85), 0.85
    /// gives 16 × 8, 0.9 gives 12 × 10, 0.95 gives 8 × 16, 0.7 gives 32 × 4, 0.5 gives 42 × 3.
    pub fn for_threshold(threshold: f64, num_perm: usize) -> Banding {
        let num_perm = num_perm.max(1);
        let t = if threshold.is_finite() {
            threshold.clamp(0.0, 1.0)
        } else {
            0.8
        };
        let mut best = Banding {
            bands: num_perm,
            rows: 1,
        };
        for rows in 1..=num_perm {
            let b = Banding {
                bands: num_perm / rows,
                rows,
            };
            if b.probability(t) >= MIN_RECALL_AT_THRESHOLD {
                best = b;
            }
        }
        best
    }

    /// Permutations used (`bands × rows`).
    pub fn perms(&self) -> usize {
        self.bands * self.rows
    }
}

/// A family of MinHash permutations `h_i(x) = a_i·x + b_i mod 2^64` (see the module docs).
///
/// Invariant: `a` and `b` have the same length (the number of permutations) and every `a_i` is
/// odd, so each permutation is a bijection of `u64`.
#[derive(Debug, Clone)]
pub struct MinHasher {
    a: Vec<u32>,
    b: Vec<u32>,
}

impl Default for MinHasher {
    /// [`NUM_PERM`] permutations from [`PERM_SEED`].
    fn default() -> Self {
        MinHasher::new(NUM_PERM, PERM_SEED)
    }
}

/// Folds a 64-bit shingle hash to the 32 bits the permutations work on.
#[inline(always)]
fn fold32(x: u64) -> u32 {
    (x ^ (x >> 32)) as u32
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl MinHasher {
    /// `num_perm` permutations (at least one) whose parameters come from `seed`.
    pub fn new(num_perm: usize, seed: u64) -> Self {
        let n = num_perm.max(1);
        let mut state = seed;
        let mut a = Vec::with_capacity(n);
        let mut b = Vec::with_capacity(n);
        for _ in 0..n {
            a.push((splitmix64(&mut state) >> 32) as u32 | 1);
            b.push((splitmix64(&mut state) >> 32) as u32);
        }
        MinHasher { a, b }
    }

    /// Number of permutations (signature length).
    pub fn num_perm(&self) -> usize {
        self.a.len()
    }

    /// Writes the signature of `shingles` (any order, repeats allowed) into `out`, which must
    /// hold [`MinHasher::num_perm`] values (extra values are left alone, missing ones skipped).
    /// An empty shingle list gives all `u64::MAX`.
    pub fn signature_into(&self, shingles: &[u64], out: &mut [u64]) {
        let n = self.a.len().min(out.len());
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above), the only requirement of
                // a `#[target_feature(enable = "avx2")]` function; it computes exactly what the
                // portable loop computes, so results never depend on the machine.
                unsafe { self.signature_avx2(shingles, &mut out[..n]) };
                return;
            }
        }
        self.signature_portable(shingles, &mut out[..n]);
    }

    /// 32-bit lanes, sixteen permutations at a time (a last partial group is padded):
    /// `a·x + b mod 2^32` over the shingle
    /// hash folded to 32 bits.
    #[inline(always)]
    fn signature_lanes(&self, shingles: &[u64], out: &mut [u64]) {
        let n = out.len();
        let mut start = 0;
        while start < n {
            let end = (start + 16).min(n);
            let mut m = [u32::MAX; 16];
            let (a, b) = (&self.a[start..end], &self.b[start..end]);
            let mut av = [0u32; 16];
            let mut bv = [0u32; 16];
            av[..a.len()].copy_from_slice(a);
            bv[..b.len()].copy_from_slice(b);
            for &x in shingles {
                let x = fold32(x);
                for k in 0..16 {
                    m[k] = m[k].min(av[k].wrapping_mul(x).wrapping_add(bv[k]));
                }
            }
            for (o, v) in out[start..end].iter_mut().zip(m) {
                *o = if shingles.is_empty() {
                    u64::MAX
                } else {
                    u64::from(v)
                };
            }
            start = end;
        }
    }

    fn signature_portable(&self, shingles: &[u64], out: &mut [u64]) {
        self.signature_lanes(shingles, out)
    }

    /// The same values as [`MinHasher::signature_lanes`], written with AVX2 intrinsics: 32
    /// permutations per pass over the shingles, their minima, multipliers and offsets held in
    /// twelve `ymm` registers. (Left to the auto-vectoriser, the portable loop was vectorised
    /// across shingles instead of permutations and spent most of its time shuffling.)
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn signature_avx2(&self, shingles: &[u64], out: &mut [u64]) {
        use std::arch::x86_64::{
            __m256i, _mm256_add_epi32, _mm256_loadu_si256, _mm256_min_epu32, _mm256_mullo_epi32,
            _mm256_set1_epi32, _mm256_storeu_si256,
        };
        let n = out.len();
        if shingles.is_empty() {
            out.fill(u64::MAX);
            return;
        }
        let mut start = 0;
        while start < n {
            let end = (start + 32).min(n);
            let mut av = [0u32; 32];
            let mut bv = [0u32; 32];
            av[..end - start].copy_from_slice(&self.a[start..end]);
            bv[..end - start].copy_from_slice(&self.b[start..end]);
            // SAFETY (all intrinsics below): AVX2 is enabled for this function, and every
            // unaligned load and store stays inside a 32-element `u32` array.
            let (pa, pb) = (av.as_ptr().cast::<__m256i>(), bv.as_ptr().cast::<__m256i>());
            let a0 = _mm256_loadu_si256(pa);
            let a1 = _mm256_loadu_si256(pa.add(1));
            let a2 = _mm256_loadu_si256(pa.add(2));
            let a3 = _mm256_loadu_si256(pa.add(3));
            let b0 = _mm256_loadu_si256(pb);
            let b1 = _mm256_loadu_si256(pb.add(1));
            let b2 = _mm256_loadu_si256(pb.add(2));
            let b3 = _mm256_loadu_si256(pb.add(3));
            let ones = _mm256_set1_epi32(-1);
            let (mut m0, mut m1, mut m2, mut m3) = (ones, ones, ones, ones);
            for &x in shingles {
                let xv = _mm256_set1_epi32(fold32(x) as i32);
                m0 = _mm256_min_epu32(m0, _mm256_add_epi32(_mm256_mullo_epi32(a0, xv), b0));
                m1 = _mm256_min_epu32(m1, _mm256_add_epi32(_mm256_mullo_epi32(a1, xv), b1));
                m2 = _mm256_min_epu32(m2, _mm256_add_epi32(_mm256_mullo_epi32(a2, xv), b2));
                m3 = _mm256_min_epu32(m3, _mm256_add_epi32(_mm256_mullo_epi32(a3, xv), b3));
            }
            let mut m = [0u32; 32];
            let pm = m.as_mut_ptr().cast::<__m256i>();
            _mm256_storeu_si256(pm, m0);
            _mm256_storeu_si256(pm.add(1), m1);
            _mm256_storeu_si256(pm.add(2), m2);
            _mm256_storeu_si256(pm.add(3), m3);
            for (o, v) in out[start..end].iter_mut().zip(m) {
                *o = u64::from(v);
            }
            start = end;
        }
    }

    /// The signature of `shingles` as a new vector.
    pub fn signature(&self, shingles: &[u64]) -> Vec<u64> {
        let mut out = vec![u64::MAX; self.num_perm()];
        self.signature_into(shingles, &mut out);
        out
    }
}

/// The `banding.bands` band hashes of `signature`, in band order (rows past the end of a
/// short signature are not hashed).
pub(crate) fn band_hashes(signature: &[u64], banding: Banding) -> impl Iterator<Item = u64> + '_ {
    (0..banding.bands).map(move |band| {
        let start = (band * banding.rows).min(signature.len());
        let end = (start + banding.rows).min(signature.len());
        band_hash(&signature[start..end], band as u64)
    })
}

/// One band's rows folded into 64 bits: each step `h = (h ^ row)·K; h ^= h >> 32` is a
/// bijection of `h` for a given row, so two bands differing in one row never collide and other
/// collisions are as rare as for a random 64-bit function; murmur3's finalizer spreads every
/// input bit over the result. It replaced xxh3 over the rows' bytes (two band hashes per record
/// and band, a sixth of the signature pass) with a few multiplies.
#[inline]
fn band_hash(rows: &[u64], band: u64) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (band ^ 0x5851_F42D_4C95_7F2D).wrapping_mul(K) ^ rows.len() as u64;
    for &v in rows {
        h = (h ^ v).wrapping_mul(K);
        h ^= h >> 32;
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

/// The band hashes of `signature` as a new vector.
pub fn bands(signature: &[u64], banding: Banding) -> Vec<u64> {
    band_hashes(signature, banding).collect()
}

/// Appends the hashes of every window of `k` consecutive ids of the concatenation of
/// `segments` to `out` (unsorted, repeats kept). Returns the number of windows, 0 when the
/// sequence is shorter than `k` (the caller decides on a fallback). `k` is clamped to
/// `1..=`[`MAX_SHINGLE`].
pub fn word_shingles(segments: &[&[u32]], k: usize, out: &mut Vec<u64>) -> usize {
    let k = k.clamp(1, MAX_SHINGLE);
    let total: usize = segments.iter().map(|s| s.len()).sum();
    if total < k {
        return 0;
    }
    if k == SHINGLE {
        // The default width: the window lives in five registers and its hash is computed
        // directly from them ([`xxh3_20`]) instead of shifting a byte buffer.
        out.reserve(total + 1 - k);
        let (mut w0, mut w1, mut w2, mut w3) = (0u32, 0u32, 0u32, 0u32);
        let mut filled = 0usize;
        for seg in segments {
            for &id in *seg {
                if filled >= SHINGLE - 1 {
                    out.push(xxh3_20([w0, w1, w2, w3, id], WORD_SEED));
                }
                (w0, w1, w2, w3) = (w1, w2, w3, id);
                filled += 1;
            }
        }
        return total + 1 - k;
    }
    let mut window = [0u8; 4 * MAX_SHINGLE];
    let width = 4 * k;
    let mut filled = 0usize;
    let mut count = 0;
    for &id in segments.iter().flat_map(|s| s.iter()) {
        if filled < k {
            window[filled * 4..filled * 4 + 4].copy_from_slice(&id.to_le_bytes());
            filled += 1;
        } else {
            window.copy_within(4..width, 0);
            window[width - 4..width].copy_from_slice(&id.to_le_bytes());
        }
        if filled == k {
            out.push(xxh3_64_with_seed(&window[..width], WORD_SEED));
            count += 1;
        }
    }
    count
}

/// `xxh3_64_with_seed` of the 20 bytes of five `u32`s in little-endian order, specialised:
/// XXH3 hashes 17 to 32 bytes as two 16-byte halves (bytes 0..16 and 4..20 here) mixed with the
/// first 32 bytes of its default secret, so the halves are assembled from the words directly.
/// A unit test checks it against the library on random windows.
#[inline(always)]
fn xxh3_20(w: [u32; 5], seed: u64) -> u64 {
    const PRIME64_1: u64 = 0x9E37_79B1_85EB_CA87;
    // The first 32 bytes of XXH3's default secret, as little-endian u64s.
    const S0: u64 = 0xbe4b_a423_396c_feb8;
    const S8: u64 = 0x1cad_21f7_2c81_017c;
    const S16: u64 = 0xdb97_9083_e96d_d4de;
    const S24: u64 = 0x1f67_b3b7_a4a4_4072;
    let pair = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    let mix = |lo: u64, hi: u64, s_lo: u64, s_hi: u64| {
        let p = u128::from(lo ^ s_lo.wrapping_add(seed)) * u128::from(hi ^ s_hi.wrapping_sub(seed));
        (p as u64) ^ ((p >> 64) as u64)
    };
    let mut acc = 20u64.wrapping_mul(PRIME64_1);
    acc = acc.wrapping_add(mix(pair(w[0], w[1]), pair(w[2], w[3]), S0, S8));
    acc = acc.wrapping_add(mix(pair(w[1], w[2]), pair(w[3], w[4]), S16, S24));
    acc ^= acc >> 37;
    acc = acc.wrapping_mul(0x1656_6791_9E37_79F9);
    acc ^ (acc >> 32)
}

/// Appends the hashes of every window of `k` characters of `text` to `out`; a non-empty text
/// with fewer than `k` characters gives one shingle of the whole text. Returns the number of
/// shingles. `k` is clamped to at least 1.
pub fn char_shingles(text: &str, k: usize, out: &mut Vec<u64>) -> usize {
    let k = k.max(1);
    if text.is_empty() {
        return 0;
    }
    // Byte offsets of the char starts, walked with a ring of the last k+1 boundaries.
    let mut ring = std::collections::VecDeque::with_capacity(k + 1);
    let mut count = 0;
    for (i, _) in text.char_indices() {
        ring.push_back(i);
        if ring.len() == k + 1 {
            let s = ring.pop_front().unwrap_or(0);
            out.push(xxh3_64_with_seed(&text.as_bytes()[s..i], CHAR_SEED));
            count += 1;
        }
    }
    // The last window ends at the end of the text.
    if ring.len() == k {
        let s = ring.front().copied().unwrap_or(0);
        out.push(xxh3_64_with_seed(&text.as_bytes()[s..], CHAR_SEED));
        count += 1;
    } else if count == 0 {
        out.push(xxh3_64_with_seed(text.as_bytes(), CHAR_SEED));
        count = 1;
    }
    count
}

/// Sorts and deduplicates a shingle list in place, turning it into a set for [`jaccard`].
pub fn into_set(shingles: &mut Vec<u64>) {
    shingles.sort_unstable();
    shingles.dedup();
}

/// Exact Jaccard similarity `|A ∩ B| / |A ∪ B|` of two sorted, deduplicated sets; two empty sets
/// have similarity 0 (nothing to compare).
pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    let inter = intersection(a, b);
    let union = a.len() + b.len() - inter;
    if union == 0 {
        0.0
    } else {
        inter as f64 / union as f64
    }
}

/// Size of the intersection of two sorted, deduplicated sets.
pub fn intersection(a: &[u64], b: &[u64]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        n += usize::from(x == y);
        i += usize::from(x <= y);
        j += usize::from(y <= x);
    }
    n
}

/// True when the sets' Jaccard similarity is at least `threshold`, deciding early when the
/// size ratio alone rules it out (`min/max < threshold`).
pub fn jaccard_at_least(a: &[u64], b: &[u64], threshold: f64) -> Option<f64> {
    let (small, large) = if a.len() <= b.len() {
        (a.len(), b.len())
    } else {
        (b.len(), a.len())
    };
    if large == 0 || (small as f64) < threshold * large as f64 {
        return None;
    }
    let j = jaccard(a, b);
    (j >= threshold).then_some(j)
}

/// The MinHash estimate of Jaccard similarity: the share of equal signature positions.
pub fn estimate(sig_a: &[u64], sig_b: &[u64]) -> f64 {
    let n = sig_a.len().min(sig_b.len());
    if n == 0 {
        return 0.0;
    }
    let eq = sig_a.iter().zip(sig_b).filter(|(x, y)| x == y).count();
    eq as f64 / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_of(range: std::ops::Range<u64>) -> Vec<u64> {
        let mut v: Vec<u64> = range
            .map(|x| xxh3_64_with_seed(&x.to_le_bytes(), 9))
            .collect();
        into_set(&mut v);
        v
    }

    #[test]
    fn s_curve_of_default_banding() {
        let b = Banding::default();
        assert_eq!(b, Banding { bands: 21, rows: 6 });
        assert!((b.probability(0.8) - 0.9983).abs() < 0.0005);
        assert!((b.probability(0.85) - 0.99992).abs() < 0.0001);
        assert!((b.probability(0.5) - 0.2816).abs() < 0.001);
        assert!(b.probability(0.3) < 0.02);
    }

    #[test]
    fn banding_for_thresholds() {
        let at = |t| Banding::for_threshold(t, 128);
        assert_eq!(at(0.8), Banding { bands: 21, rows: 6 });
        assert_eq!(at(0.85), Banding { bands: 16, rows: 8 });
        assert_eq!(
            at(0.9),
            Banding {
                bands: 12,
                rows: 10
            }
        );
        assert_eq!(at(0.95), Banding { bands: 8, rows: 16 });
        assert_eq!(at(0.7), Banding { bands: 32, rows: 4 });
        assert_eq!(at(0.5), Banding { bands: 42, rows: 3 });
        assert_eq!(
            at(0.0),
            Banding {
                bands: 128,
                rows: 1
            }
        );
        assert_eq!(at(f64::NAN), at(0.8));
        for t in [0.3, 0.6, 0.75, 0.85, 0.99] {
            let b = at(t);
            assert!(b.perms() <= 128 && b.perms() > 128 - b.rows, "{t} {b:?}");
            assert!(b.probability(t) >= MIN_RECALL_AT_THRESHOLD, "{t} {b:?}");
            // One more row per band (with as many bands as fit) would miss the recall floor.
            let tighter = Banding {
                bands: 128 / (b.rows + 1),
                rows: b.rows + 1,
            };
            assert!(
                tighter.probability(t) < MIN_RECALL_AT_THRESHOLD,
                "{t} {b:?}"
            );
        }
    }

    #[test]
    fn estimator_error_matches_ideal_minhash() {
        // Pairs of sets with known Jaccard; the mean estimate must be unbiased and the spread
        // close to the binomial sqrt(J(1-J)/128).
        let h = MinHasher::default();
        for (shared, own, j) in [(80u64, 10u64, 0.8), (50, 25, 0.5), (30, 35, 0.3)] {
            let trials = 300u64;
            let (mut sum, mut sq) = (0.0, 0.0);
            for t in 0..trials {
                let base = t * 10_000;
                let mut a = set_of(base..base + shared + own);
                let mut b = set_of(base..base + shared);
                b.extend(set_of(base + 5_000..base + 5_000 + own));
                into_set(&mut a);
                into_set(&mut b);
                let exact = jaccard(&a, &b);
                assert!((exact - j).abs() < 1e-9, "{exact} {j}");
                let e = estimate(&h.signature(&a), &h.signature(&b));
                sum += e - exact;
                sq += (e - exact) * (e - exact);
            }
            let bias = sum / trials as f64;
            let sd = (sq / trials as f64).sqrt();
            let ideal = (j * (1.0 - j) / 128.0).sqrt();
            assert!(bias.abs() < 0.01, "bias {bias} at {j}");
            assert!(
                sd < ideal * 1.3 && sd > ideal * 0.7,
                "sd {sd} ideal {ideal}"
            );
        }
    }

    #[test]
    fn signature_matches_its_definition() {
        for perms in [1usize, 7, 8, 13, 126, 128] {
            let h = MinHasher::new(perms, 3);
            let sh: Vec<u64> = (0..40u64)
                .map(|x| x.wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .collect();
            let naive: Vec<u64> = (0..perms)
                .map(|i| {
                    sh.iter()
                        .map(|&x| u64::from(h.a[i].wrapping_mul(fold32(x)).wrapping_add(h.b[i])))
                        .min()
                        .unwrap_or(u64::MAX)
                })
                .collect();
            assert_eq!(h.signature(&sh), naive, "{perms}");
            // The portable path agrees with whatever path the CPU selected.
            let mut portable = vec![0u64; perms];
            h.signature_portable(&sh, &mut portable);
            assert_eq!(portable, naive, "{perms}");
            assert!(h.a.iter().all(|a| a % 2 == 1));
        }
    }

    #[test]
    fn signatures_ignore_order_and_repeats() {
        let h = MinHasher::default();
        let a = [5u64, 9, 1, 9, 77];
        let b = [77u64, 1, 5, 9];
        assert_eq!(h.signature(&a), h.signature(&b));
        assert_eq!(h.signature(&[]), vec![u64::MAX; 128]);
        let odd = MinHasher::new(7, 1);
        assert_eq!(odd.signature(&a).len(), 7);
        assert_eq!(odd.signature(&a), odd.signature(&b));
    }

    #[test]
    fn bands_depend_on_rows_and_band_number() {
        let sig: Vec<u64> = (0..128).collect();
        let banding = Banding { bands: 16, rows: 8 };
        let b = bands(&sig, banding);
        assert_eq!(b.len(), 16);
        let mut sorted = b.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 16);
        let mut sig2 = sig.clone();
        sig2[9] = 1000; // band 1
        let b2 = bands(&sig2, banding);
        let diff: Vec<usize> = (0..16).filter(|&i| b[i] != b2[i]).collect();
        assert_eq!(diff, vec![1]);
        // The default 21 × 6 leaves the last two values out of every band.
        let d = Banding::default();
        let mut sig3 = sig.clone();
        sig3[127] = 1000;
        assert_eq!(bands(&sig, d), bands(&sig3, d));
        sig3[7] = 1000; // band 1 of 21 × 6
        let b3 = bands(&sig3, d);
        let base = bands(&sig, d);
        let diff: Vec<usize> = (0..21).filter(|&i| base[i] != b3[i]).collect();
        assert_eq!(diff, vec![1]);
    }

    #[test]
    fn word_shingles_span_segments() {
        let mut out = Vec::new();
        assert_eq!(word_shingles(&[&[1, 2, 3], &[4, 5, 6]], 5, &mut out), 2);
        let mut whole = Vec::new();
        assert_eq!(word_shingles(&[&[1, 2, 3, 4, 5, 6]], 5, &mut whole), 2);
        assert_eq!(out, whole);
        assert_eq!(word_shingles(&[&[1, 2], &[3, 4]], 5, &mut out), 0);
        assert_eq!(out.len(), 2);
        let mut one = Vec::new();
        assert_eq!(word_shingles(&[&[1, 2, 3, 4, 5]], 5, &mut one), 1);
        // Different order is a different shingle.
        let mut other = Vec::new();
        word_shingles(&[&[5, 4, 3, 2, 1]], 5, &mut other);
        assert_ne!(one, other);
    }

    #[test]
    fn word_shingles_match_the_library_hash() {
        // The specialised five-word path against xxh3 over the window's bytes, including ids
        // with high bits set and windows that span segments.
        let ids: Vec<u32> = (0..300u64)
            .map(|x| xxh3_64_with_seed(&x.to_le_bytes(), 5) as u32)
            .collect();
        for split in [0usize, 1, 4, 5, 150, 299, 300] {
            let mut fast = Vec::new();
            let n = word_shingles(&[&ids[..split], &ids[split..]], SHINGLE, &mut fast);
            assert_eq!(n, ids.len() - 4);
            let slow: Vec<u64> = ids
                .windows(5)
                .map(|w| {
                    let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
                    xxh3_64_with_seed(&bytes, WORD_SEED)
                })
                .collect();
            assert_eq!(fast, slow, "split {split}");
        }
        for seed in [0u64, 1, u64::MAX, CHAR_SEED] {
            let w = [1u32, u32::MAX, 7, 0x8000_0000, 12345];
            let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
            assert_eq!(xxh3_20(w, seed), xxh3_64_with_seed(&bytes, seed));
        }
    }

    #[test]
    fn char_shingles_cover_short_and_unicode_text() {
        let mut out = Vec::new();
        assert_eq!(char_shingles("", 5, &mut out), 0);
        assert_eq!(char_shingles("abc", 5, &mut out), 1);
        assert_eq!(char_shingles("abcde", 5, &mut out), 1);
        assert_eq!(char_shingles("abcdef", 5, &mut out), 2);
        assert_eq!(char_shingles("héllo wörld", 5, &mut out), 7);
        let mut a = Vec::new();
        char_shingles("great movie", 5, &mut a);
        let mut b = Vec::new();
        char_shingles("a great movie", 5, &mut b);
        into_set(&mut a);
        into_set(&mut b);
        let j = jaccard(&a, &b);
        assert!(j > 0.5 && j < 0.8, "{j}");
    }

    #[test]
    fn jaccard_edges() {
        assert_eq!(jaccard(&[], &[]), 0.0);
        assert_eq!(jaccard(&[1, 2], &[1, 2]), 1.0);
        assert_eq!(jaccard(&[1, 2], &[3]), 0.0);
        assert!((jaccard(&[1, 2, 3], &[2, 3, 4]) - 0.5).abs() < 1e-12);
        assert_eq!(jaccard_at_least(&[1, 2, 3], &[2, 3, 4], 0.5), Some(0.5));
        assert_eq!(jaccard_at_least(&[1, 2, 3], &[2, 3, 4], 0.51), None);
        assert_eq!(jaccard_at_least(&[1], &[1, 2, 3, 4, 5], 0.5), None);
        assert_eq!(jaccard_at_least(&[], &[], 0.0), None);
    }
}
