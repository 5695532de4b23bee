//! Near-duplicate clustering: band hashes → sort-based candidates → exact Jaccard → union-find.
//!
//! Memory is known in advance: `bands × 4` bytes per item for the band hashes (32 bits each),
//! one sort array reused band after band (8 bytes per item: the band hash above the item
//! number) plus 4 bytes per item for the sorted item numbers, and shingle sets only for items
//! that land in a shared bucket.
//! Candidates come from sorting each band's keys, not from a hash map of buckets, so there is no
//! per-bucket allocation and the order is total (deterministic).
//!
//! Bands are processed one after another. Within a band, buckets (runs of equal hash) are
//! verified in parallel against a read-only snapshot of the union-find, so pairs that earlier
//! bands already connected are not verified again; the accepted edges are then merged in bucket
//! order. Work per bucket of `m` items is bounded:
//! - `m ≤ 64`: every pair not yet connected is verified (complete for the bucket);
//! - `64 < m ≤ 1000`: each item is verified against up to 32 "leaders" (items that matched no
//!   earlier leader), at most `32·m` checks;
//! - `m > 1000` (a giant near-identical group): each item is verified against the bucket's
//!   lowest item only, `m` checks, keeping the step O(n).
//!
//! Every accepted edge has an exact Jaccard similarity at or above the threshold; a cluster is a
//! connected component of accepted edges, so a member can be less similar to the representative
//! than the threshold through a chain (the evidence then names the member it matched).
use super::sketch::{
    band_hashes, into_set, jaccard, jaccard_at_least, Banding, MinHasher, PERM_SEED,
};
use rayon::prelude::*;
use std::sync::OnceLock;

/// Buckets up to this size verify every pair.
const ALL_PAIRS_MAX: usize = 64;
/// Buckets above this size verify each member against the lowest member only.
const GIANT: usize = 1000;
/// Leaders per mid-size bucket.
const LEADER_CAP: usize = 32;

/// Clustering parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LshParams {
    /// Exact Jaccard similarity at or above which a candidate pair is a near-duplicate.
    pub threshold: f64,
    /// How signatures are banded (the signature has `bands × rows` permutations).
    pub banding: Banding,
}

impl LshParams {
    /// The threshold with the banding [`Banding::for_threshold`] picks for 128 permutations.
    pub fn for_threshold(threshold: f64) -> Self {
        LshParams {
            threshold,
            banding: Banding::for_threshold(threshold, super::sketch::NUM_PERM),
        }
    }
}

/// Counters from one clustering run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LshStats {
    /// Items given.
    pub items: usize,
    /// Items with at least one shingle (the others are never clustered).
    pub shingled: usize,
    /// Candidate pairs verified by exact Jaccard.
    pub verified: u64,
    /// Verified pairs at or above the threshold.
    pub accepted: u64,
    /// Buckets larger than the giant-group cap (verified against one member only).
    pub giant_buckets: u64,
}

/// The clusters of `n` items.
///
/// Invariants: all vectors have one entry per item; `representative[i] <= i` and is the lowest
/// item of `i`'s cluster (`i` itself when `i` is alone); `jaccard_to_rep[i]` is the exact
/// Jaccard similarity of `i` and its representative (1 for representatives and singletons);
/// `best_match[i]` is the verified partner with the highest similarity (ties: lowest index).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Clusters {
    /// Lowest item index of each item's cluster.
    pub representative: Vec<u32>,
    /// Exact Jaccard similarity to the representative.
    pub jaccard_to_rep: Vec<f32>,
    /// Best verified partner and its exact Jaccard similarity, if any.
    pub best_match: Vec<Option<(u32, f32)>>,
    /// Counters.
    pub stats: LshStats,
}

impl Clusters {
    /// Clusters with at least two members, each sorted ascending (the representative first),
    /// ordered by representative.
    pub fn groups(&self) -> Vec<Vec<u32>> {
        let n = self.representative.len();
        let mut size = vec![0u32; n];
        for &r in &self.representative {
            size[r as usize] += 1;
        }
        let mut slot = vec![u32::MAX; n];
        let mut out: Vec<Vec<u32>> = Vec::new();
        for (i, &r) in self.representative.iter().enumerate() {
            if size[r as usize] < 2 {
                continue;
            }
            if slot[r as usize] == u32::MAX {
                slot[r as usize] = out.len() as u32;
                out.push(Vec::with_capacity(size[r as usize] as usize));
            }
            out[slot[r as usize] as usize].push(i as u32);
        }
        out
    }
}

/// Union-find over item indices, union by size.
struct Dsu {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl Dsu {
    fn new(n: usize) -> Self {
        Dsu {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }
    fn find(&mut self, mut x: u32) -> u32 {
        let mut root = x;
        while self.parent[root as usize] != root {
            root = self.parent[root as usize];
        }
        while self.parent[x as usize] != root {
            let next = self.parent[x as usize];
            self.parent[x as usize] = root;
            x = next;
        }
        root
    }
    fn union(&mut self, a: u32, b: u32) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return false;
        }
        let (big, small) = if self.size[ra as usize] >= self.size[rb as usize] {
            (ra, rb)
        } else {
            (rb, ra)
        };
        self.parent[small as usize] = big;
        self.size[big as usize] += self.size[small as usize];
        true
    }
    /// Points every item straight at its root, so that `parent` is a read-only snapshot.
    fn flatten(&mut self) {
        for x in 0..self.parent.len() as u32 {
            self.find(x);
        }
    }
}

/// A tiny union-find over positions in one bucket.
struct LocalDsu(Vec<u32>);

impl LocalDsu {
    fn find(&mut self, mut x: usize) -> usize {
        while self.0[x] as usize != x {
            let p = self.0[x] as usize;
            self.0[x] = self.0[p];
            x = p;
        }
        x
    }
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = (ra.min(rb), ra.max(rb));
            self.0[hi] = lo as u32;
        }
    }
    fn connected(&mut self, a: usize, b: usize) -> bool {
        self.find(a) == self.find(b)
    }
}

type Edge = (u32, u32, f32);

/// Clusters `n` items by near-duplicate similarity. `shingles(i, out)` appends item `i`'s
/// shingle hashes to `out` (any order, repeats allowed; nothing for an item that should not be
/// clustered); it is called once per item for the signature and again for items that become
/// candidates, so it must be deterministic. Runs on the rayon pool; the result does not depend on
/// the number of threads.
pub fn cluster<F>(n: usize, params: LshParams, shingles: F) -> Clusters
where
    F: Fn(usize, &mut Vec<u64>) + Sync,
{
    let n = n.min(u32::MAX as usize);
    let bands = band_matrix(n, effective_banding(params), &shingles);
    cluster_banded(bands, params.threshold, shingles)
}

/// The band hashes of `n` items (step 1 of [`cluster`]), kept apart from the clustering so that
/// callers can compute several views' signatures in one pass over shared shingles.
///
/// Invariant: `hashes` holds `banding.bands` hashes per item, row by row (`n × bands`), each
/// the high 32 bits of the [`band_hashes`] hash (see [`band_row`]);
/// `shingled[i]` is false for an item without shingles, whose row is all zero and which is
/// never clustered.
#[derive(Debug, Clone)]
pub(crate) struct BandMatrix {
    pub(crate) banding: Banding,
    pub(crate) hashes: Vec<u32>,
    pub(crate) shingled: Vec<bool>,
    /// Wall time spent computing it (for `TUNEGATE_TIMINGS`).
    pub(crate) elapsed: std::time::Duration,
}

impl BandMatrix {
    /// An all-zero matrix for `n` items (nothing shingled yet).
    pub(crate) fn zeroed(n: usize, banding: Banding) -> Self {
        BandMatrix {
            banding,
            hashes: vec![0u32; n * banding.bands],
            shingled: vec![false; n],
            elapsed: std::time::Duration::ZERO,
        }
    }

    /// Number of items.
    pub(crate) fn len(&self) -> usize {
        self.shingled.len()
    }
}

/// The banding `params` asks for, with at least one band and one row.
pub(crate) fn effective_banding(params: LshParams) -> Banding {
    Banding {
        bands: params.banding.bands.max(1),
        rows: params.banding.rows.max(1),
    }
}

/// The hasher whose signatures [`cluster`] bands.
pub(crate) fn hasher_for(banding: Banding) -> MinHasher {
    MinHasher::new(banding.perms(), PERM_SEED)
}

/// Step 1 of [`cluster`]: every item's band hashes, in parallel.
fn band_matrix<F>(n: usize, banding: Banding, shingles: &F) -> BandMatrix
where
    F: Fn(usize, &mut Vec<u64>) + Sync,
{
    let t0 = std::time::Instant::now();
    let hasher = hasher_for(banding);
    let mut m = BandMatrix::zeroed(n, banding);
    m.hashes
        .par_chunks_mut(banding.bands)
        .zip(m.shingled.par_iter_mut())
        .enumerate()
        .for_each_init(
            || {
                (
                    Vec::<u64>::with_capacity(256),
                    vec![0u64; hasher.num_perm()],
                )
            },
            |(buf, sig), (i, (out, has))| {
                buf.clear();
                shingles(i, buf);
                if buf.is_empty() {
                    return;
                }
                *has = true;
                hasher.signature_into(buf, sig);
                band_row(sig, banding, out);
            },
        );
    m.elapsed = t0.elapsed();
    m
}

/// One item's row of band hashes: the high 32 bits of each [`band_hashes`] hash. Half the
/// memory of full hashes; the few unrelated items a 32-bit hash puts in one bucket (about
/// `n² / 2^33` pairs per band) are false candidates that exact verification rejects.
pub(crate) fn band_row(signature: &[u64], banding: Banding, row: &mut [u32]) {
    for (o, h) in row.iter_mut().zip(band_hashes(signature, banding)) {
        *o = (h >> 32) as u32;
    }
}

/// Steps 2 and 3 of [`cluster`] over precomputed band hashes (made with [`hasher_for`] and
/// [`band_row`] of [`effective_banding`]); `shingles` is only called for candidates.
pub(crate) fn cluster_banded<F>(bands: BandMatrix, threshold: f64, shingles: F) -> Clusters
where
    F: Fn(usize, &mut Vec<u64>) + Sync,
{
    let t0 = std::time::Instant::now();
    let n = bands.len();
    let banding = bands.banding;
    let b = banding.bands;
    let t_sig = bands.elapsed;
    let BandMatrix {
        hashes: band_hashes,
        shingled,
        ..
    } = bands;
    // Shingle sets, computed on first use by candidates only.
    let sets: Vec<OnceLock<Box<[u64]>>> = (0..n).map(|_| OnceLock::new()).collect();
    let set_of = |i: u32| -> &[u64] {
        sets[i as usize].get_or_init(|| {
            let mut v = Vec::new();
            shingles(i as usize, &mut v);
            into_set(&mut v);
            v.into_boxed_slice()
        })
    };

    let mut stats = LshStats {
        items: n,
        shingled: shingled.iter().filter(|&&s| s).count(),
        ..Default::default()
    };
    let mut dsu = Dsu::new(n);
    let mut best: Vec<Option<(u32, f32)>> = vec![None; n];
    // Sort keys: one `u64` per item, the band hash above the item number, so a plain `u64`
    // sort groups equal hashes with items ascending inside each run.
    let mut keys: Vec<u64> = Vec::with_capacity(stats.shingled);
    let mut sorted: Vec<u64> = Vec::with_capacity(stats.shingled);
    let mut items: Vec<u32> = Vec::with_capacity(stats.shingled);
    let mut buckets: Vec<(usize, usize)> = Vec::new();
    let mut counts: Vec<u32> = Vec::new();

    // 2. Band by band: sort, find runs, verify runs in parallel, merge edges in order.
    for band in 0..b {
        items.clear();
        buckets.clear();
        keys.clear();
        keys.extend(
            (0..n)
                .filter(|&i| shingled[i])
                .map(|i| (u64::from(band_hashes[i * b + band]) << 32) | i as u64),
        );
        radix_sort(&keys, &mut sorted, &mut counts);
        items.extend(sorted.iter().map(|&k| k as u32));
        runs(&sorted, |k| k >> 32, &mut buckets);
        if buckets.is_empty() {
            continue;
        }
        let snapshot = &dsu.parent;
        let results: Vec<(Vec<Edge>, u64, bool)> = buckets
            .par_iter()
            .map(|&(s, e)| verify_bucket(&items[s..e], snapshot, threshold, &set_of))
            .collect();
        for (edges, checks, giant) in results {
            stats.verified += checks;
            stats.giant_buckets += u64::from(giant);
            for (x, y, j) in edges {
                stats.accepted += 1;
                dsu.union(x, y);
                for (me, other) in [(x, y), (y, x)] {
                    let slot = &mut best[me as usize];
                    let better = match *slot {
                        None => true,
                        Some((o, bj)) => j > bj || (j == bj && other < o),
                    };
                    if better {
                        *slot = Some((other, j));
                    }
                }
            }
        }
        dsu.flatten();
    }
    // The band hashes are the largest allocation here; nothing below needs them.
    drop(band_hashes);
    drop(keys);
    drop(sorted);

    if std::env::var_os("TUNEGATE_TIMINGS").is_some() {
        // Diagnostics for `TUNEGATE_TIMINGS` (see `scan`): where clustering time goes.
        eprintln!(
            "timing:   lsh {}x{}: {} items, {} candidate checks, {} edges; signatures {:.2?}, total {:.2?}",
            banding.bands,
            banding.rows,
            stats.shingled,
            stats.verified,
            stats.accepted,
            t_sig,
            t0.elapsed()
        );
    }
    // 3. Representatives: the lowest item of each component.
    let mut rep_of_root = vec![u32::MAX; n];
    let mut representative = vec![0u32; n];
    for i in 0..n as u32 {
        let root = dsu.find(i);
        if rep_of_root[root as usize] == u32::MAX {
            rep_of_root[root as usize] = i;
        }
        representative[i as usize] = rep_of_root[root as usize];
    }
    let jaccard_to_rep: Vec<f32> = (0..n)
        .into_par_iter()
        .map(|i| {
            let r = representative[i];
            if r as usize == i {
                1.0
            } else {
                jaccard(set_of(i as u32), set_of(r)) as f32
            }
        })
        .collect();
    Clusters {
        representative,
        jaccard_to_rep,
        best_match: best,
        stats,
    }
}

/// Sorts `keys` into `out`: a stable counting pass on the top bits (one bucket per ~4 keys, at
/// most 2^16) and then a comparison sort of each bucket, which is small because the keys' top
/// bits are uniformly distributed hash bits. The result is exactly `keys` sorted; it replaced
/// a parallel comparison sort of the whole array per band, the largest cost of the band phase.
fn radix_sort(keys: &[u64], out: &mut Vec<u64>, counts: &mut Vec<u32>) {
    out.clear();
    if keys.len() < 64 {
        out.extend_from_slice(keys);
        out.sort_unstable();
        return;
    }
    let bits = (usize::BITS - (keys.len() / 4).leading_zeros()).clamp(1, 16);
    let shift = 64 - bits;
    counts.clear();
    counts.resize((1usize << bits) + 1, 0);
    for &k in keys {
        counts[(k >> shift) as usize + 1] += 1;
    }
    for d in 1..counts.len() {
        counts[d] += counts[d - 1];
    }
    out.resize(keys.len(), 0);
    {
        let mut next: Vec<u32> = counts[..counts.len() - 1].to_vec();
        for &k in keys {
            let slot = &mut next[(k >> shift) as usize];
            out[*slot as usize] = k;
            *slot += 1;
        }
    }
    for d in 0..counts.len() - 1 {
        let (s, e) = (counts[d] as usize, counts[d + 1] as usize);
        if e - s > 1 {
            out[s..e].sort_unstable();
        }
    }
}

/// Appends to `out` the `(start, end)` ranges of the runs of at least two equal `key`s in
/// sorted `v`.
fn runs<T, K: PartialEq>(v: &[T], key: impl Fn(&T) -> K, out: &mut Vec<(usize, usize)>) {
    let mut start = 0;
    while start < v.len() {
        let k = key(&v[start]);
        let mut end = start + 1;
        while end < v.len() && key(&v[end]) == k {
            end += 1;
        }
        if end - start >= 2 {
            out.push((start, end));
        }
        start = end;
    }
}

/// Verifies one bucket (items ascending). Returns accepted edges, checks made, giant flag.
fn verify_bucket<'s, S>(
    bucket: &[u32],
    snapshot: &[u32],
    threshold: f64,
    set_of: &S,
) -> (Vec<Edge>, u64, bool)
where
    S: Fn(u32) -> &'s [u64] + Sync,
{
    let m = bucket.len();
    let item = |p: usize| bucket[p];
    // Local union-find seeded with what earlier bands already connected.
    let mut local = LocalDsu((0..m as u32).collect());
    let mut by_root: Vec<(u32, u32)> = (0..m)
        .map(|p| (snapshot[item(p) as usize], p as u32))
        .collect();
    by_root.sort_unstable();
    for w in by_root.windows(2) {
        if w[0].0 == w[1].0 {
            local.union(w[0].1 as usize, w[1].1 as usize);
        }
    }
    let mut edges = Vec::new();
    let mut checks = 0u64;
    let mut check = |p: usize, q: usize, local: &mut LocalDsu, edges: &mut Vec<Edge>| -> bool {
        checks += 1;
        let (x, y) = (item(p), item(q));
        match jaccard_at_least(set_of(x), set_of(y), threshold) {
            Some(j) => {
                local.union(p, q);
                edges.push((x.min(y), x.max(y), j as f32));
                true
            }
            None => false,
        }
    };
    if m <= ALL_PAIRS_MAX {
        for q in 1..m {
            for p in 0..q {
                if !local.connected(p, q) {
                    check(p, q, &mut local, &mut edges);
                }
            }
        }
    } else if m <= GIANT {
        let mut leaders: Vec<usize> = vec![0];
        for q in 1..m {
            if leaders.iter().any(|&l| local.connected(l, q)) {
                continue;
            }
            let mut placed = false;
            for &l in &leaders {
                if check(l, q, &mut local, &mut edges) {
                    placed = true;
                    break;
                }
            }
            if !placed && leaders.len() < LEADER_CAP {
                leaders.push(q);
            }
        }
    } else {
        for q in 1..m {
            if !local.connected(0, q) {
                check(0, q, &mut local, &mut edges);
            }
        }
    }
    (edges, checks, m > GIANT)
}

#[cfg(test)]
mod tests {
    use super::super::sketch::{word_shingles, SHINGLE};
    use super::*;

    /// Items as token sequences.
    fn run(items: &[Vec<u32>], threshold: f64) -> Clusters {
        cluster(
            items.len(),
            LshParams::for_threshold(threshold),
            |i, out| {
                word_shingles(&[&items[i]], SHINGLE, out);
            },
        )
    }

    /// A pseudo-random token sequence (ids below 10^6).
    fn doc(seed: u32, len: u32) -> Vec<u32> {
        (0..len)
            .map(|k| {
                let x = xxhash_rust::xxh3::xxh3_64(
                    &((u64::from(seed) << 32) | u64::from(k)).to_le_bytes(),
                );
                (x % 1_000_000) as u32
            })
            .collect()
    }

    #[test]
    fn finds_planted_pairs_and_not_distant_ones() {
        let mut items: Vec<Vec<u32>> = (0..200).map(|s| doc(s, 60)).collect();
        // Item 200: item 3 with one token changed near the end (Jaccard ≈ 0.84).
        let mut near = items[3].clone();
        near[57] = 999_999_999;
        items.push(near);
        // Item 201: item 5 with its second half replaced (Jaccard ≈ 0.3).
        let mut far = items[5].clone();
        for t in far.iter_mut().skip(30) {
            *t += 1;
        }
        items.push(far);
        let c = run(&items, 0.8);
        assert_eq!(c.representative[200], 3);
        assert!(c.jaccard_to_rep[200] >= 0.8);
        assert_eq!(c.best_match[200].map(|m| m.0), Some(3));
        assert_eq!(c.representative[201], 201);
        assert_eq!(c.groups(), vec![vec![3, 200]]);
        assert_eq!(c.stats.items, 202);
        assert_eq!(c.stats.shingled, 202);
    }

    #[test]
    fn radix_sort_sorts() {
        let mut out = Vec::new();
        let mut counts = Vec::new();
        for n in [0usize, 1, 5, 63, 64, 65, 1000, 70_000] {
            let keys: Vec<u64> = (0..n as u64)
                .map(|x| {
                    // Uniform hashes, some repeated top bits, and a few extremes.
                    let h = xxhash_rust::xxh3::xxh3_64(&(x / 3).to_le_bytes());
                    match x % 97 {
                        0 => 0,
                        1 => u64::MAX,
                        _ => (h & !0xff) | (x & 0xff),
                    }
                })
                .collect();
            radix_sort(&keys, &mut out, &mut counts);
            let mut want = keys.clone();
            want.sort_unstable();
            assert_eq!(out, want, "{n}");
        }
    }

    #[test]
    fn empty_items_are_never_clustered() {
        let items = vec![vec![], vec![], doc(1, 10), doc(1, 10)];
        let c = run(&items, 0.8);
        assert_eq!(c.representative, vec![0, 1, 2, 2]);
        assert_eq!(c.stats.shingled, 2);
    }

    #[test]
    fn giant_and_mid_buckets_stay_complete_for_identical_groups() {
        for size in [50usize, 300, 1500] {
            let base = doc(42, 40);
            let mut items = vec![doc(7, 40)];
            for k in 0..size {
                let mut d = base.clone();
                // Every fourth copy differs in its last token: Jaccard 35/37 with the base.
                if k % 4 == 0 {
                    d[39] = 2_000_000 + k as u32;
                }
                items.push(d);
            }
            let c = run(&items, 0.8);
            let groups = c.groups();
            assert_eq!(groups.len(), 1, "size {size}");
            assert_eq!(groups[0].len(), size);
            assert_eq!(groups[0][0], 1);
            assert_eq!(c.stats.giant_buckets > 0, size > GIANT);
            // Linear work even for the giant group.
            assert!(c.stats.verified < 4 * size as u64, "{:?}", c.stats);
        }
    }

    #[test]
    fn result_is_deterministic() {
        let mut items: Vec<Vec<u32>> = (0..500).map(|s| doc(s % 50, 30 + s % 7)).collect();
        for (k, it) in items.iter_mut().enumerate() {
            if k % 3 == 0 {
                it[0] = k as u32;
            }
        }
        let a = run(&items, 0.8);
        let b = run(&items, 0.8);
        assert_eq!(a, b);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("pool");
        let c = pool.install(|| run(&items, 0.8));
        assert_eq!(a, c);
        assert!(a.stats.accepted > 0);
    }
}
